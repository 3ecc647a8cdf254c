"""History backfills, one UTC day at a time: DefiLlama total TVL and Hyperliquid 1-minute candles.

Run from the Dagster UI's backfill dialog (daily partitions). Hyperliquid serves only the most
recent 5,000 candles of an interval (sources.md §1.1): at 1m that is about 3.5 days, so older
days cannot be backfilled and the run says so instead of pretending.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from market_assets.ingest.defillama import tvl_history_points
from market_assets.memory import open_memory
from market_assets.memory.candles import CandleRow, write_candles
from market_assets.memory.defillama import upsert_series
from market_assets.memory.hyperliquid import listed_coins
from market_assets.settings import Settings
from market_assets.sources.defillama import DefiLlamaClient, TvlPoint
from market_assets.sources.http import RequestStats
from market_assets.sources.hyperliquid import Candle, HyperliquidClient
from market_assets.sources.ratelimit import interval_ms, shared_budget
from market_assets.sources.timing import SystemClock

CANDLE_INTERVAL = "1m"
SNAPSHOT_WINDOW_CANDLES = 5_000
"""candleSnapshot: "Only the most recent 5000 candles are available" (HLDOCS/info-endpoint)."""


def day_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def earliest_reachable_open_ms(now_ms: int, interval: str = CANDLE_INTERVAL) -> int:
    step = interval_ms(interval)
    return now_ms - now_ms % step - (SNAPSHOT_WINDOW_CANDLES - 1) * step


@dataclass(frozen=True)
class CandleDayResult:
    rows_written: int
    coins: int
    reachable_from_ms: int
    """The first minute of the requested range candleSnapshot still serves."""
    missing_by_coin: dict[str, int] = field(default_factory=dict)
    """Closed minutes of the reachable range the source did not return (no trades, or a gap)."""
    stats: RequestStats = field(default_factory=RequestStats)


class OutOfReach(Exception):
    """The requested day lies wholly before candleSnapshot's 5,000-candle window."""


def candle_row(candle: Candle, as_of_ms: int) -> CandleRow:
    """A candleSnapshot candle as stored: a closed one is the venue's final state, so confirmed."""
    closed = candle.is_closed(as_of_ms)
    return CandleRow(
        candle.coin, candle.interval, candle.open_ms, candle.close_ms, candle.open, candle.high, candle.low,
        candle.close, candle.volume, candle.trades, closed, closed,
    )


def backfill_candle_days(settings: Settings, start_ms: int, end_ms: int, now_ms: int) -> CandleDayResult:
    """Fetch and store the 1-minute candles of ``[start_ms, end_ms)`` for every followed coin."""
    reachable_from = max(start_ms, earliest_reachable_open_ms(now_ms))
    if reachable_from >= end_ms:
        raise OutOfReach(
            f"{day_text(start_ms)} to {day_text(end_ms)} is out of reach: candleSnapshot keeps only the last "
            f"{SNAPSHOT_WINDOW_CANDLES} {CANDLE_INTERVAL} candles, the earliest now being {day_text(earliest_reachable_open_ms(now_ms))}"
        )
    with open_memory(settings.db_path) as conn:
        coins = listed_coins(conn)
        stats = RequestStats()

        async def fetch() -> list[list[Candle]]:
            clock = SystemClock()
            budget = shared_budget(settings.db_path, clock)
            async with HyperliquidClient(settings.endpoints.hyperliquid_api, clock=clock, limiter=budget, stats=stats) as client:
                batches = await asyncio.gather(
                    *(client.candle_snapshot(coin, CANDLE_INTERVAL, reachable_from, end_ms - 1) for coin in coins)
                )
            return [[c for c in batch.candles if reachable_from <= c.open_ms < end_ms] for batch in batches]

        per_coin = asyncio.run(fetch())
        rows = [candle_row(candle, now_ms) for candles in per_coin for candle in candles]
        written, _ = write_candles(
            conn, rows, newest_open_by_coin={}, interval=CANDLE_INTERVAL, close_ended_before_ms=now_ms, now_ms=now_ms
        )
    step = interval_ms(CANDLE_INTERVAL)
    expected = (min(end_ms, now_ms - now_ms % step) - reachable_from) // step
    closed = {coin: sum(1 for c in candles if c.is_closed(now_ms)) for coin, candles in zip(coins, per_coin)}
    missing = {coin: expected - count for coin, count in closed.items() if count < expected}
    return CandleDayResult(written, len(coins), reachable_from, missing, stats)


def backfill_tvl_days(settings: Settings, start_ms: int, end_ms: int, now_ms: int) -> int:
    """Store total TVL for the days in ``[start_ms, end_ms)`` from one history request."""

    async def fetch() -> list[TvlPoint]:
        endpoints = settings.endpoints
        async with DefiLlamaClient(endpoints.llama_api, endpoints.stablecoins_api) as client:
            return await client.historical_chain_tvl()

    points = [p for p in tvl_history_points(asyncio.run(fetch())) if start_ms <= p.ts_ms < end_ms]
    with open_memory(settings.db_path) as conn:
        return upsert_series(conn, points, now_ms)

