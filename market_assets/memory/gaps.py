"""SQL of ``candle_gaps``: what became of the minutes the stream did not deliver, one row per run.

The minutes themselves wait in the durable repair queue (``memory.repairs``); once REST has
answered for them they are recorded here as runs: ``filled`` (REST had the candles),
``no_trades`` (REST has no candle for the minute but has a later one: nobody traded) and
``unfillable`` (older than the 5,000-candle window). Candles are never synthesised to close a
gap. ``detected`` is only read: memories from before the repair queue may hold such rows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection


class GapStatus(StrEnum):
    DETECTED = "detected"
    FILLED = "filled"
    UNFILLABLE = "unfillable"
    NO_TRADES = "no_trades"
    """candleSnapshot has no candle for the minute while it has a later one: nobody traded."""


class GapRow(NamedTuple):
    coin: str
    interval: str
    start_ms: int
    end_ms: int
    """Exclusive: the open time of the first bucket after the run."""
    status: GapStatus
    missing_buckets: int
    detected_at_ms: int
    resolved_at_ms: int | None


def gaps_of(conn: MemoryConnection, coin: str | None = None, interval: str = "1m") -> list[GapRow]:
    """Recorded runs, oldest first; every coin's when ``coin`` is None."""
    rows = conn.execute(
        "SELECT coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms, resolved_at_ms "
        "FROM candle_gaps WHERE interval = ? AND (CAST(? AS TEXT) IS NULL OR coin = ?) ORDER BY coin, start_ms",
        (interval, coin, coin),
    ).fetchall()
    return [
        GapRow(coin, interval_, start, end, GapStatus(status), missing, detected_at, resolved_at)
        for coin, interval_, start, end, status, missing, detected_at, resolved_at in rows
    ]
