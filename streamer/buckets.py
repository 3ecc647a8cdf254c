"""Forming vs closed: when a streamed bucket may be stored as final (sources.md §1.3).

Frames re-send the current bucket with growing volume; a bucket is final only once a later ``t``
arrived for its coin or its close time ``T`` has passed. A frame received after ``T`` carries the
bucket's final state (no trade can join it any more), so it is stored closed and, being newer,
replaces whatever was stored before it. Pure: the caller passes the receive time.
"""

from __future__ import annotations

from market_assets.memory.candles import CandleRow
from market_assets.sources.hyperliquid import Candle


class BucketBook:
    """The newest bucket open time seen per coin, and the closed-or-forming decision."""

    def __init__(self) -> None:
        self.newest_open: dict[str, int] = {}

    def observe(self, candle: Candle, received_ms: int) -> bool:
        """Record ``candle`` and say whether it is final."""
        newest = self.newest_open.get(candle.coin)
        if newest is None or candle.open_ms > newest:
            self.newest_open[candle.coin] = candle.open_ms
            newest = candle.open_ms
        return is_closed(candle, newest, received_ms)


def is_closed(candle: Candle, newest_open_ms: int, at_ms: int) -> bool:
    """Final when a later bucket of the coin has been seen, or when its close time has passed."""
    return candle.open_ms < newest_open_ms or candle.close_ms < at_ms


def row_of(candle: Candle, closed: bool) -> CandleRow:
    return CandleRow(
        candle.coin,
        candle.interval,
        candle.open_ms,
        candle.close_ms,
        candle.open,
        candle.high,
        candle.low,
        candle.close,
        candle.volume,
        candle.trades,
        closed,
    )
