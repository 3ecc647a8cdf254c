"""Seeded 1-minute candle series for the features and maintenance tests, stored through the
streamer's own writer (``memory.candles.write_candles``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from market_assets.memory.candles import CandleRow, write_candles

MINUTE_MS = 60_000
DAY_MS = 86_400_000
DAY0_MS = 1_794_960_000_000
"""Midnight UTC before the conftest clock's T0 (2026-11-18): day-aligned test series start here."""


def random_walk(seed: int, bars: int, start: float = 100.0) -> list[float]:
    """Closes of a geometric random walk, rounded like exchange prices (6 significant digits)."""
    steps = np.random.default_rng(seed).normal(0.0, 0.002, bars)
    return [float(f"{x:.6g}") for x in start * np.exp(np.cumsum(steps))]


def candle(coin: str, open_ms: int, close: float, *, closed: bool = True, volume: float = 1.5, trades: int = 3) -> CandleRow:
    """A 1-minute candle around ``close`` (open a little below, high/low around both)."""
    open_ = close * 0.999
    return CandleRow(
        coin, "1m", open_ms, open_ms + MINUTE_MS - 1,
        open_, max(open_, close) * 1.001, min(open_, close) * 0.998, close,
        volume, trades, closed,
    )


def series(coin: str, start_ms: int, closes: Sequence[float], *, seed: int = 0) -> list[CandleRow]:
    """Consecutive closed candles from ``start_ms``, with seeded volumes and trade counts."""
    rng = np.random.default_rng(seed)
    return [
        candle(coin, start_ms + i * MINUTE_MS, close, volume=round(float(rng.uniform(0.1, 50.0)), 4),
               trades=int(rng.integers(0, 40)))
        for i, close in enumerate(closes)
    ]


def store(conn: sqlite3.Connection, rows: Sequence[CandleRow], now_ms: int) -> int:
    """Upsert rows exactly as given (nothing closed on the side) in one transaction."""
    return write_candles(conn, rows, newest_open_by_coin={}, interval="1m", close_ended_before_ms=0, now_ms=now_ms)[0]

