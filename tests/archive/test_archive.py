"""The Parquet archive holds each finished day exactly as the memory did, for good (SPEC §11)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from market_assets import archive
from market_assets.archive import ArchiveError, Outcome
from market_assets.ledger import Ledger
from market_assets.maintenance import MaintenanceSettings, run_maintenance
from market_assets.memory import archive as stamps
from market_assets.memory import connect
from market_assets.memory.candles import CandleRow
from market_assets.memory.connection import MemoryConnection, close
from market_assets.memory.hyperliquid import upsert_funding
from market_assets.memory.target import MemoryTarget
from market_assets.read import MarketReader
from market_assets.registry import CANDLES, FUNDING
from tests.archive import archive_finished_days, funding_day, realistic_day
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, store
from tests.postgres.reuse import SQLITE_ONLY

COINS = 3
AFTER_CANDLE_RETENTION_MS = DAY0_MS + (CANDLES.retention.days + 3) * DAY_MS if CANDLES.retention else 0
"""Days 0, 1 and 2 from DAY0 are past the 1-minute retention, day 3 not."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "archive"


def settings(root: Path) -> MaintenanceSettings:
    return MaintenanceSettings(archive_root=root)


def candle_values(rows: list[CandleRow]) -> list[tuple[object, ...]]:
    """The archived columns of candles, as the source gave them."""
    return [(r.coin, r.open_time_ms, r.open, r.high, r.low, r.close, r.volume, r.trades, r.confirmed) for r in rows]


def archived_values(table: object) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in table.to_pylist()]  # type: ignore[attr-defined]


def minutes_per_day(conn: MemoryConnection) -> dict[int, int]:
    rows = conn.execute(
        "SELECT (open_time_ms - ?) / ?, count(*) FROM candles WHERE interval = '1m' GROUP BY 1", (DAY0_MS, DAY_MS)
    ).fetchall()
    return dict(rows)


def four_days(conn: MemoryConnection, clock: FrozenClock) -> list[CandleRow]:
    rows = [row for day in range(4) for row in realistic_day(COINS, DAY0_MS + day * DAY_MS, seed=day)]
    store(conn, rows, clock())
    return sorted(rows, key=lambda r: (r.coin, r.open_time_ms))


def test_a_day_archived_then_pruned_reads_back_identical(conn: MemoryConnection, clock: FrozenClock, root: Path, memory_target: MemoryTarget) -> None:
    source = four_days(conn, clock)
    clock.now_ms = AFTER_CANDLE_RETENTION_MS
    written = archive_finished_days(conn, clock(), root)
    assert [(w.dataset, w.day_ms, w.outcome, w.rows) for w in written] == [
        ("candles", DAY0_MS + d * DAY_MS, Outcome.WRITTEN, COINS * 1440) for d in range(4)
    ]
    result = run_maintenance(conn, Ledger(conn, clock), settings=settings(root))
    assert result.candle_rows_pruned == 3 * COINS * 1440 and result.archive_blocked == {"candles": {}, "funding": {}}
    assert minutes_per_day(conn) == {3: COINS * 1440}

    three_days = [r for r in source if r.open_time_ms < DAY0_MS + 3 * DAY_MS]
    table = archive.read_candles(root, [DAY0_MS, DAY0_MS + DAY_MS, DAY0_MS + 2 * DAY_MS], None, DAY0_MS, DAY0_MS + 3 * DAY_MS)
    assert table.schema == archive.CANDLE_SCHEMA
    assert archived_values(table) == candle_values(three_days)  # every value, every row, in (coin, time) order
    one = archive.read_candles(root, [DAY0_MS + DAY_MS], ["C001"], DAY0_MS + DAY_MS + 90 * MINUTE_MS, DAY0_MS + DAY_MS + 95 * MINUTE_MS)
    assert archived_values(one) == candle_values(
        [r for r in three_days if r.coin == "C001" and DAY0_MS + DAY_MS + 90 * MINUTE_MS <= r.open_time_ms < DAY0_MS + DAY_MS + 95 * MINUTE_MS]
    )

    days = [DAY0_MS + 2 * DAY_MS, DAY0_MS, DAY0_MS + DAY_MS]  # any order: one coin read across days comes back in time order
    one_coin = archive.read_candles(root, days, ["C002"], DAY0_MS + 30 * MINUTE_MS, DAY0_MS + 3 * DAY_MS - 30 * MINUTE_MS)
    assert archived_values(one_coin) == candle_values(
        [r for r in three_days if r.coin == "C002" and DAY0_MS + 30 * MINUTE_MS <= r.open_time_ms < DAY0_MS + 3 * DAY_MS - 30 * MINUTE_MS]
    )

    with MarketReader(memory_target, archive=root, clock=clock) as reader:
        bars = reader.candles(None, "1m", DAY0_MS, DAY0_MS + 4 * DAY_MS, output="arrow")
    assert bars.num_rows == len(source)
    read_back = zip(
        bars.column("coin").to_pylist(), bars.column("open").to_pylist(), bars.column("high").to_pylist(),
        bars.column("low").to_pylist(), bars.column("close").to_pylist(), bars.column("volume").to_pylist(),
        bars.column("trades").to_pylist(), bars.column("verified").to_pylist(), strict=True,
    )
    assert list(read_back) == [(r.coin, r.open, r.high, r.low, r.close, r.volume, r.trades, r.confirmed) for r in source]
    open_ms = [int(t.timestamp() * 1000) for t in bars.column("open_time").to_pylist()]
    assert open_ms == [r.open_time_ms for r in source]


