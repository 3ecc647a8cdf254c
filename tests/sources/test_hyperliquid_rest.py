"""Hyperliquid ``POST /info`` through the client, against the replay server."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from market_assets import fixtures
from market_assets.replay import ReplayServers
from market_assets.sources.errors import SourceUnavailable
from market_assets.sources.hyperliquid import HyperliquidClient

from .conftest import raw

pytestmark = pytest.mark.anyio

HOUR = 3_600_000


async def test_universe_is_the_listed_perps_with_their_own_contexts(replay: ReplayServers) -> None:
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        universe = await hl.meta_and_asset_ctxs()
    meta, ctxs = raw(fixtures.HL_META_AND_CTXS)
    assert universe.coins == [u["name"] for u in meta["universe"] if not u.get("isDelisted")]
    eth = next(a for a in universe.listed if a.name == "ETH")
    assert eth.ctx.mark_px == Decimal(ctxs[eth.index]["markPx"]) == Decimal("4305.9")
    (request,) = replay.http.requests
    assert json.loads(request.body) == {"type": "metaAndAssetCtxs"} and request.weight == 20
    assert hl.stats.requests == 1 and hl.stats.retries == 0


async def test_candle_range_is_bucket_inclusive_and_the_forming_bucket_is_not_closed(replay: ReplayServers) -> None:
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        now = replay.clock.now_ms()
        start = now - 10 * 60_000 + 30_000  # mid-bucket: that bucket is still returned
        batch = await hl.candle_snapshot("BTC", "1m", start, now)
    opens = [c.open_ms for c in batch.candles]
    assert opens[0] == start - start % 60_000 and opens[-1] == now - now % 60_000
    assert all(later - earlier == 60_000 for earlier, later in zip(opens, opens[1:]))
    assert all(c.close_ms == c.open_ms + 59_999 for c in batch.candles)
    # At 1,000x a minute is 60 ms of real time: the newest bucket may close before the answer
    # is read, so judge it at the answer's own time; it is forming exactly while open.
    newest_open = batch.candles[-1].close_ms >= batch.as_of_ms
    assert batch.forming == (batch.candles[-1:] if newest_open else [])
    assert batch.closed == (batch.candles[:-1] if newest_open else batch.candles)
    assert all(c.close_ms < batch.as_of_ms for c in batch.closed)


async def test_the_recorded_kpepe_hours_are_served_as_recorded(replay: ReplayServers) -> None:
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        batch = await hl.candle_snapshot("kPEPE", "1h", 1684702007000, 1684784807000)
    recorded = raw(fixtures.HL_CANDLES_KPEPE_1H)
    assert [c.open_ms for c in batch.candles] == [c["t"] for c in recorded]
    assert [str(c.close) for c in batch.candles] == [c["c"] for c in recorded]
    assert batch.closed == batch.candles  # 2023 buckets are long closed


async def test_funding_history_follows_pages_and_keeps_one_row_per_hour(replay: ReplayServers) -> None:
    now = replay.clock.now_ms()
    start = now - 30 * 24 * HOUR
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        rows = await hl.funding_history("ETH", start)
    pages = [json.loads(r.body) for r in replay.http.requests]
    assert len(pages) == 2 and pages[0]["startTime"] == start
    # The next page starts at the 500th row's time, which therefore came back twice.
    assert pages[1]["startTime"] in {r.time for r in rows}
    assert sum(r.time <= pages[1]["startTime"] for r in rows) == 500
    hours = [r.hour_ms for r in rows]
    assert hours == sorted(set(hours))  # the repeated boundary row was dropped
    assert len(rows) == (now - now % HOUR - (start - start % HOUR)) // HOUR
    assert all(r.time % HOUR < 1000 for r in rows) and any(r.time % HOUR for r in rows)
    assert replay.http.requests[0].weight == 20 + 25


async def test_recorded_btc_funding_comes_back_whole(replay: ReplayServers) -> None:
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        rows = await hl.funding_history("BTC", 1681923833000, 1684811870000)
    recorded = raw(fixtures.HL_FUNDING_BTC)
    assert [r.time for r in rows] == [r["time"] for r in recorded]
    assert rows[0].funding_rate == Decimal("-0.00061334")


async def test_an_unknown_interval_is_refused_before_spending_weight(replay: ReplayServers) -> None:
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        with pytest.raises(ValueError, match="unsupported candle interval"):
            await hl.candle_snapshot("BTC", "7m", 0, 1)
    assert replay.http.requests == [] and hl.limiter.used() == 0


async def test_a_hip3_dex_is_requested_by_name_and_the_replay_says_it_has_none(replay: ReplayServers) -> None:
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        with pytest.raises(SourceUnavailable) as caught:
            await hl.meta_and_asset_ctxs(dex="xyz")
    assert json.loads(replay.http.requests[0].body) == {"type": "metaAndAssetCtxs", "dex": "xyz"}
    assert caught.value.status == 422 and "HIP-3 dex 'xyz'" in caught.value.message
    assert hl.stats.requests == 1
