"""Every recorded payload parses, and the records say what the raw text says."""

from __future__ import annotations

from decimal import Decimal

import pytest

from market_assets import fixtures
from market_assets.sources.defillama import parse_chains, parse_historical_tvl, parse_stablecoins
from market_assets.sources.errors import PayloadError
from market_assets.sources.hyperliquid import (
    dedupe_funding,
    parse_candles,
    parse_funding,
    parse_meta_and_asset_ctxs,
)
from market_assets.sources.hyperliquid_ws import Ack, ErrorFrame, OtherFrame, Pong, parse_frame
from market_assets.sources.polymarket import parse_events, parse_markets, parse_search

from .conftest import raw


def test_universe_drops_delisted_perps_and_keeps_asset_ids() -> None:
    universe = parse_meta_and_asset_ctxs(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))
    document = raw(fixtures.HL_META_AND_CTXS)
    delisted = {u["name"] for u in document[0]["universe"] if u.get("isDelisted")}
    assert len(universe.listed) == 203 - 32 and len(universe.delisted) == 32
    assert not delisted & set(universe.coins)
    assert {"MATIC", "RNDR", "FTM"} <= {asset.name for asset in universe.delisted}
    for asset in universe.listed + universe.delisted:
        assert document[0]["universe"][asset.index]["name"] == asset.name


def test_each_ctx_belongs_to_the_universe_entry_at_the_same_position() -> None:
    universe = parse_meta_and_asset_ctxs(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))
    ctxs = raw(fixtures.HL_META_AND_CTXS)[1]
    for asset in universe.listed:
        assert asset.ctx.mark_px == Decimal(ctxs[asset.index]["markPx"])
    btc = next(asset for asset in universe.listed if asset.name == "BTC")
    assert btc.ctx.mark_px == Decimal("113080.0") and btc.ctx.funding == Decimal("0.0000125")
    assert btc.ctx.impact_pxs == (Decimal("113079.0"), Decimal("113080.0"))


def test_null_premium_mid_and_impact_prices_of_illiquid_assets_stay_null() -> None:
    universe = parse_meta_and_asset_ctxs(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))
    nulls = [a for a in universe.listed + universe.delisted if a.ctx.mid_px is None]
    assert nulls and all(a.ctx.impact_pxs is None for a in nulls)


def test_older_universe_without_margin_tables_parses() -> None:
    universe = parse_meta_and_asset_ctxs(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS_2024))
    assert len(universe.listed) == 142
    assert universe.listed[0].name == "SOL" and universe.listed[0].ctx.mark_px == Decimal("200.4")


def test_ctxs_shorter_than_the_universe_is_a_payload_error() -> None:
    document = fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS_2024)
    cut = document[: document.rindex(b"{")].rstrip().rstrip(b",") + b"]]"
    with pytest.raises(PayloadError) as caught:
        parse_meta_and_asset_ctxs(cut)
    assert caught.value.field == "$[1]" and "141 ctxs for 142" in str(caught.value)


def test_candles_are_the_doubles_nearest_the_decimal_text_with_inclusive_bucket_times() -> None:
    candles, rejected = parse_candles(fixtures.fixture_bytes(fixtures.HL_CANDLES_KPEPE_1H))
    assert len(candles) == 24 and rejected == []
    first = candles[0]
    assert (first.open_ms, first.close_ms) == (1684699200000, 1684702799999)
    assert first.close == float(Decimal("0.001604")) and first.volume == float(Decimal("520665683.0"))
    assert first.trades == 709 and first.coin == "kPEPE" and first.interval == "1h"


def test_funding_rows_bucket_to_the_hour_despite_millisecond_jitter() -> None:
    rows = parse_funding(fixtures.fixture_bytes(fixtures.HL_FUNDING_BTC))
    assert rows[0].time == 1683849600048 and rows[0].hour_ms == 1683849600000
    assert rows[0].funding_rate == Decimal("-0.00061334")
    assert len(dedupe_funding(rows + rows[-3:])) == 34


