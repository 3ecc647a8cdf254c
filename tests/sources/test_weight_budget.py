"""Hyperliquid's 1,200 weight per rolling minute is never exceeded, however many coins are filled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from market_assets.replay import ReplayConfig, ReplayServers
from market_assets.sources.hyperliquid import HyperliquidClient
from market_assets.memory.weight import admit, open_weight_ledger
from market_assets.sources.ratelimit import (
    IN_FLIGHT_POLL_MS,
    ABANDONED_CHARGE_MS,
    SharedWeightLimiter,
    WeightLimiter,
    info_weight,
    max_candles,
    max_funding_rows,
)
from market_assets.sources.timing import VirtualClock

from .conftest import T0_MS

pytestmark = pytest.mark.anyio


def _max_rolling_minute(charges: list[tuple[int, int]]) -> int:
    """Heaviest 60 s window over (at_ms, weight) charges, windows ending at each charge."""
    return max(sum(w for t, w in charges if end - 60_000 < t <= end) for end, _ in charges)


def test_weights_follow_the_documented_per_item_extras() -> None:
    assert info_weight("metaAndAssetCtxs") == 20
    assert info_weight("candleSnapshot", 5000) == 20 + 84  # per 60 candles, rounded up
    assert info_weight("candleSnapshot", 60) == 21 and info_weight("candleSnapshot", 0) == 20
    assert info_weight("fundingHistory", 500) == 20 + 25  # per 20 rows
    minute = T0_MS - T0_MS % 60_000
    assert max_candles("1m", minute, minute + 59_999) == 1
    assert max_candles("1m", minute + 30_000, minute + 60_000) == 2  # both ends bucket-inclusive
    assert max_candles("1m", 0, 10**13) == 5000
    assert max_funding_rows(T0_MS, None) == 500 and max_funding_rows(T0_MS, T0_MS + 3_600_000) == 3


async def test_limiter_holds_requests_until_the_oldest_charge_leaves_the_minute() -> None:
    clock = VirtualClock(T0_MS)
    limiter = WeightLimiter(clock)
    charges: list[tuple[int, int]] = []
    for _ in range(100):
        async with limiter.reserve("candleSnapshot", 5000) as reservation:
            reservation.settle(5000)
        charges.append((clock.now_ms(), 104))
    assert _max_rolling_minute(charges) <= 1200
    assert limiter.waits > 0 and limiter.used() <= 1200
    # 11 calls of 104 fit a minute: 100 calls need at least 9 full minutes of waiting.
    assert clock.now_ms() - T0_MS >= 9 * 60_000


async def test_in_flight_reservations_count_until_they_settle() -> None:
    clock = VirtualClock(T0_MS)
    limiter = WeightLimiter(clock, capacity=100)
    async with limiter.reserve("fundingHistory", 500):  # reserves 45
        async with limiter.reserve("fundingHistory", 500):  # 90 in flight
            assert limiter.used() == 90
            admitted = asyncio.create_task(_reserve_once(limiter))
            await asyncio.sleep(0)
            assert not admitted.done()  # a third 45 would make 135
    await admitted
    assert limiter.waits == 1


async def _reserve_once(limiter: WeightLimiter) -> None:
    async with limiter.reserve("fundingHistory", 500) as reservation:
        reservation.settle(0)


async def test_a_settled_reservation_is_charged_what_the_answer_cost() -> None:
    limiter = WeightLimiter(VirtualClock(T0_MS))
    async with limiter.reserve("candleSnapshot", 5000) as reservation:
        reservation.settle(120)
    assert limiter.used() == 22


@pytest.fixture
async def virtual_replay() -> AsyncIterator[ReplayServers]:
    """A replay on time that moves only when the client waits: generating thousands of candles
    takes real milliseconds, which an accelerated clock would turn into minutes of source time."""
    async with ReplayServers(ReplayConfig(clock=VirtualClock(T0_MS))) as servers:
        yield servers


async def test_backfilling_many_coins_never_draws_a_429_nor_exceeds_the_budget(virtual_replay: ReplayServers) -> None:
    replay = virtual_replay
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        universe = await hl.meta_and_asset_ctxs()
        now = replay.clock.now_ms()
        coins = universe.coins[:70]
        # A 30-minute gap after a reconnect, filled for 70 coins at once.
        batches = await asyncio.gather(*(hl.candle_snapshot(coin, "1m", now - 30 * 60_000, now) for coin in coins))
    assert all(len(batch.candles) == 31 for batch in batches)
    served = [(r.at_ms, r.weight) for r in replay.http.requests if r.path == "/hyperliquid/info"]
    assert len(served) == 1 + len(coins)
    assert all(r.status == 200 for r in replay.http.requests)
    assert _max_rolling_minute(served) <= 1200
    assert hl.stats.rate_limited == 0 and hl.stats.budget_waits > 0
    assert hl.stats.throttles == 0  # our own pacing: the host never throttled us
    # 20 + 70 x (20 + 1) = 1,490 weight: the backfill had to spread over more than one minute.
    assert max(t for t, _ in served) - min(t for t, _ in served) > 60_000


async def test_without_the_limiter_the_same_backfill_is_throttled(virtual_replay: ReplayServers) -> None:
    """The replay server enforces the budget for real: an unlimited client hits 429s."""
    replay = virtual_replay
    unlimited = WeightLimiter(replay.clock, capacity=10**9)
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock, limiter=unlimited) as hl:
        now = replay.clock.now_ms()
        await asyncio.gather(
            *(hl.candle_snapshot(coin, "1m", now - 30 * 60_000, now) for coin in ["BTC", "ETH"] * 35),
            return_exceptions=True,
        )
    assert hl.stats.rate_limited > 0 and hl.stats.budget_waits == 0 and hl.stats.throttles == hl.stats.rate_limited


async def test_two_processes_sharing_the_budget_file_never_draw_a_429_together(
    virtual_replay: ReplayServers, tmp_path: Path
) -> None:
    """The streamer and a Dagster run call Hyperliquid from one IP: each has its own limiter (as
    two processes do), and they meet only in the ledger file. With a budget each, the same
    burst draws 429s (the test above)."""
    replay = virtual_replay
    ledger = tmp_path / "market.db.weight"
    streamer = HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock,
                                 limiter=SharedWeightLimiter(replay.clock, ledger))
    dagster_run = HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock,
                                    limiter=SharedWeightLimiter(replay.clock, ledger))
    async with streamer, dagster_run:
        now = replay.clock.now_ms()
        await asyncio.gather(*(
            client.candle_snapshot(coin, "1m", now - 30 * 60_000, now)
            for coin in ["BTC", "ETH"] * 18 for client in (streamer, dagster_run)
        ))
    served = [(r.at_ms, r.weight) for r in replay.http.requests if r.path == "/hyperliquid/info"]
    assert len(served) == 72 and all(r.status == 200 for r in replay.http.requests)
    assert _max_rolling_minute(served) <= 1200
    assert streamer.stats.budget_waits + dagster_run.stats.budget_waits > 0  # 72 x 21 needed a second minute


async def test_a_charge_left_by_a_process_that_died_mid_request_counts_until_it_is_abandoned(tmp_path: Path) -> None:
    clock = VirtualClock(T0_MS)
    ledger = tmp_path / "market.db.weight"
    conn = open_weight_ledger(ledger)
    try:  # another process reserved the whole budget, then died before settling
        admit(conn, "hyperliquid", 1200, capacity=1200, now_ms=T0_MS, window_ms=60_000, abandoned_ms=ABANDONED_CHARGE_MS)
    finally:
        conn.close()
    limiter = SharedWeightLimiter(clock, ledger)
    assert limiter.used() == 1200
    async with limiter.reserve("metaAndAssetCtxs") as reservation:
        reservation.settle(0)
    assert limiter.waits == 1 and T0_MS + ABANDONED_CHARGE_MS <= clock.now_ms() <= T0_MS + ABANDONED_CHARGE_MS + IN_FLIGHT_POLL_MS
    assert limiter.used() == 20  # the dead charge is gone; ours is settled and counted
