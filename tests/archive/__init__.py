"""Tests of the Parquet archive (SPEC §11): written from the memory, verified, read back, and the
gate it puts on maintenance's prunes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np

from market_assets import archive
from market_assets.archive import DayArchive
from market_assets.memory import archive as stamps
from market_assets.memory.candles import CandleRow
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import Dialect, dialect_of
from market_assets.memory.hyperliquid import FundingRow
from market_assets.memory.retention import database_path
from market_assets.memory.rollups import HOUR_MS, MINUTE_MS


def archive_finished_days(conn: MemoryConnection, now_ms: int, root: Path | None = None) -> list[DayArchive]:
    """Archive every finished day of candles and funding the memory holds unstamped, as the
    archive sensor would request them, into ``root`` (default: where maintenance looks, ``archive.archive_root``)."""
    root = root or archive.archive_root(conn.target if dialect_of(conn) is Dialect.POSTGRES else Path(database_path(conn)))
    return [
        archive.write_day(conn, root, dataset, day, now_ms)
        for dataset in stamps.DATASETS
        for day in stamps.unstamped_days(conn, dataset, now_ms, limit=10_000)
    ]


def sig5(value: float) -> float:
    """A price as Hyperliquid quotes it: 5 significant digits."""
    return float(f"{value:.5g}")


def realistic_day(coins: int, day_ms: int, *, seed: int = 0, minutes: int = 1440) -> list[CandleRow]:
    """Closed 1-minute candles of ``coins`` coins over one day, shaped like Hyperliquid's: prices
    from 0.001 to 100,000 on a random walk, quoted to 5 significant digits; volumes to 2 decimals
    (4 for coins under 100); trade counts around 30; 2 % of minutes still unverified."""
    rng = np.random.default_rng(seed)
    rows: list[CandleRow] = []
    for index in range(coins):
        price = 10 ** rng.uniform(-3, 5)
        scale = 10 ** rng.uniform(-1, 4)
        steps = rng.normal(0.0, 0.0015, (minutes, 3))
        for minute in range(minutes):
            open_ = price
            close = open_ * math.exp(steps[minute, 0])
            high = max(open_, close) * math.exp(abs(steps[minute, 1]))
            low = min(open_, close) * math.exp(-abs(steps[minute, 2]))
            volume = round(float(rng.lognormal(0.0, 1.2)) * scale * 100 / price, 2 if price >= 100 else 4)
            open_ms = day_ms + minute * MINUTE_MS
            rows.append(CandleRow(
                f"C{index:03d}", "1m", open_ms, open_ms + MINUTE_MS - 1, sig5(open_), sig5(high), sig5(low), sig5(close),
                volume, int(rng.poisson(30)), True, bool(rng.random() >= 0.02),
            ))
            price = close
    return rows


def funding_day(coins: Sequence[str], day_ms: int, *, seed: int = 0) -> list[FundingRow]:
    """24 settled funding hours of each coin, the last one's premium unknown (None)."""
    rng = np.random.default_rng(seed)
    return [
        FundingRow(
            coin, day_ms + hour * HOUR_MS, Decimal(f"{rng.normal(1e-5, 2e-5):.8f}"),
            None if hour == 23 else Decimal(f"{rng.normal(0, 3e-4):.7f}"), True, day_ms + hour * HOUR_MS + 48,
        )
        for coin in coins
        for hour in range(24)
    ]
