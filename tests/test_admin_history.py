"""The admin page's history reads: each channel's runs of the last day, and the candles'
per-coin coverage as run-length segments, exactly as seeded, on both engines."""

from __future__ import annotations

import pytest

from market_assets.memory.admin_history import RunBucket, Segment, coverage, run_buckets
from market_assets.memory.connection import MemoryConnection
from market_assets.registry import CANDLES, FUNDING, REGISTRY

from .api.picture_seeding import (
    CANDLES_LAG_MS,
    COVERAGE_MINUTES,
    EXPECTED_RUNS,
    EXPECTED_SEGMENTS,
    FUNDING_LAG_MS,
    HOUR_MS,
    seed_coverage,
    seed_runs,
)
from .conftest import FrozenClock
from .market_data import DAY_MS, MINUTE_MS, candle, store
from .postgres.reuse import memory_target, reused_postgres

__all__ = ["memory_target", "reused_postgres"]  # the PostgreSQL memory reused, emptied per test


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The root conftest's ``memory_conn``: each test once per engine."""
    return memory_conn


def test_each_listed_coin_is_a_run_of_segments_of_its_minutes_states(conn: MemoryConnection, clock: FrozenClock) -> None:
    start = seed_coverage(conn, clock())
    end = start + COVERAGE_MINUTES * MINUTE_MS
    expected = {
        coin: [Segment(state, start + first * MINUTE_MS, start + after * MINUTE_MS) for state, first, after in segments]
        for coin, segments in EXPECTED_SEGMENTS.items()
    }
    assert coverage(conn, "1m", MINUTE_MS, start, end) == expected


def test_a_day_of_a_mostly_confirmed_coin_is_a_handful_of_segments(conn: MemoryConnection, clock: FrozenClock) -> None:
    """1,440 minutes, confirmed but two: three segments, and the holes are found by counting."""
    now = clock()
    end = now - now % MINUTE_MS
    start = end - DAY_MS
    seed_coverage(conn, now)
    day = [candle("ETH", start + m * MINUTE_MS, 100.0)._replace(confirmed=m != 700) for m in range(1440) if m != 1000]
    store(conn, day, now)
    eth = coverage(conn, "1m", MINUTE_MS, start, end)["ETH"]
    assert [(s.state.value, (s.start_ms - start) // MINUTE_MS, (s.end_ms - start) // MINUTE_MS) for s in eth] == [
        ("confirmed", 0, 700), ("unverified", 700, 701), ("confirmed", 701, 1000), ("missing", 1000, 1001),
        ("confirmed", 1001, 1440),
    ]


def test_the_runs_of_the_last_day_are_tallied_per_bucket_of_their_end_without_older_running_or_backfill_runs(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    now = clock()
    seed_runs(conn, clock, now)
    hourly = run_buckets(conn, [(c.source, c.name) for c in REGISTRY], now - DAY_MS, now, 24)
    assert {key: (sum(b.runs for b in found), sum(b.failed for b in found)) for key, found in hourly.items()} == {
        (c.source, c.name): (EXPECTED_RUNS[c].succeeded + EXPECTED_RUNS[c].failed, EXPECTED_RUNS[c].failed)
        if c in EXPECTED_RUNS else (0, 0)
        for c in REGISTRY
    }
    failed_end = now - 7 * HOUR_MS + 5000
    assert hourly[(FUNDING.source, FUNDING.name)] == [
        RunBucket(14, 1, 200, 0, None, None, None, 1, FUNDING_LAG_MS, None),
        RunBucket(17, 1, 200, 1, failed_end, failed_end, 200, 1, FUNDING_LAG_MS, FUNDING_LAG_MS),
        RunBucket(20, 1, 200, 0, None, None, None, 1, FUNDING_LAG_MS, None),
        RunBucket(23, 1, 200, 0, None, None, None, 1, FUNDING_LAG_MS, None),
    ]
    assert [b.bucket for b in hourly[(CANDLES.source, CANDLES.name)]] == list(range(4, 12))

    (day,) = run_buckets(conn, [(CANDLES.source, CANDLES.name)], now - DAY_MS, now, 1)[(CANDLES.source, CANDLES.name)]
    first_failed, last_failed = (now - (20 - i) * HOUR_MS + MINUTE_MS for i in (2, 5))
    assert day == RunBucket(0, 8, 80, 2, first_failed, last_failed, 60, 8, max(CANDLES_LAG_MS), CANDLES_LAG_MS[2])
