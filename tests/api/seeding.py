"""A market memory seeded through the writers' own APIs (ledger, candle writer, universe upsert)."""

from __future__ import annotations

import sqlite3
from typing import Any

from market_assets.clock import Clock
from market_assets.ledger import Ledger
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.runs import RunRecord, get_run
from market_assets.registry import Channel
from tests.market_data import candle, store


def listed(conn: sqlite3.Connection, coins: list[str], now_ms: int, *, delisted: tuple[str, ...] = ()) -> None:
    rows = [UniverseRow(coin, "", i, 2, 20, coin in delisted) for i, coin in enumerate([*coins, *delisted])]
    upsert_universe(conn, rows, now_ms)


def candles(conn: sqlite3.Connection, coin: str, *open_times_ms: int, interval: str = "1m") -> None:
    store(conn, [candle(coin, open_ms, 100.0)._replace(interval=interval) for open_ms in open_times_ms], min(open_times_ms))


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
