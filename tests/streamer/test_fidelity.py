"""Fidelity under faults (SPEC §8): every stored closed minute is the venue's final candle, or is
visibly unverified until a durable REST repair makes it so. Each test compares every stored
closed minute with the replay's series, value by value, while the fault lasts (nothing partial is
ever confirmed) and after it (everything settled is confirmed and exact)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from market_assets.memory import open_memory
from market_assets.memory.candles import candles_of
from market_assets.memory.gaps import GapStatus, gaps_of
from market_assets.memory.target import MemoryTarget
from market_assets.replay import ReplayServers
from market_assets.replay.faults import HttpFault, HttpFaultKind
from streamer.service import Streamer

from .conftest import (
    MINUTE_MS,
    assert_complete_and_exact,
    assert_confirmed_are_exact,
    on_both_engines,
    streamer_config,
    streaming,
    wait_simulated,
)

pytestmark = pytest.mark.anyio


async def watch(replay: ReplayServers, memory_path: MemoryTarget, streamer: Streamer, seconds: float) -> int:
    """Run ``seconds`` of simulated time, checking every 10 s that no confirmed minute is wrong.
    Returns the most confirmed minutes seen in one check."""
    most = 0
    for _ in range(int(seconds // 10)):
        await wait_simulated(replay, 10)
        most = max(most, assert_confirmed_are_exact(memory_path, replay.catalog.series, streamer.universe.coins))
    return most


async def settle(replay: ReplayServers, streamer: Streamer, seconds: float = 90) -> None:
    """Let the minute in flight close and be confirmed, then wait for the repair queue to empty."""
    await wait_simulated(replay, seconds)
    while not streamer.repaired:
        await wait_simulated(replay, 5)


def unverified(memory_path: Path, coins: list[str]) -> int:
    with open_memory(memory_path) as conn:
        return sum(1 for coin in coins for row in candles_of(conn, coin, "1m") if row.closed and not row.confirmed)


async def test_minutes_whose_final_frame_a_drop_lost_stay_unverified_until_rest_repairs_them_exactly(
    replay: ReplayServers, memory_path: Path
) -> None:
    replay.plan.drop_before_final = True  # no minute's final state ever reaches the client
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await watch(replay, memory_path, streamer, 300)
        assert streamer.counters.confirmed_minutes == 0  # the stream never proved a minute final
        replay.plan.drop_before_final = False
        await settle(replay, streamer)
        end_ms = replay.clock.now_ms()
    counters = streamer.counters
    assert replay.ws.stats.dropped >= 4 and counters.repaired_minutes >= 3 * 4
    assert counters.corrected_minutes >= 3 * 3  # partial minutes were stored, then replaced by the final
    minutes = assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
    assert min(minutes.values()) >= 5


@pytest.mark.realtime
@pytest.mark.parametrize("replay_speed", [1.0])
async def test_drops_every_ten_seconds_for_two_minutes_at_real_speed_are_exact_within_five_minutes(
    replay: ReplayServers, memory_path: Path
) -> None:
    config = streamer_config(max_coins=4, max_connections=2, subscriptions_per_connection=2)
    async with streaming(replay, memory_path, config) as streamer:
        replay.plan.drop_every_s = 10
        await watch(replay, memory_path, streamer, 120)
        replay.plan.drop_every_s = None
        last_drop_ms = replay.clock.now_ms()
        # The minute in flight at the last drop must close and be confirmed: poll until every
        # minute before the current one is settled, five minutes at most.
        while True:
            await wait_simulated(replay, 5)
            now_ms = replay.clock.now_ms()
            try:
                assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=now_ms)
            except AssertionError:
                if now_ms - last_drop_ms > 5 * MINUTE_MS:
                    raise
                continue
            if now_ms - now_ms % MINUTE_MS - MINUTE_MS > last_drop_ms:
                break
    assert replay.ws.stats.dropped >= 12 and streamer.counters.reconnects >= 12


@on_both_engines
async def test_truncated_frames_leave_their_minutes_unverified_until_rest_confirms_them(
    replay: ReplayServers, memory_path: MemoryTarget
) -> None:
    replay.plan.truncate_every = 7
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await watch(replay, memory_path, streamer, 240)
        replay.plan.truncate_every = None
        await settle(replay, streamer)
        end_ms = replay.clock.now_ms()
    counters = streamer.counters
    assert replay.ws.stats.truncated >= 10 and counters.rejected_frames["unparseable"] == replay.ws.stats.truncated
    assert counters.reconnects == 0  # a bad frame is skipped, not a reason to reconnect
    assert counters.minutes_owed > 0 and counters.repaired_minutes > 0
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)


@on_both_engines
async def test_a_nan_candle_is_refused_the_other_coins_keep_being_written_and_its_minute_ends_confirmed_from_rest(
    replay: ReplayServers, memory_path: MemoryTarget
) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await wait_simulated(replay, 75)
        coin = streamer.universe.coins[0]
        now_ms = replay.clock.now_ms()
        open_ms = now_ms - now_ms % MINUTE_MS
        poisoned = replay.catalog.series.candle(coin, "1m", open_ms, now_ms)
        assert poisoned is not None
        replay.plan.inject(json.dumps({"channel": "candle", "data": {**poisoned, "o": "NaN"}}))
        written = streamer.counters.rows_written
        await wait_simulated(replay, 30)
        assert streamer.counters.rejected_frames == {"non_finite": 1}
        assert streamer.counters.rows_written > written  # every coin still being written
        await settle(replay, streamer)
        end_ms = replay.clock.now_ms()
    assert streamer.counters.write_errors == 0 and streamer.counters.rows_refused == 0
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
    with open_memory(memory_path) as conn:
        row = next(r for r in candles_of(conn, coin, "1m") if r.open_time_ms == open_ms)
    assert row.confirmed and row.open == float(poisoned["o"])


async def test_no_trade_minutes_are_recorded_no_trades_never_a_gap_and_never_synthesised(
    replay: ReplayServers, memory_path: Path
) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        quiet_coin = streamer.universe.coins[-1]
        replay.catalog.series.no_trade_every[quiet_coin] = 2  # every other minute
        await watch(replay, memory_path, streamer, 360)
        await settle(replay, streamer, seconds=30)
        end_ms = replay.clock.now_ms()
    series = replay.catalog.series
    others = [coin for coin in streamer.universe.coins if coin != quiet_coin]
    assert_complete_and_exact(memory_path, series, others, through_ms=end_ms)
    with open_memory(memory_path) as conn:
        stored = {row.open_time_ms: row for row in candles_of(conn, quiet_coin, "1m") if row.closed}
        gaps = gaps_of(conn, quiet_coin)
    first, settled = min(stored), end_ms - end_ms % MINUTE_MS - MINUTE_MS
    quiet = [t for t in range(first, settled, MINUTE_MS) if not series.traded(quiet_coin, "1m", t)]
    traded = [t for t in range(first, settled, MINUTE_MS) if series.traded(quiet_coin, "1m", t)]
    assert len(quiet) >= 2
    assert not [t for t in quiet if t in stored]  # nothing synthesised
    recorded = {t for g in gaps if g.status is GapStatus.NO_TRADES for t in range(g.start_ms, g.end_ms, MINUTE_MS)}
    assert set(quiet) <= recorded and not [t for t in recorded if series.traded(quiet_coin, "1m", t)]
    assert {g.status for g in gaps} == {GapStatus.NO_TRADES}  # never unfillable, never a gap left open
    assert all(stored[t].confirmed for t in traded)
    assert_confirmed_are_exact(memory_path, series, [quiet_coin])


async def test_an_empty_memory_warms_up_with_the_last_minutes_from_rest(replay: ReplayServers, memory_path: Path) -> None:
    config = streamer_config(max_coins=3, warm_start_minutes=120)
    async with streaming(replay, memory_path, config) as streamer:
        started_ms = replay.clock.now_ms()
        await settle(replay, streamer)  # past the next minute boundary, wherever in its minute the start fell
        end_ms = replay.clock.now_ms()
    coins = streamer.universe.coins
    minutes = assert_complete_and_exact(memory_path, replay.catalog.series, coins, through_ms=end_ms)
    assert all(count >= 120 for count in minutes.values())
    with open_memory(memory_path) as conn:
        firsts = {coin: candles_of(conn, coin, "1m")[0].open_time_ms for coin in coins}
    assert set(firsts.values()) == {started_ms - started_ms % MINUTE_MS - 120 * MINUTE_MS}
    assert streamer.counters.repair_requests <= 2 * len(coins)  # one request per coin, plus the minute of the start


async def test_a_failing_rest_costs_backed_off_retries_never_a_tight_loop_and_the_queue_empties_after(
    replay: ReplayServers, memory_path: Path
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, info_type="candleSnapshot", status=500, times=None))
    config = streamer_config(max_coins=3, warm_start_minutes=30)
    async with streaming(replay, memory_path, config) as streamer:
        await wait_simulated(replay, 180)
        failures = streamer.counters.repair_failures
        asked = sum(1 for r in replay.http.requests if r.info_type == "candleSnapshot")
        replay.plan.clear()
        await settle(replay, streamer, seconds=30)
        end_ms = replay.clock.now_ms()
    # Three coins for three minutes: each failure is the client's five attempts, then the worker
    # backs the coin off (5 s doubling: 0, 5, 15, 35, 75, 155 s), never a request as fast as the
    # server answers. A repair in flight when the fault ended may have spent attempts uncounted.
    assert 3 <= failures <= 3 * 6 and streamer.counters.repair_worker_restarts == 0
    assert asked <= 5 * (failures + 3)
    minutes = assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
    assert all(count >= 30 for count in minutes.values())
