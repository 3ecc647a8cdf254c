"""A market memory seeded through the writers' own APIs (ledger, candle writer, repair queue,
universe upsert)."""

from __future__ import annotations

import sqlite3
from typing import Any

from market_assets.clock import Clock
from market_assets.ledger import Ledger
from market_assets.memory.candles import RepairReason, queue_repairs
from market_assets.memory.connection import write_transaction
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.repairs import apply_repair
from market_assets.memory.runs import RunRecord, get_run
from market_assets.registry import CANDLES, Channel
from tests.conftest import FrozenClock
from tests.market_data import DAY_MS, MINUTE_MS, candle, store


def listed(conn: sqlite3.Connection, coins: list[str], now_ms: int, *, delisted: tuple[str, ...] = ()) -> None:
    rows = [UniverseRow(coin, "", i, 2, 20, coin in delisted) for i, coin in enumerate([*coins, *delisted])]
    upsert_universe(conn, rows, now_ms)


def candles(conn: sqlite3.Connection, coin: str, *open_times_ms: int, interval: str = "1m", confirmed: bool = True) -> None:
    """Closed candles, confirmed (their final state known) unless said otherwise."""
    rows = [candle(coin, open_ms, 100.0)._replace(interval=interval, confirmed=confirmed) for open_ms in open_times_ms]
    store(conn, rows, min(open_times_ms))


def queued(conn: sqlite3.Connection, coin: str, reason: RepairReason, *open_times_ms: int, now_ms: int) -> None:
    """1-minute candles owed to REST, in the durable repair queue."""
    with write_transaction(conn):
        queue_repairs(conn, "1m", [(coin, open_ms, reason) for open_ms in open_times_ms], now_ms)


def no_trades(conn: sqlite3.Connection, coin: str, *open_times_ms: int, now_ms: int) -> None:
    """Missing minutes a repair found nobody traded in (candleSnapshot had no candle for them)."""
    queued(conn, coin, RepairReason.MISSING, *open_times_ms, now_ms=now_ms)
    apply_repair(conn, coin, "1m", MINUTE_MS, [], minutes=open_times_ms, no_trades=open_times_ms, unfillable=(), now_ms=now_ms)


def candle_fidelity(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    """Candles of every fidelity, after moving ``clock`` on to the next whole minute.

    Confirmed minutes; two unverified ones of the last 24 h (closed 11 and 5 minutes ago) and one
    older, all three queued, with one missing minute; two no-trade minutes of the last 24 h and
    one older; streamer windows of the last hour (and one before it) that corrected minutes and
    rejected frames. Seen from ``clock()``: 2 unverified minutes (the oldest opened 12 minutes
    ago), a repair queue of 4, 2 no-trade minutes, 3 corrected minutes and rejected frames
    ``{"low_above_high": 1, "non_finite": 3}`` in the last hour.
    """
    clock.advance(seconds=(MINUTE_MS - clock.now_ms % MINUTE_MS) / 1000)
    now = clock.now_ms
    listed(conn, ["BTC", "ETH"], now)
    candles(conn, "BTC", now - 4 * MINUTE_MS, now - 3 * MINUTE_MS)
    candles(conn, "ETH", now - 4 * MINUTE_MS)
    old = now - DAY_MS - 5 * MINUTE_MS
    candles(conn, "BTC", old, now - 12 * MINUTE_MS, confirmed=False)
    candles(conn, "ETH", now - 6 * MINUTE_MS, confirmed=False)
    queued(conn, "BTC", RepairReason.UNVERIFIED, old, now - 12 * MINUTE_MS, now_ms=now)
    queued(conn, "ETH", RepairReason.UNVERIFIED, now - 6 * MINUTE_MS, now_ms=now)
    queued(conn, "ETH", RepairReason.MISSING, now - 7 * MINUTE_MS, now_ms=now)
    no_trades(conn, "BTC", now - 30 * MINUTE_MS, now - 29 * MINUTE_MS, now_ms=now)
    no_trades(conn, "ETH", now - DAY_MS - 60 * MINUTE_MS, now_ms=now)
    windows = (
        (70, {"corrected_minutes": 5, "repair_requests": 2, "rejected_frames": {"negative": 9}}),
        (60, {"corrected_minutes": 1, "repair_requests": 1, "rejected_frames": {"non_finite": 1}}),
        (2, {"corrected_minutes": 2, "repair_requests": 1, "rejected_frames": {"non_finite": 2, "low_above_high": 1}}),
    )
    for minutes_ago, metadata in windows:
        start = now - minutes_ago * MINUTE_MS
        finished_run(conn, clock, CANDLES, started_at_ms=start, finished_at_ms=start + MINUTE_MS, rows=3, metadata=metadata)


def finished_run(
    conn: sqlite3.Connection,
    clock: Clock,
    channel: Channel,
    *,
    started_at_ms: int,
    finished_at_ms: int,
    rows: int = 0,
    error: str | None = None,
    retries: int = 0,
    throttles: int = 0,
    metadata: dict[str, Any] | None = None,
) -> RunRecord:
    run = Ledger(conn, clock).start(channel, started_at_ms=started_at_ms, metadata=metadata)
    run.add_rows(rows)
    run.add_retries(retries)
    run.add_throttles(throttles)
    if error is None:
        run.succeed(finished_at_ms=finished_at_ms)
    else:
        run.fail(error, finished_at_ms=finished_at_ms)
    record = get_run(conn, run.run_id)
    assert record is not None
    return record
