"""A small memory for the HTTP and CLI read tests, written through the product's writers: three
coins of 1-minute candles over two days and a half (a gap, a coin listed late, unverified minutes,
each coin's forming minute), rolled up part way by a maintenance run, their features, hourly
funding, Polymarket summaries and DefiLlama series.

Everything lies in the past of the wall clock, so a server (which reads at the wall clock) and a
``MarketReader`` in the test agree on every read, with or without ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect
from market_assets.memory.candles import CandleRow
from market_assets.memory.connection import close
from market_assets.memory.defillama import SeriesPoint, upsert_series
from market_assets.memory.hyperliquid import FundingRow, UniverseRow, upsert_funding, upsert_universe
from market_assets.memory.polymarket import MarketSummary, upsert_market_summaries
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, store

HOUR_MS = 3_600_000
START_MS = DAY0_MS - 2 * DAY_MS
NOW_MS = START_MS + 2 * DAY_MS + 13 * HOUR_MS + 17 * MINUTE_MS + 25_000
"""The seeding's clock at the end: 25 s into each coin's forming minute."""
ROLLED_MS = START_MS + DAY_MS + 20 * HOUR_MS
"""The maintenance run: minutes before it are also rollups, minutes after it only minutes."""
COINS = ("BTC", "ETH", "SOL")
SOL_LISTED_MS = START_MS + DAY_MS + 3 * HOUR_MS + 41 * MINUTE_MS
ETH_GAP = (START_MS + 7 * HOUR_MS, START_MS + 9 * HOUR_MS + 13 * MINUTE_MS)


@dataclass(frozen=True)
class Seeded:
    path: Path
    now_ms: int
    """The seeding clock's last instant (long past by the wall clock)."""


def minutes(coin: str, start_ms: int, end_ms: int, price: float, seed: int) -> list[CandleRow]:
    """Closed minutes of a random walk: 5 significant digits, 1 in 50 unverified."""
    count = (end_ms - start_ms) // MINUTE_MS
    rng = np.random.default_rng(seed)
    closes = price * np.exp(np.cumsum(rng.normal(0.0, 0.0015, count)))
    opens = np.concatenate(([price], closes[:-1]))
    highs = np.maximum(opens, closes) * (1 + rng.uniform(0, 0.002, count))
    lows = np.minimum(opens, closes) * (1 - rng.uniform(0, 0.002, count))
    volumes = np.round(rng.lognormal(2.0, 1.2, count), 4)
    trades = rng.integers(0, 200, count)
    confirmed = rng.random(count) >= 0.02

    def price_of(value: float) -> float:
        return float(f"{value:.5g}")

    return [
        CandleRow(coin, "1m", start_ms + i * MINUTE_MS, start_ms + (i + 1) * MINUTE_MS - 1, price_of(opens[i]),
                  price_of(highs[i]), price_of(lows[i]), price_of(closes[i]), float(volumes[i]), int(trades[i]), True,
                  bool(confirmed[i]))
        for i in range(count)
    ]


def seed_read_memory(path: Path) -> Seeded:
    clock = FrozenClock(ROLLED_MS)
    conn = connect(path, clock=clock)
    try:
        upsert_universe(conn, [UniverseRow(coin, "", i, 3, 20, False) for i, coin in enumerate((*COINS, "DOGE"))], START_MS)
        end = NOW_MS - NOW_MS % MINUTE_MS
        rows = [
            *minutes("BTC", START_MS, end, 91_234.0, 1),
            *(r for r in minutes("ETH", START_MS, end, 3_021.7, 2) if not ETH_GAP[0] <= r.open_time_ms < ETH_GAP[1]),
            *minutes("SOL", SOL_LISTED_MS, end, 142.13, 3),
        ]
        rows.sort(key=lambda r: (r.open_time_ms, r.coin))
        before = [r for r in rows if r.open_time_ms + MINUTE_MS <= ROLLED_MS]
        for first in range(0, len(before), 5_000):
            store(conn, before[first:first + 5_000], ROLLED_MS)
        run_maintenance(conn, Ledger(conn, clock))
        clock.now_ms = NOW_MS
        after = [r for r in rows if r.open_time_ms + MINUTE_MS > ROLLED_MS]
        forming = [CandleRow(coin, "1m", end, end + MINUTE_MS - 1, 100.0, 100.5, 99.5, 100.25, 0.37, 2, False, False)
                   for coin in COINS]
        store(conn, [*after, *forming], NOW_MS)
        run_features(conn, Ledger(conn, clock))

        rng = np.random.default_rng(5)
        current = NOW_MS - NOW_MS % HOUR_MS
        funding = [
            FundingRow(coin, hour, Decimal(f"{rng.normal(1.25e-5, 2e-5):.8f}"), Decimal(f"{rng.normal(0, 3e-4):.8f}"),
                       True, hour + int(rng.integers(1, 90)))
            for coin in COINS for hour in range(START_MS, current, HOUR_MS)
        ]
        funding += [FundingRow(coin, current, Decimal("0.0000125"), None, False, NOW_MS - 30_000) for coin in COINS]
        upsert_funding(conn, funding, NOW_MS)

        upsert_market_summaries(conn, [
            MarketSummary("512344", "Will BTC close 2026 above $100k?", "btc-above-100k-2026", '["Yes", "No"]',
                          '["0.415", "0.585"]', Decimal("1843211.5"), Decimal("90321.25"), "2026-12-31T23:59:59Z", True, False),
            MarketSummary("512399", "Will ETH flip BTC?", "eth-flippening", '["Yes", "No"]', '["0.02", "0.98"]',
                          Decimal("12000"), Decimal("500.5"), "2027-06-30T00:00:00Z", True, False),
            MarketSummary("498001", "Fed cut in December?", "fed-cut-december", '["Yes", "No"]', '["1", "0"]',
                          Decimal("7700000"), None, "2026-12-10T19:00:00Z", False, True),
            MarketSummary("600001", None, None, None, None, None, None, None, None, None),
        ], NOW_MS - 5 * MINUTE_MS)
        upsert_series(conn, [
            SeriesPoint(series, subject, START_MS - day * DAY_MS, Decimal(f"{base * (1 + 0.01 * day):.2f}"))
            for series, subjects in (("tvl", ("Ethereum", "Solana", "total")), ("fees", ("total",)))
            for base, subject in zip((5.1e10, 9.2e9, 9.8e10), subjects, strict=False)
            for day in range(40)
        ], NOW_MS - HOUR_MS)
    finally:
        close(conn)
    return Seeded(path, NOW_MS)
