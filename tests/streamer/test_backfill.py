"""The REST backfill and the writer's bounds against the replay: beyond candleSnapshot's
5,000-candle window a gap is recorded unfillable and never synthesised, inside it it is filled
exactly; a memory locked while the queue is tiny holds the readers back instead of growing."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from market_assets.memory import open_memory
from market_assets.memory.candles import CandleRow, write_candles
from market_assets.memory.gaps import GapStatus, gaps_of
from market_assets.memory.repairs import backlog
from market_assets.memory.runs import runs_of
from market_assets.replay import ReplayServers
from streamer.repair import window_floor

from .conftest import (
    LOCK_HOLDER,
    MINUTE_MS,
    T0_MS,
    assert_complete_and_exact,
    closed_rows,
    expected,
    streamer_config,
    streaming,
    wait_simulated,
)

pytestmark = pytest.mark.anyio

DAYS_DOWN = 4
"""Longer than the 5,000 one-minute candles (3.47 days) the server keeps."""


async def test_a_gap_older_than_the_five_thousand_candle_window_is_unfillable_and_never_synthesised(
    replay: ReplayServers, memory_path: Path
) -> None:
    last_stored = T0_MS - T0_MS % MINUTE_MS - DAYS_DOWN * 24 * 60 * MINUTE_MS
    one = 1.0
    with open_memory(memory_path) as conn:
        write_candles(
            conn,
            [CandleRow("BTC", "1m", last_stored, last_stored + MINUTE_MS - 1, one, one, one, one, one, 1, True)],
            newest_open_by_coin={},
            interval="1m",
            close_ended_before_ms=0,
            now_ms=last_stored,
        )
    coins = 2
    start_minute = T0_MS - T0_MS % MINUTE_MS

    def streamed_past_the_start() -> bool:
        # BTC's first frame may come only in the minute after the one the streamer started in,
        # revealing that minute as owed: nothing is known to be owed until a later minute is stored.
        with open_memory(memory_path) as conn:
            return any(t > start_minute for t in closed_rows(conn, "BTC"))

    async with streaming(replay, memory_path, streamer_config(max_coins=coins)) as streamer:
        await wait_simulated(replay, 30)
        while not (streamer.repaired and streamer.counters.repaired_minutes and streamed_past_the_start()):
            await wait_simulated(replay, 5)
    floor = window_floor(replay.clock.now_ms(), MINUTE_MS)
    with open_memory(memory_path) as conn:
        gaps = gaps_of(conn, "BTC")
        stored = closed_rows(conn, "BTC")
        owed = backlog(conn, "1m")
    unfillable = sorted((g for g in gaps if g.status is GapStatus.UNFILLABLE), key=lambda g: g.start_ms)
    filled = [g for g in gaps if g.status is GapStatus.FILLED]
    # What REST no longer had is one run of unfillable records from the last stored minute on:
    # beyond the window's floor when the backfill was planned (a few simulated minutes ago at most;
    # at 100x a minute is 0.6 s of real time), plus, on a loaded machine, the minute or two the
    # window moved on before the page was fetched, found empty in the answer.
    hole_start, hole_end = unfillable[0].start_ms, unfillable[-1].end_ms
    assert all(earlier.end_ms == later.start_ms for earlier, later in zip(unfillable, unfillable[1:]))
    assert hole_start == last_stored + MINUTE_MS and floor - 5 * MINUTE_MS <= hole_end <= floor
    assert sum(g.missing_buckets for g in unfillable) == (hole_end - hole_start) // MINUTE_MS > 0
    assert not [t for t in stored if last_stored < t < hole_end]  # nothing made up in the hole
    assert filled and filled[0].start_ms == hole_end and filled[0].missing_buckets >= 4990
    newest = max(stored)
    missing = [t for t in range(hole_end, newest, MINUTE_MS) if t not in stored]
    assert not missing, (f"closed minutes missing after the hole (start minute {start_minute}): {missing}; "
                         f"gaps {gaps}; still queued {owed}")
    assert all(stored[t] == expected(replay.catalog.series, "BTC", t) for t in range(hole_end, newest, MINUTE_MS))
    # The whole window in one request. Besides it, each coin may owe the minute it was forming
    # when the streamer started, if its first frame came only in the next one (at 100x a
    # simulated minute passes in 0.6 s); and on a loaded machine the accelerated clock can time
    # out a ping: each coin a reconnect or a silent-coin resubscribe drops owes its own request.
    counters = streamer.counters
    handed_over = coins * counters.reconnects + counters.stale_resubscribes
    assert 1 <= counters.repair_requests <= 1 + coins + handed_over


async def test_a_full_queue_holds_the_readers_while_the_memory_is_locked_and_loses_nothing(
    replay: ReplayServers, memory_path: Path
) -> None:
    config = streamer_config(max_coins=3, queue_bound=20, max_pending_rows=2)
    async with streaming(replay, memory_path, config) as streamer:
        await wait_simulated(replay, 60)
        holder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LOCK_HOLDER, str(memory_path), "2", stdout=asyncio.subprocess.PIPE
        )
        assert holder.stdout is not None and await holder.stdout.readline() == b"locked\n"
        assert await holder.wait() == 0
        await wait_simulated(replay, 60)
        end_ms = replay.clock.now_ms()
    with open_memory(memory_path) as conn:
        windows = runs_of(conn, "hyperliquid", "candles")
    # Full (but for the item the writer holds), never beyond: the readers waited.
    assert max(w.metadata["queue_depth_max"] for w in windows) >= config.queue_bound - 1
    assert streamer.counters.reconnects == 0 and replay.ws.stats.idle_closed == 0
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
