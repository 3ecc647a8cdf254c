"""History backfills, one UTC day at a time: DefiLlama total TVL and Hyperliquid 1-minute candles.

Run from the Dagster UI's backfill dialog (daily partitions). Each run is a ledger run of the
channel it fills (``defillama/macro``, ``hyperliquid/candles``), marked with the days it covers
under ``BACKFILL_KEY``. Hyperliquid serves only the most recent 5,000 candles of an
interval (sources.md §1.1): at 1m that is about 3.5 days, so older days cannot be backfilled and
the run says so instead of pretending.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from market_assets.clock import Clock, wall_clock_ms
from market_assets.ingest.defillama import tvl_history_points
from market_assets.ingest.subjects import SUBJECT_ERRORS, one_line, refuse_if_all_failed
from market_assets.ingest.universe import read_followed_coins
from market_assets.ledger import Ledger, Run
from market_assets.memory import open_memory
from market_assets.memory.candles import CandleRow, write_candles
from market_assets.memory.defillama import upsert_series
from market_assets.memory.hyperliquid import listed_coins
from market_assets.memory.runs import BACKFILL_KEY
from market_assets.registry import CANDLES, DEFILLAMA_MACRO
from market_assets.settings import Settings
from market_assets.sources.defillama import DefiLlamaClient, TvlPoint
from market_assets.sources.errors import SourceError
from market_assets.sources.http import RequestStats
from market_assets.sources.hyperliquid import Candle, HyperliquidClient
from market_assets.sources.ratelimit import interval_ms, shared_budget
from market_assets.sources.timing import SystemClock

CANDLE_INTERVAL = "1m"
SNAPSHOT_WINDOW_CANDLES = 5_000
"""candleSnapshot: "Only the most recent 5000 candles are available" (HLDOCS/info-endpoint)."""

Progress = Callable[[str], None]
"""Where a backfill reports each step (the Dagster run's log)."""


def day_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def day_key(ms: int) -> str:
    """The UTC day of ``ms`` as a daily partition key."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def backfill_metadata(start_ms: int, end_ms: int) -> dict[str, str]:
    """The ledger metadata of a backfill of ``[start_ms, end_ms)``: its first and last UTC day."""
    return {BACKFILL_KEY: f"{day_key(start_ms)}..{day_key(end_ms - 1)}"}


def earliest_reachable_open_ms(now_ms: int, interval: str = CANDLE_INTERVAL) -> int:
    step = interval_ms(interval)
    return now_ms - now_ms % step - (SNAPSHOT_WINDOW_CANDLES - 1) * step


def out_of_reach_text(start_ms: int, end_ms: int, now_ms: int) -> str:
    """Why ``[start_ms, end_ms)`` (partly) cannot be filled, naming the first minute that can."""
    return (
        f"{day_text(start_ms)} to {day_text(min(end_ms, earliest_reachable_open_ms(now_ms)))} is out of reach: "
        f"candleSnapshot keeps only the last {SNAPSHOT_WINDOW_CANDLES} {CANDLE_INTERVAL} candles, "
        f"the earliest now being {day_text(earliest_reachable_open_ms(now_ms))}"
    )


@dataclass(frozen=True)
class CandleDayResult:
    run_id: int
    """The ledger run of ``hyperliquid/candles`` this backfill recorded."""
    rows_written: int
    coins: int
    reachable_from_ms: int
    """The first minute of the requested range candleSnapshot still serves."""
    universe_read_from_source: bool
    """The memory held no perp universe yet, so the followed coins came from metaAndAssetCtxs."""
    missing_by_coin: dict[str, int] = field(default_factory=dict)
    """Closed minutes of the reachable range the source did not return (no trades, or a gap)."""
    subject_errors: dict[str, str] = field(default_factory=dict)
    """Coins whose request failed, with the one-line error; the others were stored."""
    stats: RequestStats = field(default_factory=RequestStats)


class OutOfReach(Exception):
    """The requested days lie wholly before candleSnapshot's 5,000-candle window."""


def candle_row(candle: Candle, as_of_ms: int) -> CandleRow:
    """A candleSnapshot candle as stored: a closed one is the venue's final state, so confirmed."""
    closed = candle.is_closed(as_of_ms)
    return CandleRow(
        candle.coin, candle.interval, candle.open_ms, candle.close_ms, candle.open, candle.high, candle.low,
        candle.close, candle.volume, candle.trades, closed, closed,
    )


def _ignore(_: str) -> None:
    return None


def backfill_candle_days(
    settings: Settings,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    *,
    progress: Progress = _ignore,
    clock: Clock = wall_clock_ms,
) -> CandleDayResult:
    """Fetch and store the 1-minute candles of ``[start_ms, end_ms)`` for every followed coin.

    One coin at a time, each stored in its own transaction as it arrives (closed as of its
    arrival, read from ``clock``), so a run cut short keeps every coin it finished; the shared
    weight budget paces the requests either way (candleSnapshot costs 20 weight plus one per 60
    candles of the 1,200 a minute). A coin whose request fails is named in the run's
    ``subject_errors`` and the others go on; the run fails
    (:class:`~market_assets.ingest.subjects.AllSubjectsFailed`) only when every coin did.
    Raises :class:`OutOfReach`, having opened nothing, when the whole range is older than
    candleSnapshot's window.
    """
    reachable_from = max(start_ms, earliest_reachable_open_ms(now_ms))
    if reachable_from >= end_ms:
        raise OutOfReach(out_of_reach_text(start_ms, end_ms, now_ms))
    if reachable_from > start_ms:
        progress(f"{out_of_reach_text(start_ms, end_ms, now_ms)}; filling from {day_text(reachable_from)}")
    stats = RequestStats()
    with (
        open_memory(settings.db_path) as conn,
        Ledger(conn, clock).run(CANDLES, metadata=backfill_metadata(start_ms, end_ms)) as run,
    ):
        try:
            filled = asyncio.run(
                _fill_coins(conn, run, settings, stats, reachable_from, end_ms, now_ms, progress, clock)
            )
        finally:
            run.add_retries(stats.retries)
            run.add_throttles(stats.throttles)
            run.metadata["requests"] = stats.requests
        if filled.subject_errors:
            run.metadata[SUBJECT_ERRORS] = filled.subject_errors
        refuse_if_all_failed(CANDLES.source, "coin's candleSnapshot", len(filled.coins), filled.subject_errors)
    return CandleDayResult(
        run.run_id, run.rows_written, len(filled.coins), reachable_from, filled.from_source,
        filled.missing_by_coin, filled.subject_errors, stats,
    )


@dataclass
class _Filled:
    coins: list[str]
    from_source: bool
    missing_by_coin: dict[str, int] = field(default_factory=dict)
    subject_errors: dict[str, str] = field(default_factory=dict)


async def _fill_coins(
    conn: sqlite3.Connection,
    run: Run,
    settings: Settings,
    stats: RequestStats,
    reachable_from: int,
    end_ms: int,
    now_ms: int,
    progress: Progress,
    clock: Clock,
) -> _Filled:
    step = interval_ms(CANDLE_INTERVAL)
    # Closed minutes of the range as of ``now_ms``: what a coin with no gap returns at least.
    expected = (min(end_ms, now_ms - now_ms % step) - reachable_from) // step
    timing = SystemClock()
    budget = shared_budget(settings.db_path, timing, settings.home)
    async with HyperliquidClient(settings.endpoints.hyperliquid_api, clock=timing, limiter=budget, stats=stats) as client:
        stored = listed_coins(conn)
        coins = stored or await read_followed_coins(client, settings)
        filled = _Filled(coins, from_source=not stored)
        if filled.from_source:
            progress(f"no perp universe in the memory yet: {len(coins)} followed coins read from metaAndAssetCtxs")
        for n, coin in enumerate(coins, 1):
            try:
                batch = await client.candle_snapshot(coin, CANDLE_INTERVAL, reachable_from, end_ms - 1)
            except SourceError as exc:
                filled.subject_errors[coin] = one_line(exc)
                progress(f"{n}/{len(coins)} {coin}: failed, {filled.subject_errors[coin]}")
                continue
            candles = [c for c in batch.candles if reachable_from <= c.open_ms < end_ms]
            as_of = clock()
            written, _ = write_candles(
                conn, [candle_row(c, as_of) for c in candles], newest_open_by_coin={},
                interval=CANDLE_INTERVAL, close_ended_before_ms=as_of, now_ms=as_of,
            )
            run.add_rows(written)
            closed = sum(1 for c in candles if c.is_closed(now_ms))
            if closed < expected:
                filled.missing_by_coin[coin] = expected - closed
            progress(f"{n}/{len(coins)} {coin}: {written} rows stored ({run.rows_written} in all)")
    return filled


@dataclass(frozen=True)
class TvlDaysResult:
    run_id: int
    """The ledger run of ``defillama/macro`` this backfill recorded."""
    rows_written: int


def backfill_tvl_days(
    settings: Settings, start_ms: int, end_ms: int, now_ms: int, *, clock: Clock = wall_clock_ms
) -> TvlDaysResult:
    """Store total TVL for the days in ``[start_ms, end_ms)`` from one history request."""
    stats = RequestStats()

    async def fetch() -> list[TvlPoint]:
        endpoints = settings.endpoints
        async with DefiLlamaClient(endpoints.llama_api, endpoints.stablecoins_api, stats=stats) as client:
            return await client.historical_chain_tvl()

    with (
        open_memory(settings.db_path) as conn,
        Ledger(conn, clock).run(DEFILLAMA_MACRO, metadata=backfill_metadata(start_ms, end_ms)) as run,
    ):
        try:
            history = asyncio.run(fetch())
        finally:
            run.add_retries(stats.retries)
            run.add_throttles(stats.throttles)
        points = [p for p in tvl_history_points(history) if start_ms <= p.ts_ms < end_ms]
        run.add_rows(upsert_series(conn, points, now_ms))
    return TvlDaysResult(run.run_id, run.rows_written)