def test_rearchiving_a_pruned_day_keeps_its_partition_and_stamp(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    four_days(conn, clock)
    clock.now_ms = AFTER_CANDLE_RETENTION_MS
    archive_finished_days(conn, clock(), root)
    run_maintenance(conn, Ledger(conn, clock), settings=settings(root))
    path = archive.partition_path(root, "candles", DAY0_MS)
    before, stamp = path.read_bytes(), stamps.stamp_of(conn, "candles", DAY0_MS)

    clock.advance(seconds=3600)
    again = archive.write_day(conn, root, "candles", DAY0_MS, clock())

    assert again.outcome is Outcome.UNCHANGED  # still stamped: the file verifies, nothing to do
    path.unlink()
    path.write_bytes(before[:100])  # and even unverifiable, it is never replaced by what the memory no longer has
    kept = archive.write_day(conn, root, "candles", DAY0_MS, clock())
    assert kept.outcome is Outcome.KEPT and "pruned" in kept.message and str(path) in kept.message
    assert path.read_bytes() == before[:100] and stamps.stamp_of(conn, "candles", DAY0_MS) == stamp
    path.write_bytes(before)
    assert archive.verify_day(conn, root, "candles", DAY0_MS) is None


def test_a_day_with_no_rows_and_no_partition_writes_nothing(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    nothing = archive.write_day(conn, root, "candles", DAY0_MS - DAY_MS, clock())
    assert nothing.outcome is Outcome.EMPTY and "nothing written" in nothing.message
    assert not root.exists() and stamps.stamp_of(conn, "candles", DAY0_MS - DAY_MS) is None


def test_a_day_that_has_not_ended_is_refused(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    store(conn, realistic_day(1, DAY0_MS, minutes=10), clock())
    with pytest.raises(ArchiveError, match="candles of 2026-11-18: the day has not ended yet"):
        archive.write_day(conn, root, "candles", DAY0_MS, DAY0_MS + DAY_MS - 1)
    assert not root.exists() and stamps.stamp_of(conn, "candles", DAY0_MS) is None


def test_a_forming_minute_is_left_out_and_its_close_archives_the_day_again(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    rows = realistic_day(2, DAY0_MS, minutes=30)
    forming = rows[7]._replace(closed=False, confirmed=False)
    store(conn, [*rows[:7], forming, *rows[8:]], clock())
    first = archive.write_day(conn, root, "candles", DAY0_MS, DAY0_MS + DAY_MS)
    assert first.outcome is Outcome.WRITTEN and first.rows == 59 and "1 minute(s) still forming left out" in first.message
    assert archived_values(archive.read_partition(root, "candles", DAY0_MS)) == candle_values([*rows[:7], *rows[8:]])

    store(conn, [rows[7]], clock())  # the streamer closes it
    assert stamps.stamp_of(conn, "candles", DAY0_MS) is None
    second = archive.write_day(conn, root, "candles", DAY0_MS, DAY0_MS + DAY_MS)
    assert second.rows == 60 and archived_values(archive.read_partition(root, "candles", DAY0_MS)) == candle_values(rows)


def test_a_change_to_an_archived_day_removes_only_its_stamp_and_it_is_archived_again(
    conn: MemoryConnection, clock: FrozenClock, root: Path
) -> None:
    source = four_days(conn, clock)
    clock.now_ms = DAY0_MS + 4 * DAY_MS
    archive_finished_days(conn, clock(), root)
    assert set(stamps.stamped_days(conn, "candles", DAY0_MS, DAY0_MS + 4 * DAY_MS)) == {DAY0_MS + d * DAY_MS for d in range(4)}

    revised = source[100]._replace(close=source[100].close * 1.01, high=max(source[100].high, source[100].close * 1.01))
    unverified = next(r for r in source if r.open_time_ms >= DAY0_MS + DAY_MS and not r.confirmed)
    store(conn, [revised, unverified._replace(confirmed=True)], clock())  # a REST repair revises one, confirms another

    assert set(stamps.stamped_days(conn, "candles", DAY0_MS, DAY0_MS + 4 * DAY_MS)) == {DAY0_MS + 2 * DAY_MS, DAY0_MS + 3 * DAY_MS}
    assert stamps.unstamped_days(conn, "candles", clock(), limit=10) == [DAY0_MS, DAY0_MS + DAY_MS]
    assert "not stamped" in (archive.verify_day(conn, root, "candles", DAY0_MS) or "")

    archive_finished_days(conn, clock(), root)
    changed = {(revised.coin, revised.open_time_ms): revised, (unverified.coin, unverified.open_time_ms): unverified._replace(confirmed=True)}
    expected = [changed.get((r.coin, r.open_time_ms), r) for r in source if r.open_time_ms < DAY0_MS + 2 * DAY_MS]
    both = archive.read_candles(root, [DAY0_MS, DAY0_MS + DAY_MS], None, DAY0_MS, DAY0_MS + 2 * DAY_MS)
    assert archived_values(both) == candle_values(expected)
    assert archive.verify_day(conn, root, "candles", DAY0_MS) is None


@SQLITE_ONLY
def test_a_day_changed_while_it_is_written_is_never_stamped_stale(
    conn: MemoryConnection, clock: FrozenClock, root: Path, memory_target: MemoryTarget
) -> None:
    rows = realistic_day(2, DAY0_MS, minutes=60)
    store(conn, rows, clock())
    streamer = connect(memory_target, clock=clock)
    revisions = iter([rows[3]._replace(close=rows[3].close * 1.02, high=rows[3].high * 1.02)])

    def revise_before_the_stamp(statement: str) -> None:
        """A repair commits between the archive's read and its stamp's transaction."""
        if statement == "BEGIN IMMEDIATE":
            revision = next(revisions, None)
            if revision is not None:
                store(streamer, [revision], clock())

    conn.set_trace_callback(revise_before_the_stamp)
    try:
        written = archive.write_day(conn, root, "candles", DAY0_MS, DAY0_MS + DAY_MS)
    finally:
        conn.set_trace_callback(None)
        close(streamer)
    expected = [rows[3]._replace(close=rows[3].close * 1.02, high=rows[3].high * 1.02) if r is rows[3] else r for r in rows]
    expected.sort(key=lambda r: (r.coin, r.open_time_ms))
    assert written.outcome is Outcome.WRITTEN
    assert archived_values(archive.read_partition(root, "candles", DAY0_MS)) == candle_values(expected)
    assert stamps.stamp_of(conn, "candles", DAY0_MS) == stamps.Stamp(120, written.checksum or "", DAY0_MS + DAY_MS)


@SQLITE_ONLY
def test_a_day_that_keeps_changing_is_left_unstamped(
    conn: MemoryConnection, clock: FrozenClock, root: Path, memory_target: MemoryTarget
) -> None:
    rows = realistic_day(1, DAY0_MS, minutes=10)
    store(conn, rows, clock())
    streamer = connect(memory_target, clock=clock)
    closes = iter(range(1, 100))

    def revise(statement: str) -> None:
        if statement == "BEGIN IMMEDIATE":
            step = next(closes)
            store(streamer, [rows[0]._replace(close=rows[0].close + step, high=rows[0].high + step)], clock())

    conn.set_trace_callback(revise)
    try:
        with pytest.raises(archive.DayChangingError, match="changed while it was archived, 3 times in a row"):
            archive.write_day(conn, root, "candles", DAY0_MS, DAY0_MS + DAY_MS)
    finally:
        conn.set_trace_callback(None)
        close(streamer)
    assert stamps.stamp_of(conn, "candles", DAY0_MS) is None


def test_a_partly_pruned_day_archived_again_keeps_the_pruned_coins(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    source = four_days(conn, clock)
    late = next(r for r in source if r.coin == "C002" and r.open_time_ms == DAY0_MS + 500 * MINUTE_MS)
    clock.now_ms = AFTER_CANDLE_RETENTION_MS
    first = run_maintenance(conn, Ledger(conn, clock), settings=settings(root))  # rolls up; nothing archived yet
    assert first.candle_rows_pruned == 0 and len(first.archive_blocked["candles"]) == 3
    # C002 day 0: one hour's rollup lost, so the prune holds that coin's day back
    conn.execute("DELETE FROM candle_rollups WHERE coin = 'C002' AND interval = '1h' AND open_time_ms = ?", (DAY0_MS + 8 * 3_600_000,))
    archive_finished_days(conn, clock(), root)
    result = run_maintenance(conn, Ledger(conn, clock), settings=settings(root))
    assert result.candle_rows_held_back == 1440  # C002's day 0 only
    assert conn.execute("SELECT DISTINCT coin FROM candles WHERE open_time_ms < ?", (DAY0_MS + DAY_MS,)).fetchall() == [("C002",)]

    store(conn, [late._replace(volume=late.volume + 1.0)], clock())  # a late revision of the coin still held
    again = archive.write_day(conn, root, "candles", DAY0_MS, clock())
    assert again.outcome is Outcome.WRITTEN and again.rows_kept_from_partition == 2 * 1440 and again.rows_from_memory == 1440
    expected = [r._replace(volume=r.volume + 1.0) if r == late else r for r in source if r.open_time_ms < DAY0_MS + DAY_MS]
    assert archived_values(archive.read_partition(root, "candles", DAY0_MS)) == candle_values(expected)
    assert archive.verify_day(conn, root, "candles", DAY0_MS) is None


def test_funding_hours_are_archived_and_pruned_only_once_archived(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    assert FUNDING.retention is not None
    hours = funding_day(["BTC", "ETH"], DAY0_MS) + funding_day(["BTC", "ETH"], DAY0_MS + DAY_MS, seed=1)
    upsert_funding(conn, hours, clock())
    clock.now_ms = DAY0_MS + (FUNDING.retention.days + 3) * DAY_MS
    archive.write_day(conn, root, "funding", DAY0_MS, clock())  # day 1 is not archived

    result = run_maintenance(conn, Ledger(conn, clock), settings=settings(root))

    assert result.rows_pruned[FUNDING.key] == 48
    day1 = archive.partition_path(root, "funding", DAY0_MS + DAY_MS)
    assert result.archive_blocked["funding"] == {"2026-11-19": f"not stamped: funding of 2026-11-19 was never archived or changed since ({day1})"}
    assert conn.execute("SELECT count(*), min(hour_ms) FROM funding").fetchone() == (48, DAY0_MS + DAY_MS)
    table = archive.read_funding(root, [DAY0_MS], None, DAY0_MS, DAY0_MS + DAY_MS)
    assert table.schema == archive.FUNDING_SCHEMA
    expected = sorted(hours[:48], key=lambda h: (h.coin, h.hour_ms))
    assert archived_values(table) == [
        (h.coin, h.hour_ms, float(h.funding_rate), None if h.premium is None else float(h.premium), h.settled, h.source_time_ms)
        for h in expected
    ]

    archive.write_day(conn, root, "funding", DAY0_MS + DAY_MS, clock())
    day1.unlink()  # archived, then lost
    lost = run_maintenance(conn, Ledger(conn, clock), settings=settings(root))
    assert lost.rows_pruned[FUNDING.key] == 0 and lost.archive_blocked["funding"] == {"2026-11-19": f"partition missing: {day1}"}
    assert conn.execute("SELECT count(*), min(hour_ms) FROM funding").fetchone() == (48, DAY0_MS + DAY_MS)


def test_a_revised_funding_hour_removes_its_days_stamp(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    hours = funding_day(["BTC"], DAY0_MS)
    estimate = hours[5]._replace(settled=False)
    upsert_funding(conn, [*hours[:5], estimate, *hours[6:]], clock())
    archive.write_day(conn, root, "funding", DAY0_MS, DAY0_MS + DAY_MS)
    upsert_funding(conn, [hours[5]], clock())  # settled from fundingHistory
    assert stamps.stamp_of(conn, "funding", DAY0_MS) is None
    archive.write_day(conn, root, "funding", DAY0_MS, DAY0_MS + DAY_MS)
    settled = archive.read_funding(root, [DAY0_MS], ["BTC"], DAY0_MS + 5 * 3_600_000, DAY0_MS + 6 * 3_600_000)
    assert archived_values(settled) == [("BTC", hours[5].hour_ms, float(hours[5].funding_rate), float(hours[5].premium or 0), True, hours[5].source_time_ms)]


def test_the_archive_folder_is_market_archive_or_beside_the_memory(tmp_path: Path) -> None:
    db = tmp_path / "data" / "market.db"
    assert archive.archive_root(db, env={}) == tmp_path / "data" / "archive"
    assert archive.archive_root(db, env={"MARKET_ARCHIVE": str(tmp_path / "elsewhere")}) == tmp_path / "elsewhere"
    assert archive.partition_path(tmp_path, "funding", DAY0_MS) == tmp_path / "funding" / "day=2026-11-18" / "part-0.parquet"


def test_a_partition_carries_its_row_count_and_checksum(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    rows = realistic_day(2, DAY0_MS, minutes=120)
    store(conn, rows, clock())
    written = archive.write_day(conn, root, "candles", DAY0_MS, DAY0_MS + DAY_MS)
    metadata = pq.ParquetFile(written.path).schema_arrow.metadata
    assert metadata[b"market.rows"] == b"240"
    assert metadata[b"market.checksum"].decode() == written.checksum == archive.checksum(archive.to_table("candles", [
        (r.coin, r.open_time_ms, r.open, r.high, r.low, r.close, r.volume, r.trades, int(r.confirmed))  # as SQLite returns them
        for r in sorted(rows, key=lambda r: (r.coin, r.open_time_ms))
    ]))
    assert stamps.stamp_of(conn, "candles", DAY0_MS) == stamps.Stamp(240, written.checksum, DAY0_MS + DAY_MS)
    assert pq.ParquetFile(written.path).metadata.row_group(0).column(0).compression == "ZSTD"
    assert not list(written.path.parent.glob(".*.tmp"))  # written beside, renamed over


def test_reading_a_missing_partition_names_it(root: Path) -> None:
    with pytest.raises(ArchiveError, match=f"partition missing: {root}/candles/day=2026-11-18/part-0.parquet"):
        archive.read_candles(root, [DAY0_MS], None, DAY0_MS, DAY0_MS + DAY_MS)


def test_the_row_count_and_checksum_tell_a_file_from_another(conn: MemoryConnection, clock: FrozenClock, root: Path) -> None:
    store(conn, realistic_day(1, DAY0_MS, minutes=30) + realistic_day(1, DAY0_MS + DAY_MS, minutes=30, seed=1), clock())
    for day in (DAY0_MS, DAY0_MS + DAY_MS):
        archive.write_day(conn, root, "candles", day, DAY0_MS + 2 * DAY_MS)
    day0, day1 = (archive.partition_path(root, "candles", d) for d in (DAY0_MS, DAY0_MS + DAY_MS))
    day0.write_bytes(day1.read_bytes())  # an intact partition, of another day
    reason = archive.verify_day(conn, root, "candles", DAY0_MS) or ""
    assert reason.startswith(f"partition differs from its stamp: {day0} holds 30 rows")
