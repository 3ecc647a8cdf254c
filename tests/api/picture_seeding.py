"""A memory seeded for the admin page's pictures, through the writers' own APIs: known runs per
channel and candles of every coverage state, with the exact marks and segments they must draw."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from market_assets.clock import Clock
from market_assets.ledger import Ledger
from market_assets.memory.admin_history import MinuteState
from market_assets.memory.candles import RepairReason
from market_assets.memory.checks import CheckResult, record_results
from market_assets.memory.repairs import apply_repair
from market_assets.registry import CANDLES, FUNDING, MAINTENANCE, Channel
from tests.market_data import MINUTE_MS, candle, store

from .seeding import finished_run, listed, queued

C, U, N, M, X = (MinuteState.CONFIRMED, MinuteState.UNVERIFIED, MinuteState.NO_TRADES, MinuteState.MISSING,
                 MinuteState.UNFILLABLE)

COVERAGE_MINUTES = 20
"""The seeded coins' minutes: the last ``COVERAGE_MINUTES`` before the current one."""

EXPECTED_SEGMENTS: dict[str, list[tuple[MinuteState, int, int]]] = {
    # (state, first minute, minute after the last), minutes counted from the span's start
    "BTC": [(C, 0, 3), (U, 3, 5), (C, 5, 7), (N, 7, 9), (M, 9, 10), (C, 10, 12), (X, 12, 13), (C, 13, 19), (U, 19, 20)],
    "DOGE": [(M, 0, 20)],
    "ETH": [(C, 0, 20)],
    "SOL": [(N, 0, 2), (M, 2, 5), (C, 5, 15), (M, 15, 20)],
}
"""Listed coins in name order; XRP is delisted and not drawn."""

NO_TRADES_BEFORE = {"SOL": 3}
"""Minutes a coin's first no-trade span begins before the seeded minutes (drawn by a longer span)."""


class SeededRuns(NamedTuple):
    succeeded: int
    failed: int
    lags: int
    """Runs with a newest data timestamp: bars of the lag sparkline."""
    over: int
    """Of those, the runs whose data lag was past the channel's ``data_lag`` threshold."""


EXPECTED_RUNS = {CANDLES: SeededRuns(6, 2, 8, 1), FUNDING: SeededRuns(3, 1, 4, 0)}
"""Runs of the last 24 hours per channel, as the sparklines must mark them; the others have none."""

HOUR_MS = 3600_000
CANDLES_LAG_MS = (30_000,) * 7 + (10 * MINUTE_MS,)
"""Each candles window's data lag when it ended: the last one past the 360 s threshold."""
FUNDING_LAG_MS = 1800_000

FAILING_SUMMARY = "failed: 1 of 28,800; first: BTC at 2026-11-18 10:00: low <b>101.5</b> above high 100.0"
"""Candles' failing ``ohlc_invariants`` (blocking); ``unique_minutes`` passed."""


def told(conn: sqlite3.Connection, coin: str, *, no_trades: tuple[int, ...] = (), unfillable: tuple[int, ...] = (),
         now_ms: int) -> None:
    """Minutes REST answered for: nobody traded, or beyond candleSnapshot's reach."""
    minutes = (*no_trades, *unfillable)
    queued(conn, coin, RepairReason.MISSING, *minutes, now_ms=now_ms)
    apply_repair(conn, coin, "1m", MINUTE_MS, [], minutes=minutes, no_trades=no_trades, unfillable=unfillable,
                 now_ms=now_ms)


def seed_coverage(conn: sqlite3.Connection, now_ms: int) -> int:
    """Candles drawing :data:`EXPECTED_SEGMENTS` over the ``COVERAGE_MINUTES`` before the minute
    of ``now_ms``; returns the span's start."""
    start = now_ms - now_ms % MINUTE_MS - COVERAGE_MINUTES * MINUTE_MS
    at = [start + m * MINUTE_MS for m in range(COVERAGE_MINUTES)]
    listed(conn, ["BTC", "DOGE", "ETH", "SOL"], now_ms, delisted=("XRP",))
    btc_confirmed = [at[m] for m in (0, 1, 2, 5, 6, 10, 11, 13, 14, 15, 16, 17, 18)]
    store(conn, [candle("BTC", t, 100.0)._replace(confirmed=True) for t in btc_confirmed], now_ms)
    store(conn, [candle("BTC", at[3], 100.0), candle("BTC", at[4], 100.0),
                 candle("BTC", at[19], 100.0, closed=False)], now_ms)
    told(conn, "BTC", no_trades=(at[7], at[8]), unfillable=(at[12],), now_ms=now_ms)
    store(conn, [candle("ETH", t, 100.0)._replace(confirmed=True) for t in at], now_ms)
    store(conn, [candle("ETH", at[4], 100.0)._replace(interval="5m")], now_ms)  # another interval: not drawn
    store(conn, [candle("SOL", t, 100.0)._replace(confirmed=True) for t in at[5:15]], now_ms)
    before = tuple(start - m * MINUTE_MS for m in range(NO_TRADES_BEFORE["SOL"], 0, -1))
    told(conn, "SOL", no_trades=(*before, at[0], at[1]), now_ms=now_ms)
    store(conn, [candle("XRP", t, 100.0) for t in at[:3]], now_ms)
    return start


def seed_runs(conn: sqlite3.Connection, clock: Clock, now_ms: int) -> None:
    """:data:`EXPECTED_RUNS`, each with its data lag, plus runs the sparklines must leave out:
    one started before the last 24 hours, one still running, a backfill; and two check results
    of candles, one failing."""
    for i, lag in enumerate(CANDLES_LAG_MS):  # candles windows, the 3rd and 6th failed
        start = now_ms - (20 - i) * HOUR_MS
        _run(conn, clock, CANDLES, start, start + MINUTE_MS, 10 * (i + 1), lag,
             "cannot write: database is locked" if i in (2, 5) else None)
    for i, error in enumerate((None, "HTTP 500: <b>boom</b>", None, None)):
        start = now_ms - (10 - 3 * i) * HOUR_MS
        _run(conn, clock, FUNDING, start, start + 5000, 200, FUNDING_LAG_MS, error)
    old = now_ms - 25 * HOUR_MS
    _run(conn, clock, FUNDING, old, old + 5000, 200, FUNDING_LAG_MS, None)
    finished_run(conn, clock, FUNDING, started_at_ms=now_ms - HOUR_MS, finished_at_ms=now_ms - HOUR_MS + 5000, rows=7,
                 metadata={"backfill": "2026-11-01..2026-11-02"})
    Ledger(conn, clock).start(MAINTENANCE, started_at_ms=now_ms - 2 * MINUTE_MS)
    record_results(conn, [
        CheckResult(CANDLES.source, CANDLES.name, "ohlc_invariants", False, True, "ERROR", now_ms, 28_800, 1, FAILING_SUMMARY),
        CheckResult(CANDLES.source, CANDLES.name, "unique_minutes", True, False, "ERROR", now_ms, 28_800, 0, "passed"),
    ])


def _run(conn: sqlite3.Connection, clock: Clock, channel: Channel, started_ms: int, finished_ms: int, rows: int,
         lag_ms: int, error: str | None) -> None:
    run = Ledger(conn, clock).start(channel, started_at_ms=started_ms)
    run.add_rows(rows)
    run.data_latest_ms = finished_ms - lag_ms
    if error is None:
        run.succeed(finished_at_ms=finished_ms)
    else:
        run.fail(error, finished_at_ms=finished_ms)
