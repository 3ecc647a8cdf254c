"""SPEC §10: closed 1-minute candles roll up to 5m, 1h and 1d, incrementally, partial buckets flagged."""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict

import numpy as np
import pytest

from market_assets.ledger import Ledger
from market_assets.maintenance import (
    MaintenanceSettings,
    rebuild_rollups,
    run_maintenance,
)
from market_assets.memory.candles import CandleRow, candles_of
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import Dialect, dialect_of
from market_assets.memory.rollups import rollups_of
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import MAINTENANCE
from tests.conftest import FrozenClock
from tests.market_data import (
    DAY0_MS,
    DAY_MS,
    MINUTE_MS,
    candle,
    random_walk,
    series,
    store,
)

WIDTHS = {"5m": 300_000, "1h": 3_600_000, "1d": DAY_MS}


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """Every test of this module that takes ``conn`` runs on SQLite and on PostgreSQL (``memory_conn``)."""
    return memory_conn


def direct_rollups(rows: list[CandleRow], width_ms: int, now_ms: int) -> list[tuple[object, ...]]:
    """The rollups computed straight from the minutes, in plain Python."""
    buckets: dict[int, list[CandleRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.open_time_ms):
        buckets[row.open_time_ms - row.open_time_ms % width_ms].append(row)
    return [
        (start, float(ms[0].open), max(float(m.high) for m in ms), min(float(m.low) for m in ms), float(ms[-1].close),
         math.fsum(float(m.volume) for m in ms), sum(m.trades for m in ms), len(ms), int(len(ms) == width_ms // MINUTE_MS))
        for start, ms in sorted(buckets.items())
        if start + width_ms <= now_ms
    ]


def assert_rollups_equal(stored: list[tuple[object, ...]], expected: list[tuple[object, ...]]) -> None:
    assert [r[0] for r in stored] == [r[0] for r in expected]
    for got, want in zip(stored, expected):
        assert got[:5] == want[:5] and got[6:] == want[6:], got[0]
        assert got[5] == pytest.approx(want[5], rel=1e-13)  # volume: summed per level, not flat


def gappy_history(conn: MemoryConnection, clock: FrozenClock) -> dict[str, list[CandleRow]]:
    """Two coins over 2.5 days; ETH misses 3% of its minutes at random, BTC one whole hour."""
    rng = np.random.default_rng(11)
    history = {
        "BTC": [r for i, r in enumerate(series("BTC", DAY0_MS, random_walk(1, 3_600, 90_000.0), seed=1)) if not 600 <= i < 660],
        "ETH": [r for r in series("ETH", DAY0_MS, random_walk(2, 3_600, 3_000.0), seed=2) if rng.random() > 0.03],
    }
    for rows in history.values():
        store(conn, rows, clock())
    return history


def test_rollups_match_a_direct_computation_from_the_minutes(conn: MemoryConnection, clock: FrozenClock) -> None:
    history = gappy_history(conn, clock)
    clock.now_ms = DAY0_MS + 3 * DAY_MS
    result = run_maintenance(conn, Ledger(conn, clock))
    for coin, rows in history.items():
        stored_rows = candles_of(conn, coin, "1m")
        assert len(stored_rows) == len(rows)
        for interval, width in WIDTHS.items():
            assert_rollups_equal(rollups_of(conn, coin, interval), direct_rollups(stored_rows, width, clock()))
    assert result.buckets_rolled == {"5m": 2 * 720 - 12, "1h": 2 * 60 - 1, "1d": 2 * 3}  # BTC's missing hour has no buckets


def test_a_bucket_with_missing_minutes_is_flagged_partial(conn: MemoryConnection, clock: FrozenClock) -> None:
    rows = series("SOL", DAY0_MS, random_walk(3, 120))
    store(conn, [r for i, r in enumerate(rows) if i != 7], clock())  # minute 7: the second 5m bucket
    clock.now_ms = DAY0_MS + DAY_MS
    run_maintenance(conn, Ledger(conn, clock))
    five = {r[0]: (r[7], r[8]) for r in rollups_of(conn, "SOL", "5m")}
    assert five[DAY0_MS] == (5, 1)
    assert five[DAY0_MS + 300_000] == (4, 0)
    assert [(r[7], r[8]) for r in rollups_of(conn, "SOL", "1h")] == [(59, 0), (60, 1)]
    assert [(r[7], r[8]) for r in rollups_of(conn, "SOL", "1d")] == [(119, 0)]


def test_buckets_wait_until_they_have_ended_and_no_minute_is_forming(conn: MemoryConnection, clock: FrozenClock) -> None:
    closes = random_walk(4, 90)
    store(conn, series("BTC", DAY0_MS, closes[:88]), clock())
    store(conn, [candle("BTC", DAY0_MS + 88 * MINUTE_MS, closes[88], closed=False)], clock())  # forming, bucket 85-89
    clock.now_ms = DAY0_MS + 90 * MINUTE_MS
    first = run_maintenance(conn, Ledger(conn, clock))
    assert first.buckets_rolled == {"5m": 17, "1h": 1, "1d": 0}  # 0-85 min; 85-90 holds a forming minute
    assert first.buckets_queued == 3  # that 5m bucket, its hour, its day
    assert rollups_of(conn, "BTC", "5m")[-1][0] == DAY0_MS + 80 * MINUTE_MS

    store(conn, [candle("BTC", DAY0_MS + 88 * MINUTE_MS, closes[88]), candle("BTC", DAY0_MS + 89 * MINUTE_MS, closes[89])], clock())
    second = run_maintenance(conn, Ledger(conn, clock))
    assert second.buckets_rolled == {"5m": 1, "1h": 0, "1d": 0}  # hour 1 and day 0 have not ended
    five = rollups_of(conn, "BTC", "5m")[-1]
    assert (five[0], five[4], five[7], five[8]) == (DAY0_MS + 85 * MINUTE_MS, closes[89], 5, 1)

    clock.now_ms = DAY0_MS + DAY_MS
    third = run_maintenance(conn, Ledger(conn, clock))
    assert third.buckets_rolled == {"5m": 0, "1h": 1, "1d": 1}
    assert third.buckets_queued == 0
    assert [(r[7], r[8]) for r in rollups_of(conn, "BTC", "1h")] == [(60, 1), (30, 0)]


def test_a_filled_gap_rerolls_only_the_buckets_it_touches(conn: MemoryConnection, clock: FrozenClock) -> None:
    rows = series("ETH", DAY0_MS, random_walk(5, 2 * 1440))
    store(conn, [r for i, r in enumerate(rows) if i != 1500], clock())
    clock.now_ms = DAY0_MS + 2 * DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)
    assert [(r[7], r[8]) for r in rollups_of(conn, "ETH", "1d")] == [(1440, 1), (1439, 0)]

    store(conn, [rows[1500]], clock())  # the backfill
    refill = run_maintenance(conn, ledger)
    assert refill.buckets_rolled == {"5m": 1, "1h": 1, "1d": 1}
    assert [(r[7], r[8]) for r in rollups_of(conn, "ETH", "1d")] == [(1440, 1), (1440, 1)]
    assert_rollups_equal(rollups_of(conn, "ETH", "1h"), direct_rollups(rows, 3_600_000, clock()))


def test_a_revised_closed_minute_is_rolled_again_and_an_identical_resend_is_not(conn: MemoryConnection, clock: FrozenClock) -> None:
    rows = series("BTC", DAY0_MS, random_walk(6, 60))
    store(conn, rows, clock())
    clock.now_ms = DAY0_MS + DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)
    store(conn, rows[10:20], clock())
    assert run_maintenance(conn, ledger).buckets_rolled == {"5m": 0, "1h": 0, "1d": 0}
    revised = rows[12]._replace(high=rows[12].high * 2)
    store(conn, [revised], clock())
    assert run_maintenance(conn, ledger).buckets_rolled == {"5m": 1, "1h": 1, "1d": 1}
    assert rollups_of(conn, "BTC", "1d")[0][2] == float(revised.high)


def test_rerunning_maintenance_changes_nothing(conn: MemoryConnection, clock: FrozenClock) -> None:
    gappy_history(conn, clock)
    clock.now_ms = DAY0_MS + 3 * DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)
    before = conn.execute("SELECT * FROM candle_rollups ORDER BY coin, interval, open_time_ms").fetchall()
    clock.advance(seconds=3600)
    again = run_maintenance(conn, ledger)
    assert again.rows_written == 0 and again.buckets_queued == 0 and again.candle_rows_pruned == 0
    assert conn.execute("SELECT * FROM candle_rollups ORDER BY coin, interval, open_time_ms").fetchall() == before
    runs = runs_of(conn, MAINTENANCE.source, MAINTENANCE.name)
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2 and runs[1].rows_written == 0


