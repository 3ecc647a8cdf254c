"""The admin page's history reads: each channel's runs of the last day, and the candles'
per-coin coverage as run-length segments, exactly as seeded."""

from __future__ import annotations

import sqlite3

from market_assets.memory.admin_history import RunPoint, Segment, coverage, runs_since
from market_assets.registry import CANDLES, FUNDING, REGISTRY

from .api.picture_seeding import (
    CANDLES_LAG_MS,
    COVERAGE_MINUTES,
    EXPECTED_RUNS,
    EXPECTED_SEGMENTS,
    FUNDING_LAG_MS,
    seed_coverage,
    seed_runs,
)
from .conftest import FrozenClock
from .market_data import DAY_MS, MINUTE_MS, candle, store


def test_each_listed_coin_is_a_run_of_segments_of_its_minutes_states(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    start = seed_coverage(conn, clock())
    end = start + COVERAGE_MINUTES * MINUTE_MS
    expected = {
        coin: [Segment(state, start + first * MINUTE_MS, start + after * MINUTE_MS) for state, first, after in segments]
        for coin, segments in EXPECTED_SEGMENTS.items()
    }
    assert coverage(conn, "1m", MINUTE_MS, start, end) == expected


def test_a_day_of_a_mostly_confirmed_coin_is_a_handful_of_segments(conn: sqlite3.Connection, clock: FrozenClock) -> None:
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


def test_the_runs_of_the_last_day_per_channel_leave_out_older_running_and_backfill_runs(
    conn: sqlite3.Connection, clock: FrozenClock
) -> None:
    now = clock()
    seed_runs(conn, clock, now)
    runs = runs_since(conn, [(c.source, c.name) for c in REGISTRY], now - DAY_MS)
    assert {key: (sum(not r.failed for r in found), sum(r.failed for r in found)) for key, found in runs.items()} == {
        (c.source, c.name): tuple(EXPECTED_RUNS[c][:2]) if c in EXPECTED_RUNS else (0, 0) for c in REGISTRY
    }
    hour = 3600_000
    assert runs[(FUNDING.source, FUNDING.name)] == [
        RunPoint(now - (10 - 3 * i) * hour, now - (10 - 3 * i) * hour + 5000, i == 1, 200,
                 now - (10 - 3 * i) * hour + 5000 - FUNDING_LAG_MS)
        for i in range(4)
    ]
    candles = runs[(CANDLES.source, CANDLES.name)]
    assert [r.rows_written for r in candles] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert [r.finished_at_ms - r.data_latest_ms for r in candles if r.data_latest_ms] == list(CANDLES_LAG_MS)
