"""The durable repair queue and confirmation in the memory (SPEC §8): owed minutes are queued in
the flush that revealed them, a repair stores the venue's final candle as confirmed and counts
what it corrected, nobody-traded minutes are ``no_trades``, and nothing confirmed is ever
overwritten by an unverified row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest

from market_assets.memory import SCHEMA_VERSION, connect
from market_assets.memory.candles import (
    CandleRow,
    RepairReason,
    candles_of,
    write_candles,
)
from market_assets.memory.connection import MemoryConnection, close
from market_assets.memory.dialect import pick
from market_assets.memory.gaps import GapStatus, gaps_of
from market_assets.memory.repairs import (
    Fidelity,
    apply_repair,
    backlog,
    fidelity,
    queue_horizon,
    queued_minutes,
)
from market_assets.memory.schema import MIGRATIONS

from .conftest import T0_MS

M = 60_000
BASE = T0_MS - T0_MS % M
UNVERIFIED, MISSING = RepairReason.UNVERIFIED, RepairReason.MISSING

@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """Every test of this module runs on SQLite and on PostgreSQL (``memory_conn``)."""
    return memory_conn



def minute(m: int, close: str = "100.75", *, closed: bool = True, confirmed: bool = False, coin: str = "BTC") -> CandleRow:
    start = BASE + m * M
    return CandleRow(coin, "1m", start, start + M - 1, 100.5, 101.0, 99.5, float(close), 2.0, 3,
                     closed, confirmed)


def flush(conn: MemoryConnection, rows: list[CandleRow], repairs: list[tuple[str, int, RepairReason]] = ()) -> tuple[int, list]:  # type: ignore[assignment]
    return write_candles(conn, rows, newest_open_by_coin={}, interval="1m", close_ended_before_ms=0, now_ms=T0_MS,
                         repairs=repairs)


def stored(conn: MemoryConnection, coin: str = "BTC") -> dict[int, CandleRow]:
    return {row.open_time_ms: row for row in candles_of(conn, coin, "1m")}


def test_an_unverified_row_never_overwrites_a_confirmed_minute_and_a_confirmed_one_does(conn: MemoryConnection) -> None:
    flush(conn, [minute(0, "100.0", confirmed=True)])
    flush(conn, [minute(0, "99.9"), minute(0, "99.8", closed=False)])  # a late partial state, then a forming frame
    assert (stored(conn)[BASE].close, stored(conn)[BASE].confirmed) == (100.0, True)
    flush(conn, [minute(0, "100.1", confirmed=True)])
    assert stored(conn)[BASE].close == 100.1


def test_owed_minutes_are_queued_in_the_flush_that_revealed_them_all_or_nothing(conn: MemoryConnection) -> None:
    flush(conn, [minute(0), minute(2)], [("BTC", BASE, UNVERIFIED), ("BTC", BASE + M, MISSING)])
    assert queued_minutes(conn, "BTC", "1m") == {BASE: UNVERIFIED, BASE + M: MISSING}
    # A flush that cannot commit queues nothing either.
    conn.execute(pick(conn, sqlite="PRAGMA query_only = 1", postgres="SET default_transaction_read_only = on"))
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction)):
        flush(conn, [minute(3)], [("BTC", BASE + 3 * M, UNVERIFIED)])
    conn.execute(pick(conn, sqlite="PRAGMA query_only = 0", postgres="SET default_transaction_read_only = off"))
    assert BASE + 3 * M not in queued_minutes(conn, "BTC", "1m") and BASE + 3 * M not in stored(conn)


def test_a_row_the_memory_refuses_is_set_aside_queued_and_the_rest_of_the_batch_is_written(conn: MemoryConnection) -> None:
    nan = minute(1)._replace(open=float("nan"))  # stored as NULL (both engines): NOT NULL refuses it
    written, refused = flush(conn, [minute(0), nan, minute(2)])
    assert written == 2 and [r.row for r in refused] == [nan]
    assert refused[0].error.startswith(("IntegrityError", "NotNullViolation")) and "\n" not in refused[0].error
    assert sorted(stored(conn)) == [BASE, BASE + 2 * M]
    assert queued_minutes(conn, "BTC", "1m") == {BASE + M: RepairReason.REJECTED}


def test_a_repair_confirms_corrects_records_no_trades_and_dequeues(conn: MemoryConnection) -> None:
    flush(conn, [minute(0, "99.0"), minute(1, "100.75")],
          [("BTC", BASE, UNVERIFIED), ("BTC", BASE + M, UNVERIFIED), ("BTC", BASE + 2 * M, MISSING),
           ("BTC", BASE + 3 * M, MISSING), ("BTC", BASE + 4 * M, MISSING), ("BTC", BASE + 9 * M, MISSING)])
    rest = [minute(0, "100.0", confirmed=True), minute(1, "100.75", confirmed=True), minute(4, "101", confirmed=True)]
    outcome = apply_repair(conn, "BTC", "1m", M, rest, minutes=queued_minutes(conn, "BTC", "1m"),
                           no_trades=[BASE + 2 * M, BASE + 3 * M], unfillable=[], now_ms=T0_MS)
    assert (outcome.confirmed, outcome.corrected, outcome.no_trades, outcome.conflicts) == (3, 1, 2, 0)
    rows = stored(conn)
    assert [(t - BASE) // M for t in rows] == [0, 1, 4]  # nothing synthesised for the quiet minutes
    assert all(row.confirmed for row in rows.values()) and rows[BASE].close == 100.0
    assert queued_minutes(conn, "BTC", "1m") == {BASE + 9 * M: MISSING}  # REST could not tell yet
    assert [(g.status, (g.start_ms - BASE) // M, g.missing_buckets) for g in gaps_of(conn, "BTC")] == [
        (GapStatus.NO_TRADES, 2, 2), (GapStatus.FILLED, 4, 1)]


def test_a_minute_the_stream_had_and_rest_has_not_stays_unverified_and_is_not_asked_again(conn: MemoryConnection) -> None:
    flush(conn, [minute(0)], [("BTC", BASE, UNVERIFIED)])
    outcome = apply_repair(conn, "BTC", "1m", M, [], minutes=[BASE], no_trades=[BASE], unfillable=[], now_ms=T0_MS)
    assert outcome.conflicts == 1 and not stored(conn)[BASE].confirmed and backlog(conn, "1m") == []


def test_the_start_horizon_owes_every_minute_not_stored_confirmed_and_not_known_quiet(conn: MemoryConnection) -> None:
    flush(conn, [minute(0, confirmed=True), minute(1), minute(2, closed=False)])
    conn.execute("INSERT INTO candle_gaps VALUES ('BTC', '1m', ?, ?, 'no_trades', 1, ?, ?)", (BASE + 3 * M, BASE + 4 * M, T0_MS, T0_MS))
    queued = queue_horizon(conn, ["BTC", "ETH"], "1m", M, horizon=6, until_ms=BASE + 6 * M, floor_ms=0, now_ms=BASE + 6 * M)
    assert queued_minutes(conn, "BTC", "1m") == {BASE + M: UNVERIFIED, BASE + 2 * M: UNVERIFIED, BASE + 4 * M: MISSING, BASE + 5 * M: MISSING}
    assert sorted(queued_minutes(conn, "ETH", "1m")) == [BASE + m * M for m in range(6)]  # a new coin warms up
    assert (queued.unverified, queued.missing) == (2, 8)
    assert stored(conn)[BASE + 2 * M].closed  # the previous process's forming minute ended


def test_an_outage_longer_than_the_horizon_is_owed_whole_and_beyond_reach_is_unfillable(conn: MemoryConnection) -> None:
    flush(conn, [minute(0, confirmed=True)])
    queued = queue_horizon(conn, ["BTC"], "1m", M, horizon=2, until_ms=BASE + 10 * M, floor_ms=BASE + 4 * M, now_ms=BASE + 10 * M)
    assert sorted(queued_minutes(conn, "BTC", "1m")) == [BASE + m * M for m in range(4, 10)]
    assert queued.unfillable == 3
    assert [(g.status, (g.start_ms - BASE) // M, g.missing_buckets) for g in gaps_of(conn, "BTC")] == [(GapStatus.UNFILLABLE, 1, 3)]


def test_fidelity_counts_unverified_queued_and_quiet_minutes_since_a_time(conn: MemoryConnection) -> None:
    flush(conn, [minute(0), minute(1, confirmed=True), minute(2), minute(3, closed=False)], [("BTC", BASE + 5 * M, MISSING)])
    conn.execute("INSERT INTO candle_gaps VALUES ('BTC', '1m', ?, ?, 'no_trades', 2, ?, ?)", (BASE + 6 * M, BASE + 8 * M, T0_MS, T0_MS))
    assert fidelity(conn, BASE) == Fidelity(unverified_minutes=2, oldest_unverified_ms=BASE, repair_queue=1, no_trade_minutes=2)
    assert fidelity(conn, BASE + M).unverified_minutes == 1


def test_a_memory_from_before_confirmation_migrates_forward_its_rows_readable_and_unverified(tmp_path: Path) -> None:
    memory_path = tmp_path / "v4.db"
    raw = sqlite3.connect(memory_path, isolation_level=None)
    for statements in MIGRATIONS[:4]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 4")
    raw.execute("INSERT INTO candles VALUES ('BTC', '1m', ?, ?, 1, 2, 0.5, 1.5, 10, 7, 1, ?)", (BASE, BASE + M - 1, T0_MS))
    raw.execute("INSERT INTO candle_gaps VALUES ('BTC', '1m', ?, ?, 'filled', 1, ?, ?)", (BASE + M, BASE + 2 * M, T0_MS, T0_MS))
    raw.close()
    conn = connect(memory_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        [row] = candles_of(conn, "BTC", "1m")
        assert (row.open, row.high, row.low, row.close, row.volume, row.trades, row.closed, row.confirmed) == (
            1.0, 2.0, 0.5, 1.5, 10.0, 7, True, False)
        assert [(g.status, g.start_ms) for g in gaps_of(conn, "BTC")] == [(GapStatus.FILLED, BASE + M)]
    finally:
        close(conn)