def test_a_full_rebuild_reproduces_the_incremental_rollups(conn: MemoryConnection, clock: FrozenClock) -> None:
    gappy_history(conn, clock)
    clock.now_ms = DAY0_MS + 3 * DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)
    values = "SELECT coin, interval, open_time_ms, open, high, low, close, volume, trades, minutes, complete FROM candle_rollups ORDER BY 1, 2, 3"
    incremental = conn.execute(values).fetchall()
    conn.execute("DELETE FROM candle_rollups WHERE interval = '1h' AND coin = 'ETH'")  # lost rows, repaired
    clock.advance(seconds=60)
    rebuilt = rebuild_rollups(conn, ledger, settings=MaintenanceSettings(wal_bound_bytes=64 * 1024))
    assert rebuilt.days == 3 and rebuilt.buckets_rolled["1d"] == 6
    if dialect_of(conn) is Dialect.SQLITE:
        assert rebuilt.wal_truncations >= 2  # bounded between days, not only at the end
    else:
        assert rebuilt.wal_truncations == 0  # PostgreSQL keeps its own WAL
    assert conn.execute(values).fetchall() == incremental
    assert {r[0] for r in conn.execute("SELECT DISTINCT rolled_up_at_ms FROM candle_rollups")} == {clock()}


def test_a_minute_revised_in_an_hour_still_open_rerolls_its_bucket_beside_the_new_ones(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    rows = series("SOL", DAY0_MS, random_walk(7, 90))
    store(conn, rows[:32], clock())
    clock.now_ms = DAY0_MS + 32 * MINUTE_MS
    ledger = Ledger(conn, clock)
    assert run_maintenance(conn, ledger).buckets_rolled == {"5m": 6, "1h": 0, "1d": 0}  # 0-30 min; hour 0 still open
    revised = rows[3]._replace(low=rows[3].low / 2)  # a repair in bucket 0, already rolled
    store(conn, [revised, *rows[32:45]], clock())
    clock.now_ms = DAY0_MS + 45 * MINUTE_MS
    again = run_maintenance(conn, ledger)
    # The hour's queue entry is a span, not a set: bucket 0 through 40, the five between again (same values).
    assert again.buckets_rolled == {"5m": 9, "1h": 0, "1d": 0}
    expected = direct_rollups([revised, *rows[:3], *rows[4:45]], 300_000, clock())
    assert_rollups_equal(rollups_of(conn, "SOL", "5m"), expected)
    store(conn, rows[45:], clock())
    clock.now_ms = DAY0_MS + DAY_MS
    run_maintenance(conn, ledger)
    assert_rollups_equal(rollups_of(conn, "SOL", "1h"), direct_rollups([revised, *rows[:3], *rows[4:]], 3_600_000, clock()))


def test_buckets_queued_before_the_hourly_queue_roll_the_same_after_migrating(tmp_path, clock: FrozenClock) -> None:
    """A memory at schema V5 holds 5m, 1h and 1d queue entries; V6 turns them into hours and days."""
    from market_assets.memory import connect
    from market_assets.memory.schema import MIGRATIONS

    path = tmp_path / "v5.db"
    old = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:5]:
        for statement in statements:
            old.execute(statement)
    old.execute("PRAGMA user_version = 5")
    old.execute("INSERT INTO memory_info (key, value) VALUES ('created_at_ms', ?)", (str(clock()),))
    rows = series("ETH", DAY0_MS, random_walk(8, 150))
    old.executemany(
        "INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume, trades, "
        "closed, confirmed, ingested_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*r[:4], float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume), r.trades, 1, 0, clock())
         for r in rows],
    )
    # Hours 1 and 2 queued as 5m buckets (by the V5 trigger), hour 0 as an hour and day 0 as a
    # day (as a V5 run leaves them: hour 0's minutes were never rolled here, so it has no 5m rows).
    old.execute("DELETE FROM pending_rollups WHERE bucket_ms < ?", (DAY0_MS + HOUR,))
    old.execute("INSERT INTO pending_rollups (coin, interval, bucket_ms) VALUES ('ETH', '1h', ?), ('ETH', '1d', ?)",
                (DAY0_MS, DAY0_MS))
    old.close()

    migrated = connect(path, clock=clock)
    try:
        assert migrated.execute("SELECT interval, bucket_ms - ?, from_ms - ?, to_ms - ? FROM pending_rollups ORDER BY 1, 2",
                                (DAY0_MS,) * 3).fetchall() == [
            ("1d", 0, 0, 0), ("1h", 0, 0, 0), ("1h", HOUR, HOUR, 2 * HOUR), ("1h", 2 * HOUR, 2 * HOUR, 2 * HOUR + 30 * MINUTE_MS)]
        clock.now_ms = DAY0_MS + DAY_MS
        result = run_maintenance(migrated, Ledger(migrated, clock))
        assert result.buckets_rolled == {"5m": 18, "1h": 2, "1d": 1} and result.buckets_queued == 0
        stored = candles_of(migrated, "ETH", "1m")
        assert_rollups_equal(rollups_of(migrated, "ETH", "5m"), direct_rollups(stored, 300_000, clock())[12:])
        assert_rollups_equal(rollups_of(migrated, "ETH", "1h"), direct_rollups(stored, HOUR, clock())[1:])
        assert [r[7] for r in rollups_of(migrated, "ETH", "1d")] == [90]
    finally:
        migrated.close()