def test_websocket_frames_classify() -> None:
    ack = parse_frame(fixtures.fixture_bytes(fixtures.HL_WS_ACK))
    assert isinstance(ack, Ack)
    assert ack.acknowledges("subscribe", {"type": "candle", "coin": "BTC", "interval": "1m"})
    assert not ack.acknowledges("subscribe", {"type": "candle", "coin": "ETH", "interval": "1m"})
    error = parse_frame(fixtures.fixture_bytes(fixtures.HL_WS_ERROR))
    assert isinstance(error, ErrorFrame)
    assert error.subscription == {"type": "candles", "coin": "BTC", "interval": "1m"}
    assert isinstance(parse_frame(fixtures.fixture_bytes(fixtures.HL_WS_PONG)), Pong)
    assert parse_frame(fixtures.fixture_bytes(fixtures.HL_WS_ALL_DEXS_CTXS)) == OtherFrame("allDexsAssetCtxs")


def test_gamma_markets_decode_the_json_encoded_string_fields() -> None:
    markets = parse_markets(fixtures.fixture_bytes(fixtures.GAMMA_MARKETS))
    assert len(markets) == 100
    first = markets[0]
    assert first.id == "516938"
    assert first.outcomes == ("Yes", "No")
    assert first.outcome_prices == (Decimal("0.0025"), Decimal("0.9975"))
    assert first.clob_token_ids is not None and first.clob_token_ids[0].startswith("2853768819561879")
    assert first.volume == Decimal("2147013.414819") and first.liquidity == Decimal("41347.0411")
    assert first.end_ms == 1767182400000  # 2025-12-31T12:00:00Z
    recorded = raw(fixtures.GAMMA_MARKETS)
    assert sum(m.volume_24h is None for m in markets) == sum("volume24hr" not in m for m in recorded) == 22
    assert sum(m.best_bid is None for m in markets) >= 11


def test_gamma_events_and_search_parse_with_their_embedded_markets() -> None:
    (event,) = parse_events(fixtures.fixture_bytes(fixtures.GAMMA_EVENTS))
    assert event.slug == "democratic-presidential-nominee-2028"
    assert event.volume == Decimal("799823812.487094") and event.open_interest == 0
    assert len(event.markets) == 2 and "politics" in event.tag_slugs
    assert all(len(m.outcome_prices or ()) == 2 for m in event.markets)
    page = parse_search(fixtures.fixture_bytes(fixtures.GAMMA_SEARCH))
    assert page.has_more is True and page.total_results == 46940 and len(page.events) == 1


def test_defillama_chains_keep_int_string_and_null_chain_ids() -> None:
    chains = parse_chains(fixtures.fixture_bytes(fixtures.LLAMA_CHAINS))
    assert len(chains) == 450
    kinds = [type(c.chain_id).__name__ for c in chains]
    assert (kinds.count("int"), kinds.count("NoneType"), kinds.count("str")) == (237, 209, 4)
    harmony = chains[0]
    assert harmony.name == "Harmony" and harmony.tvl == Decimal("255935.90378472308")
    assert any(c.name == "Hyperliquid L1" for c in chains)


def test_historical_chain_tvl_seconds_become_milliseconds() -> None:
    points = parse_historical_tvl(fixtures.fixture_bytes(fixtures.LLAMA_HISTORICAL_TVL))
    assert len(points) == 365
    assert points[0].date_ms == 1662768000 * 1000
    assert points[0].tvl == Decimal("57243891081.86372")


def test_stablecoin_supply_is_summed_per_peg_never_across_pegs() -> None:
    report = parse_stablecoins(fixtures.fixture_bytes(fixtures.LLAMA_STABLECOINS))
    recorded = raw(fixtures.LLAMA_STABLECOINS)["peggedAssets"]
    usd_only = sum(Decimal(repr(a["circulating"]["peggedUSD"])) for a in recorded if "peggedUSD" in a["circulating"])
    assert report.usd_supply == usd_only
    by_peg = report.supply_by_peg()
    assert by_peg["peggedEUR"] > 0 and report.usd_supply == by_peg["peggedUSD"]
    assert report.usd_supply != sum(by_peg.values())
    assert len(report.assets) == 206 and sum(a.price is None for a in report.assets) == 69
    assert "TotalCirculating" not in {c.name for c in report.chains}
