"""Gamma paging and DefiLlama's hosts, flags and units, through the clients against the replay."""

from __future__ import annotations

from decimal import Decimal

import pytest

from market_assets.replay import ReplayServers
from market_assets.sources.defillama import DefiLlamaClient, FeesDataType, Unreported
from market_assets.sources.errors import PayloadError
from market_assets.sources.hyperliquid import parse_meta_and_asset_ctxs
from market_assets.sources.polymarket import GammaClient, parse_markets

pytestmark = pytest.mark.anyio


async def test_markets_page_by_limit_and_offset_over_open_markets_only(replay: ReplayServers) -> None:
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        markets = await gamma.markets(page_size=30)
    assert len(markets) == len({m.id for m in markets}) == 100
    queries = [r.query for r in replay.http.requests]
    assert [q["offset"] for q in queries] == ["0", "30", "60", "90"]  # the short fourth page ends it
    assert all(q["closed"] == "false" and q["active"] == "true" and q["archived"] == "false" for q in queries)
    assert markets[0].outcome_prices == (Decimal("0.0025"), Decimal("0.9975"))


async def test_market_paging_stops_at_max_pages(replay: ReplayServers) -> None:
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        markets = await gamma.markets(page_size=10, max_pages=2)
    assert len(markets) == 20 and len(replay.http.requests) == 2


async def test_search_follows_pages_while_has_more(replay: ReplayServers) -> None:
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        events = await gamma.search("election")
    assert [r.query["page"] for r in replay.http.requests] == ["1", "2"]
    assert all(r.query["q"] == "election" for r in replay.http.requests)
    assert len(events) == 1 and events[0].markets


async def test_events_carry_their_markets_with_decoded_prices(replay: ReplayServers) -> None:
    async with GammaClient(replay.endpoints.gamma_api, clock=replay.clock) as gamma:
        (event,) = await gamma.events()
    assert event.slug == "democratic-presidential-nominee-2028"
    assert all(m.outcomes == ("Yes", "No") for m in event.markets)


def test_a_market_without_id_names_source_endpoint_and_field() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_markets(b'[{"id": "1"}, {"question": "no id"}]')
    error = caught.value
    assert (error.source, error.endpoint, error.field) == ("polymarket", "/markets", "$[1].id")
    assert str(error).startswith("polymarket /markets: field $[1].id:")


def test_a_bad_json_encoded_price_list_names_its_field() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_markets(b'[{"id": "7", "outcomePrices": "[\\"0.5\\", oops]"}]')
    assert caught.value.field == "$[0].outcomePrices"


def test_a_ctx_without_mark_price_names_the_field() -> None:
    body = b'[{"universe":[{"name":"BTC","szDecimals":5}]},[{"funding":"0","openInterest":"1","prevDayPx":"1","dayNtlVlm":"1","oraclePx":"1","dayBaseVlm":"1"}]]'
    with pytest.raises(PayloadError) as caught:
        parse_meta_and_asset_ctxs(body)
    assert (caught.value.source, caught.value.endpoint, caught.value.field) == ("hyperliquid", "metaAndAssetCtxs", "$[1][0].markPx")


async def test_each_defillama_path_is_called_on_its_documented_host(replay: ReplayServers) -> None:
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        await llama.chains()
        await llama.historical_chain_tvl()
        report = await llama.stablecoins()
        await llama.dex_volume()
        await llama.fees(FeesDataType.DAILY_REVENUE)
    paths = [r.path for r in replay.http.requests]
    assert paths == [
        "/llama/v2/chains",
        "/llama/v2/historicalChainTvl",
        "/stablecoins/stablecoins",
        "/llama/overview/dexs",
        "/llama/overview/fees",
    ]
    stablecoins, dexs, fees = replay.http.requests[2], replay.http.requests[3], replay.http.requests[4]
    assert stablecoins.query == {"includePrices": "true"} and report.usd_supply > 0
    for overview in (dexs, fees):
        assert overview.query["excludeTotalDataChart"] == "true"
        assert overview.query["excludeTotalDataChartBreakdown"] == "true"
    assert fees.query["dataType"] == "dailyRevenue"


async def test_null_and_zero_daily_totals_are_flagged_not_kept_as_zero(replay: ReplayServers) -> None:
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        overview = await llama.dex_volume()
    figures = {p.name: p.total_24h for p in overview.protocols}
    assert figures["Backfilling DEX"].value is None and figures["Backfilling DEX"].unreported is Unreported.NULL
    assert figures["Stale DEX"].value is None and figures["Stale DEX"].unreported is Unreported.ZERO
    assert figures["Uniswap V3"].unreported is None and figures["Uniswap V3"].value and figures["Uniswap V3"].value > 0
    assert overview.total_24h.value is not None and overview.total_24h.value > 0


async def test_chain_tvl_history_is_in_milliseconds_for_a_named_chain(replay: ReplayServers) -> None:
    async with DefiLlamaClient(replay.endpoints.llama_api, replay.endpoints.stablecoins_api, clock=replay.clock) as llama:
        points = await llama.historical_chain_tvl("Hyperliquid L1")
    assert replay.http.requests[0].path == "/llama/v2/historicalChainTvl/Hyperliquid L1"
    assert points[0].date_ms == 1662768000000 and points[0].date_ms % 86_400_000 == 0