HOUR = 3_600_000


def test_rolling_leaves_the_connections_page_caches_as_they_were(tmp_path, clock: FrozenClock) -> None:
    """SQLite rolls in a larger page cache (``rollups.ROLLING_CACHE_KIB``), the memory's and the
    temporary database's; the connection gets its own sizes back, also when a roll fails."""
    from market_assets.memory import connect
    from market_assets.memory.rollups import ROLLING_CACHE_KIB, roll_pending

    conn = connect(tmp_path / "m.db", clock=clock)
    try:
        store(conn, series("BTC", DAY0_MS, random_walk(9, 120)), clock())
        conn.execute("PRAGMA main.cache_size = -3000")
        seen: list[int] = []
        conn.set_trace_callback(lambda sql: seen.append(conn.execute("PRAGMA main.cache_size").fetchone()[0])
                                if sql.startswith("INSERT OR IGNORE INTO candle_rollups") else None)
        assert roll_pending(conn, DAY0_MS + DAY_MS) == {"5m": 24, "1h": 2, "1d": 1}
        conn.set_trace_callback(None)
        assert set(seen) == {-ROLLING_CACHE_KIB}
        caches = [conn.execute(f"PRAGMA {schema}.cache_size").fetchone()[0] for schema in ("main", "temp")]
        assert caches == [-3000, -2000]  # the temporary database was at SQLite's default

        conn.execute("PRAGMA temp.cache_size = -4000")
        conn.execute("DROP TABLE temp.rollup_rows")
        conn.execute("CREATE TEMP TABLE rollup_rows (coin TEXT NOT NULL)")  # a wrong shape: the fill fails
        store(conn, [candle("BTC", DAY0_MS + 120 * MINUTE_MS, 90.0)], clock())
        with pytest.raises(sqlite3.OperationalError):
            roll_pending(conn, DAY0_MS + DAY_MS)
        caches = [conn.execute(f"PRAGMA {schema}.cache_size").fetchone()[0] for schema in ("main", "temp")]
        assert caches == [-3000, -4000]
        assert len(rollups_of(conn, "BTC", "5m")) == 24  # nothing of the failed roll kept, its hour still queued
        assert conn.execute("SELECT bucket_ms - ? FROM pending_rollups WHERE interval = '1h'", (DAY0_MS,)).fetchall() == [(2 * HOUR,)]
    finally:
        conn.close()
