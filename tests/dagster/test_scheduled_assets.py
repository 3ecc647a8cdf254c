"""Each scheduled asset against the replay servers: rows as the fixtures say, a ledger run, and
a source fault that fails the run and keeps what was stored before."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal

import dagster as dg
import pytest

from market_assets import fixtures
from market_assets.defs.defillama.assets import macro_asset
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.polymarket.assets import discovery_asset, summary_asset
from market_assets.defs.resources import MarketMemory
from market_assets.memory.runs import RunRecord, RunStatus, runs_of
from market_assets.registry import DEFILLAMA_MACRO, FUNDING, POLYMARKET_DISCOVERY, Channel
from market_assets.replay import HttpFault, HttpFaultKind, ReplayServers
from market_assets.settings import DEFAULT_SEARCH_TERMS, LOCAL_MAX_COINS, LOCAL_MAX_SEARCH_TERMS

HOUR_MS = 3_600_000


def materialize(asset: dg.AssetsDefinition, memory: MarketMemory, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], resources={"memory": memory}, instance=instance, raise_on_error=False)


def query(memory: MarketMemory, sql: str) -> list[tuple]:
    conn = sqlite3.connect(memory.db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def ledger(memory: MarketMemory, channel: Channel) -> list[RunRecord]:
    conn = sqlite3.connect(memory.db_path)
    try:
        return runs_of(conn, channel.source, channel.name)
    finally:
        conn.close()


def materialized_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}


def most_traded(count: int) -> list[str]:
    """The local profile's coins, read straight from the recorded metaAndAssetCtxs."""
    meta, ctxs = json.loads(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))
    listed = [
        (Decimal(ctx["dayNtlVlm"]), asset["name"])
        for asset, ctx in zip(meta["universe"], ctxs)
        if not asset.get("isDelisted")
    ]
    return [name for _, name in sorted(listed, reverse=True)[:count]]


