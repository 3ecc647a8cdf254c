"""The dashboard's live counts (SPEC §6): the rows and subjects of a channel since its settled count
and in the last hour, on both engines, against a count made here of the rows written."""

from __future__ import annotations

import pytest

from market_assets.ledger import Ledger
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dashboard import (
    RecentCounts,
    RecentRuns,
    WindowCounts,
    recent_counts,
    recent_runs_of,
)
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import CANDLES, FUNDING

from .conftest import T0_MS, FrozenClock
from .market_data import MINUTE_MS, candle, store

NOW = T0_MS - T0_MS % MINUTE_MS
HOUR_MS = 3_600_000


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    return memory_conn


def expected(opens: dict[str, list[int]], since_ms: int) -> tuple[int, int, int | None]:
    times = [(coin, t) for coin, ts in opens.items() for t in ts if t >= since_ms]
    return len(times), len({coin for coin, _ in times}), max((t for _, t in times), default=None)


@pytest.mark.parametrize(("settled_ago_min", "hour_ago_min"), [(90, 60), (30, 60), (60, 60), (200, 60)])
def test_the_live_counts_equal_a_count_of_the_rows_written(
    conn: MemoryConnection, settled_ago_min: int, hour_ago_min: int
) -> None:
    opens = {
        "BTC": [NOW - m * MINUTE_MS for m in range(1, 120)],  # every minute of two hours
        "ETH": [NOW - m * MINUTE_MS for m in (5, 45, 75, 100)],  # a few, either side of each window
        "SOL": [NOW - m * MINUTE_MS for m in (95, 150)],  # only before the last hour
        "XRP": [NOW - 300 * MINUTE_MS],  # before every window
    }
    store(conn, [candle(coin, t, 10.0) for coin, ts in opens.items() for t in ts], NOW)
    store(conn, [candle("BTC", NOW - 10 * MINUTE_MS, 10.0)._replace(interval="5m")], NOW)  # another interval: not counted
    settled, hour = NOW - settled_ago_min * MINUTE_MS, NOW - hour_ago_min * MINUTE_MS
    got = recent_counts(conn, CANDLES.data, settled, hour)
    rows, subjects, latest = expected(opens, settled)
    hour_rows, hour_subjects, hour_latest = expected(opens, hour)
    assert got == RecentCounts(rows, subjects, max(latest or 0, hour_latest or 0) or None,
                               WindowCounts(hour_rows, hour_subjects, hour_latest))


def test_no_row_since_either_window_counts_nothing(conn: MemoryConnection) -> None:
    store(conn, [candle("BTC", NOW - 5 * HOUR_MS, 10.0)], NOW)
    assert recent_counts(conn, CANDLES.data, NOW - HOUR_MS, NOW - HOUR_MS) == RecentCounts(0, 0, None, WindowCounts(0, 0, None))


def test_the_recent_runs_of_every_channel_read_at_once_equal_a_count_of_the_ledger(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    ledger = Ledger(conn, clock)
    for i in range(6):
        try:
            with ledger.run(FUNDING if i % 2 else CANDLES) as run:
                run.add_retries(i)
                if i % 3 == 0:
                    raise RuntimeError("refused")
        except RuntimeError:
            pass
        clock.advance(seconds=600)
    windows = [(c.source, c.name, since) for c in (CANDLES, FUNDING) for since in (0, clock() - 2_000_000, clock())]
    expected = []
    for source, channel, since in windows:
        runs = [r for r in runs_of(conn, source, channel) if r.started_at_ms >= since]
        expected.append(RecentRuns(len(runs), sum(r.status is RunStatus.FAILED for r in runs),
                                   sum(r.retries for r in runs), sum(r.throttles for r in runs)))
    assert [r.runs for r in expected] == [3, 1, 0, 3, 2, 0]  # the ledger above, as the windows cut it
    assert recent_runs_of(conn, windows) == expected
