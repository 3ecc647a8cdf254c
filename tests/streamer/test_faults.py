"""Faults injected by the replay servers (and one by another process); each test ends with what
the market memory kept: every closed minute, equal to the replay's series."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from market_assets.memory import connect, open_memory
from market_assets.memory.connection import close
from market_assets.memory.gaps import GapStatus, gaps_of
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.memory.target import MemoryTarget
from market_assets.replay import ReplayServers

from .conftest import (
    MINUTE_MS,
    assert_complete_and_exact,
    closed_rows,
    lock_holder,
    on_both_engines,
    streamer_config,
    streaming,
    wait_settled,
    wait_simulated,
)

pytestmark = pytest.mark.anyio


def most_in_any_minute(times_ms: list[int]) -> int:
    times = sorted(times_ms)
    return max((sum(1 for t in times if start <= t < start + MINUTE_MS) for start in times), default=0)


def snapshots(replay: ReplayServers) -> list[tuple[str, int]]:
    """``(coin, startTime)`` of every candleSnapshot the replay answered."""
    asked = (json.loads(r.body)["req"] for r in replay.http.requests if r.info_type == "candleSnapshot")
    return [(req["coin"], req["startTime"]) for req in asked]


@on_both_engines
async def test_connections_dropped_every_ten_seconds_for_ten_minutes_lose_no_closed_minute(
    replay: ReplayServers, memory_path: MemoryTarget
) -> None:
    # One coin per socket on six sockets: unchecked, they would reconnect ~36 times a minute.
    config = streamer_config(max_coins=6, max_connections=6, subscriptions_per_connection=1)
    replay.plan.drop_every_s = 10
    async with streaming(replay, memory_path, config) as streamer:
        await wait_simulated(replay, 600)
        replay.plan.drop_every_s = None
        # the last owed minutes come back from REST once the sockets are live again
        await wait_settled(replay, memory_path, streamer.universe.coins, at_least_s=90, at_most_s=600)
        end_ms = replay.clock.now_ms()
    assert replay.ws.stats.dropped >= 100 and streamer.counters.reconnects >= 100
    assert most_in_any_minute(replay.ws.stats.opened_ms) <= config.new_connections_per_minute <= 30
    assert streamer.counters.repair_requests > 0
    minutes = assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
    # 690 simulated seconds: 11 settled minutes, or 10 when the start (slower on a loaded machine) fell late in its minute
    assert len(minutes) == 6 and min(minutes.values()) >= 10


async def test_one_silent_coin_is_resubscribed_alone_and_its_minutes_come_from_rest(
    replay: ReplayServers, memory_path: Path
) -> None:
    config = streamer_config(max_coins=4, silent_coin_multiple=1.0)
    started_minute_ms = replay.clock.now_ms() // MINUTE_MS * MINUTE_MS
    async with streaming(replay, memory_path, config) as streamer:
        await wait_simulated(replay, 90)
        silent, *others = reversed(streamer.universe.coins)
        replay.plan.silenced_coins.add(silent)
        await wait_simulated(replay, 180)
        replay.plan.silenced_coins.discard(silent)
        await wait_simulated(replay, 90)
        end_ms = replay.clock.now_ms()
    stats = replay.ws.stats
    assert stats.connections == 1 and stats.idle_closed == 0 and stats.pings >= 10  # no idle close
    assert set(streamer.counters.resubscribed) == {silent} and streamer.counters.stale_resubscribes >= 2
    assert stats.subscribes_by_coin[silent] == 1 + streamer.counters.stale_resubscribes
    assert all(stats.subscribes_by_coin[coin] == 1 for coin in others)
    # The others never needed REST once streamed: at most the minute the streamer started in, when
    # their first frame came in the next one (a start late in its minute, as on a loaded machine).
    assert {coin for coin, _ in snapshots(replay)} - set(others) == {silent}
    assert all(start <= started_minute_ms for coin, start in snapshots(replay) if coin in others)
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
    with open_memory(memory_path) as conn:
        gaps = gaps_of(conn)
    silent_gaps = [gap for gap in gaps if gap.coin == silent]
    assert all(gap.end_ms <= started_minute_ms + MINUTE_MS for gap in gaps if gap.coin != silent)  # the start's
    assert {gap.status for gap in gaps} == {GapStatus.FILLED} and sum(g.missing_buckets for g in silent_gaps) >= 2


async def test_malformed_json_text_and_error_frames_are_counted_and_skipped(replay: ReplayServers, memory_path: Path) -> None:
    noise = [
        '{"channel":"candle","data":{"t":1',  # malformed JSON
        "Websocket connection established.",  # not JSON at all
        '{"channel":"error","data":"Error parsing JSON into valid websocket request: {\\"method\\":\\"subscribe\\"}"}',
        '{"channel":"candle","data":{"t":1795000000000,"s":"BTC"}}',  # JSON, but no o/h/l/c/v/n
    ]
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        for _ in range(5):
            await wait_simulated(replay, 40)
            for frame in noise:
                replay.plan.inject(frame)
        await wait_simulated(replay, 60)
        end_ms = replay.clock.now_ms()
    counters = streamer.counters
    assert (counters.not_json_frames, counters.error_frames, counters.parse_errors) == (10, 5, 5)
    assert counters.reconnects == 0 and replay.ws.stats.connections == 1
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)




@on_both_engines
async def test_another_process_holding_the_write_lock_for_three_seconds_loses_no_row(
    replay: ReplayServers, memory_path: MemoryTarget
) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await wait_simulated(replay, 60)
        holder = await asyncio.create_subprocess_exec(*lock_holder(memory_path, 3), stdout=asyncio.subprocess.PIPE)
        try:
            assert holder.stdout is not None and await holder.stdout.readline() == b"locked\n"
            assert await holder.wait() == 0  # three real seconds: five simulated minutes
        finally:
            if holder.returncode is None:
                holder.kill()
                await holder.wait()
        await wait_simulated(replay, 60)
        end_ms = replay.clock.now_ms()
    assert streamer.counters.write_errors == 0
    assert replay.ws.stats.connections == 1 and replay.ws.stats.idle_closed == 0  # pings flowed meanwhile
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)
    with open_memory(memory_path) as conn:
        windows = runs_of(conn, "hyperliquid", "candles")
    assert {w.status for w in windows} == {RunStatus.SUCCEEDED}, [(w.error, w.started_at_ms) for w in windows if w.error]
    waited = max(w.metadata.get("commit_latency_ms_p99", 0) for w in windows)
    assert waited >= 2000  # the lock really held rows back, and they were all written after it


async def test_a_reader_pinning_a_snapshot_holds_the_wal_back_only_until_it_lets_go(
    replay: ReplayServers, memory_path: Path
) -> None:
    """Readers always in flight keep SQLite from ever restarting the WAL; the writer bounds it
    itself after its flushes (here at 32 KiB), and a reader holding a snapshot only delays that."""
    async with streaming(replay, memory_path, streamer_config(max_coins=3, wal_bound_bytes=32 * 1024)) as streamer:
        await wait_simulated(replay, 60)
        reader = connect(memory_path)
        reader.execute("BEGIN")
        pinned = reader.execute("SELECT count(*) FROM candles").fetchone()
        while streamer.counters.wal_truncations_held_back == 0:
            await wait_simulated(replay, 10)
        assert reader.execute("SELECT count(*) FROM candles").fetchone() == pinned  # its snapshot intact
        reader.execute("COMMIT")
        close(reader)
        truncated = streamer.counters.wal_truncations
        await wait_simulated(replay, 120)
        end_ms = replay.clock.now_ms()
    assert streamer.counters.wal_truncations > truncated and streamer.counters.write_errors == 0
    assert_complete_and_exact(memory_path, replay.catalog.series, streamer.universe.coins, through_ms=end_ms)


async def test_a_stop_just_after_a_minute_ended_closes_it_though_no_frame_followed(
    replay: ReplayServers, memory_path: Path
) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await wait_simulated(replay, 90)
        coins = streamer.universe.coins
        now_ms = replay.clock.now_ms()
        ended_ms = now_ms - now_ms % MINUTE_MS
        await wait_simulated(replay, (ended_ms + MINUTE_MS - 2_000 - now_ms) / 1000)
        replay.plan.silenced_coins.update(coins)  # nothing after this minute's last two seconds
        await wait_simulated(replay, 5)  # three seconds past its end: no frame, so no flush, came
    with open_memory(memory_path) as conn:
        forming = {coin for coin in coins if ended_ms not in closed_rows(conn, coin)}
    assert forming == set()