def test_funding_stores_the_followed_universe_current_and_settled_hours(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = materialize(funding_asset, offline, instance)
    assert result.success
    followed = most_traded(LOCAL_MAX_COINS)
    assert sorted(c for (c,) in query(offline, "SELECT coin FROM hyperliquid_universe WHERE is_delisted = 0")) == sorted(followed)
    delisted = {c for (c,) in query(offline, "SELECT coin FROM hyperliquid_universe WHERE is_delisted = 1")}
    assert {"MATIC", "RNDR", "FTM"} <= delisted
    per_coin = dict(query(offline, "SELECT coin, COUNT(*) FROM funding GROUP BY coin"))
    assert set(per_coin) == set(followed)
    # a week of settled hours (fundingHistory) plus the current hour (asset contexts)
    assert all(count >= 7 * 24 for count in per_coin.values())
    unsettled = query(offline, "SELECT coin, hour_ms FROM funding WHERE settled = 0")
    assert len(unsettled) == LOCAL_MAX_COINS and len({hour for _, hour in unsettled}) == 1
    [run] = ledger(offline, FUNDING)
    total = query(offline, "SELECT (SELECT COUNT(*) FROM funding) + (SELECT COUNT(*) FROM hyperliquid_universe)")[0][0]
    assert (run.status, run.rows_written) == (RunStatus.SUCCEEDED, total)
    metadata = materialized_metadata(result)
    assert metadata["dagster/row_count"] == total == metadata["rows_written"]
    assert metadata["ledger_run_id"] == run.run_id


def test_a_second_funding_run_only_asks_for_missing_hours(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    assert materialize(funding_asset, offline, instance).success
    before = len(replay.http.requests)
    assert materialize(funding_asset, offline, instance).success
    asked = [r.info_type for r in replay.http.requests[before:]]
    assert asked == ["metaAndAssetCtxs"]  # the last settled hour is already stored


def test_a_source_outage_fails_the_run_and_keeps_the_stored_rows(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    assert materialize(funding_asset, offline, instance).success
    stored = query(offline, "SELECT * FROM funding ORDER BY coin, hour_ms")
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, info_type="metaAndAssetCtxs", status=503, times=None))
    result = materialize(funding_asset, offline, instance)
    assert not result.success
    latest = ledger(offline, FUNDING)[-1]
    assert latest.status is RunStatus.FAILED
    assert "503" in latest.error and "metaAndAssetCtxs" in latest.error
    assert latest.retries >= 1
    assert query(offline, "SELECT * FROM funding ORDER BY coin, hour_ms") == stored


def test_a_429_is_retried_after_its_retry_after_and_counted(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(
        HttpFault(HttpFaultKind.STATUS, path="/llama/v2/chains", status=429, retry_after="1", times=1)
    )
    assert materialize(macro_asset, offline, instance).success
    [run] = ledger(offline, DEFILLAMA_MACRO)
    assert (run.status, run.retries, run.throttles) == (RunStatus.SUCCEEDED, 1, 1)


def test_macro_stores_tvl_stablecoins_and_withholds_unreported_totals(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = materialize(macro_asset, offline, instance)
    assert result.success
    history = json.loads(fixtures.fixture_bytes(fixtures.LLAMA_HISTORICAL_TVL))
    total = query(offline, "SELECT ts_ms, value FROM defillama_series WHERE series = 'tvl' AND subject = 'total' ORDER BY ts_ms")
    assert total == [(p["date"] * 1000, float(p["tvl"])) for p in history]  # seconds on the wire, ms stored
    chains = json.loads(fixtures.fixture_bytes(fixtures.LLAMA_CHAINS))
    stored_chains = dict(query(offline, "SELECT subject, value FROM defillama_series WHERE series = 'tvl' AND subject != 'total'"))
    assert stored_chains == {c["name"]: float(c["tvl"]) for c in chains}
    pegs = dict(query(offline, "SELECT subject, value FROM defillama_series WHERE series = 'stablecoin_supply'"))
    assert {"peggedUSD", "peggedEUR"} <= set(pegs)
    assert pegs["peggedUSD"] > 100 * pegs["peggedEUR"]  # never summed across pegs
    totals = dict(query(offline, "SELECT series, value FROM defillama_series WHERE series IN ('dex_volume', 'fees')"))
    assert totals["dex_volume"] == pytest.approx(412_345_678.9 + 1_234_567_890.12)  # the replay's reported protocols
    [run] = ledger(offline, DEFILLAMA_MACRO)
    assert run.rows_written == query(offline, "SELECT COUNT(*) FROM defillama_series")[0][0]


def test_a_zero_dex_volume_total_is_flagged_not_stored(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(
        HttpFault(HttpFaultKind.STATUS, path="/llama/overview/dexs", status=200, body=b'{"protocols":[],"total24h":0}')
    )
    result = materialize(macro_asset, offline, instance)
    assert result.success
    assert materialized_metadata(result)["unreported/dex_volume"] == "zero"
    assert query(offline, "SELECT COUNT(*) FROM defillama_series WHERE series = 'dex_volume'") == [(0,)]
    assert query(offline, "SELECT COUNT(*) FROM defillama_series WHERE series = 'fees'") == [(1,)]


def recorded_search_markets() -> list[dict]:
    search = json.loads(fixtures.fixture_bytes(fixtures.GAMMA_SEARCH))
    return [m for event in search["events"] for m in event["markets"] if m["active"] and not m["closed"]]


def test_discovery_tracks_the_open_markets_its_search_terms_find(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    assert materialize(discovery_asset, offline, instance).success
    expected = [m["id"] for m in recorded_search_markets()]
    assert [m for (m,) in query(offline, "SELECT market_id FROM polymarket_tracked_markets")] == expected
    searched = [r.query["q"] for r in replay.http.requests if r.path.endswith("/public-search")]
    assert sorted(set(searched)) == sorted(DEFAULT_SEARCH_TERMS[:LOCAL_MAX_SEARCH_TERMS])
    # the first term that found a market names it
    assert query(offline, "SELECT search_term FROM polymarket_tracked_markets") == [(DEFAULT_SEARCH_TERMS[0],)]
    [run] = ledger(offline, POLYMARKET_DISCOVERY)
    assert (run.status, run.rows_written) == (RunStatus.SUCCEEDED, len(expected))


def test_summary_upserts_a_compact_row_per_tracked_market(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    assert materialize(discovery_asset, offline, instance).success
    result = materialize(summary_asset, offline, instance)
    assert result.success
    [recorded] = recorded_search_markets()
    [row] = query(offline, "SELECT market_id, question, outcomes, outcome_prices, volume, liquidity, end_date, closed FROM polymarket_markets")
    assert row[:2] == (recorded["id"], recorded["question"])
    assert json.loads(row[2]) == json.loads(recorded["outcomes"])  # JSON-encoded text on the wire, decoded once
    assert json.loads(row[3]) == json.loads(recorded["outcomePrices"])
    assert row[4] == float(recorded["volume"]) and row[7] == 0
    assert row[6].startswith(recorded["endDate"][:10])
    asked = [r.query for r in replay.http.requests if r.path == "/gamma/markets"]
    assert asked[-1]["id"] == recorded["id"]
    assert materialized_metadata(result)["rows/markets"] == 1


def test_a_nan_chain_tvl_is_dropped_and_counted_not_fatal(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    chains = json.loads(fixtures.fixture_bytes(fixtures.LLAMA_CHAINS))
    body = json.dumps(chains).replace(f'"tvl": {json.dumps(chains[0]["tvl"])}', '"tvl": "NaN"', 1).encode()
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/llama/v2/chains", status=200, body=body))
    result = materialize(macro_asset, offline, instance)
    assert result.success
    assert materialized_metadata(result)["unreported/non_finite_points"] == "1"
    stored = {s for (s,) in query(offline, "SELECT subject FROM defillama_series WHERE series = 'tvl'")}
    assert chains[0]["name"] not in stored and chains[1]["name"] in stored
