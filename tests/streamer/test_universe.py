"""The perp universe: delisted perps left out, most traded first, capped locally, followed live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from market_assets import fixtures
from market_assets.memory import open_memory
from market_assets.memory.hyperliquid import listed_coins
from market_assets.replay import ReplayServers
from market_assets.sources.hyperliquid import parse_meta_and_asset_ctxs
from streamer.universe import Universe, universe_of

from .conftest import streamer_config, streaming, wait_simulated

pytestmark = pytest.mark.anyio

RECORDED = parse_meta_and_asset_ctxs(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))


def test_delisted_perps_are_recorded_but_not_streamed() -> None:
    universe = universe_of([RECORDED], None)
    assert len(universe.coins) == 171 and len(universe.rows) == 203
    assert "MATIC" not in universe.coins and any(r.coin == "MATIC" and r.is_delisted for r in universe.rows)


def test_coins_are_ranked_by_traded_volume_and_the_local_profile_keeps_the_top() -> None:
    universe = universe_of([RECORDED], 5)
    assert universe.coins == ("ETH", "BTC", "SOL", "HYPE", "LINK")
    assert universe.volume("ETH") > universe.volume("BTC") > universe.volume("SOL")


async def test_the_universe_is_stored_for_the_dashboard_and_reread_periodically(
    replay: ReplayServers, memory_path: Path
) -> None:
    def reads() -> list[int]:
        return [r.at_ms for r in replay.http.requests if r.info_type == "metaAndAssetCtxs"]

    async with streaming(replay, memory_path, streamer_config(max_coins=2, universe_poll_s=60)):
        await wait_simulated(replay, 200)
        # A loaded machine's event loop can take the fourth read a little past 180 s.
        for _ in range(20):
            if len(reads()) >= 4:
                break
            await wait_simulated(replay, 10)
    read_at = reads()
    assert len(read_at) >= 4
    assert all(later - earlier >= 59_000 for earlier, later in zip(read_at, read_at[1:]))  # every 60 s, not more often
    with open_memory(memory_path) as conn:
        assert len(listed_coins(conn)) == 171


async def test_a_listing_and_a_delisting_are_followed_on_the_open_socket(replay: ReplayServers, memory_path: Path) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await wait_simulated(replay, 20)
        before = streamer.universe
        listed = universe_of([RECORDED], 4)
        dropped = before.coins[-1]
        streamer.follow(Universe(tuple(c for c in listed.coins if c != dropped), listed.volumes, listed.rows))
        await wait_simulated(replay, 20)
        dropped_last_frame = streamer.counters.last_frame_ms[dropped]
        await wait_simulated(replay, 30)
    assert replay.ws.stats.connections == 1  # no reconnect to change subscriptions
    assert replay.ws.stats.subscribes_by_coin.get(listed.coins[3]) == 1
    assert streamer.counters.last_frame_ms[listed.coins[3]] > 0
    assert streamer.counters.last_frame_ms[dropped] == dropped_last_frame  # unsubscribed
    assert sorted(streamer.pool.coins) == sorted(c for c in listed.coins if c != dropped)


async def test_an_opted_in_hip3_dex_is_asked_for_and_one_that_fails_leaves_the_main_dex_streaming(
    replay: ReplayServers, memory_path: Path
) -> None:
    # The replay holds no HIP-3 recording and answers 500, as for an unknown dex.
    async with streaming(replay, memory_path, streamer_config(max_coins=2, hip3_dexes=("xyz",))) as streamer:
        await wait_simulated(replay, 30)
    asked = [json.loads(r.body).get("dex") for r in replay.http.requests if r.info_type == "metaAndAssetCtxs"]
    assert None in asked and "xyz" in asked
    assert streamer.universe.coins == ("ETH", "BTC") and streamer.counters.rows_written > 0
