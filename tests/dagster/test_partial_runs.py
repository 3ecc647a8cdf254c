"""A run over many subjects keeps the subjects that answered (issue 14 item 9).

One coin's ``fundingHistory``, one Polymarket search term, one DefiLlama series failing at the
real replay server: the others' rows are stored as the source served them, the failed subject
is named under ``subject_errors`` in the ledger run, and the run succeeds. Only a run whose
every subject failed is ``failed``, naming them, with nothing written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest

from market_assets.defs.defillama.assets import macro_asset
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.polymarket.assets import discovery_asset, summary_asset
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.funding import FIRST_HISTORY_HOURS
from market_assets.memory import open_memory, polymarket
from market_assets.memory.polymarket import TrackedMarket
from market_assets.memory.runs import RunRecord, RunStatus, runs_of
from market_assets.registry import DEFILLAMA_MACRO, FUNDING, POLYMARKET_DISCOVERY, POLYMARKET_SUMMARY, Channel
from market_assets.replay import HttpFault, HttpFaultKind, ReplayServers
from market_assets.settings import DEFAULT_SEARCH_TERMS, LOCAL_MAX_SEARCH_TERMS

HOUR_MS = 3_600_000


def materialize(asset: dg.AssetsDefinition, memory: MarketMemory, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize([asset], resources={"memory": memory}, instance=instance, raise_on_error=False)


def query(memory: MarketMemory, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    conn = sqlite3.connect(memory.db_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def only_run(memory: MarketMemory, channel: Channel) -> RunRecord:
    conn = sqlite3.connect(memory.db_path)
    try:
        [run] = runs_of(conn, channel.source, channel.name)
    finally:
        conn.close()
    return run


def settled_as_served(replay: ReplayServers, coin: str, current_hour: int) -> list[tuple[int, float, float | None]]:
    """The settled hours the replay serves for ``coin`` over the first run's week, as stored."""
    start = current_hour - FIRST_HISTORY_HOURS * HOUR_MS
    served = replay.catalog.funding(coin, start, current_hour - 1, 10_000)
    return [
        (row["time"] - row["time"] % HOUR_MS, float(row["fundingRate"]), None if row["premium"] is None else float(row["premium"]))
        for row in served
    ]


def test_one_coins_funding_history_failing_keeps_every_other_coin(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, info_type="fundingHistory", coin="ETH", status=500, times=None))
    result = materialize(funding_asset, offline, instance)
    assert result.success

    run = only_run(offline, FUNDING)
    assert run.status is RunStatus.SUCCEEDED and run.error is None
    errors = run.metadata["subject_errors"]
    assert list(errors) == ["ETH"]
    assert errors["ETH"].startswith("hyperliquid fundingHistory: HTTP 500 after 5 attempt(s)")

    followed = [coin for (coin,) in query(offline, "SELECT coin FROM hyperliquid_universe WHERE is_delisted = 0")]
    assert "ETH" in followed and len(followed) == 5
    [(current_hour,)] = query(offline, "SELECT DISTINCT hour_ms FROM funding WHERE settled = 0")
    for coin in followed:
        stored = query(
            offline, "SELECT hour_ms, funding_rate, premium FROM funding WHERE coin = ? AND settled = 1 ORDER BY hour_ms", (coin,)
        )
        assert stored == ([] if coin == "ETH" else settled_as_served(replay, coin, current_hour)), coin
    # ETH's current hour came from the asset contexts, which answered: it is kept too.
    assert query(offline, "SELECT count(*) FROM funding WHERE coin = 'ETH' AND settled = 0") == [(1,)]
    assert run.rows_written == query(
        offline, "SELECT (SELECT count(*) FROM funding) + (SELECT count(*) FROM hyperliquid_universe)"
    )[0][0]


def test_a_coin_that_failed_is_asked_again_from_where_it_stopped(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, info_type="fundingHistory", coin="ETH", status=422, times=None))
    assert materialize(funding_asset, offline, instance).success
    replay.plan.clear()
    before = len(replay.http.requests)
    assert materialize(funding_asset, offline, instance).success
    asked = [r.body for r in replay.http.requests[before:] if r.info_type == "fundingHistory"]
    assert len(asked) == 1 and '"coin":"ETH"' in asked[0].replace(" ", "")
    [(current_hour,)] = query(offline, "SELECT DISTINCT hour_ms FROM funding WHERE settled = 0")
    stored = query(offline, "SELECT hour_ms, funding_rate, premium FROM funding WHERE coin = 'ETH' AND settled = 1 ORDER BY hour_ms")
    assert stored == settled_as_served(replay, "ETH", current_hour)


def test_every_coin_failing_fails_the_run_naming_them_and_writes_nothing(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, info_type="fundingHistory", status=422, times=None))
    result = materialize(funding_asset, offline, instance)
    assert not result.success
    run = only_run(offline, FUNDING)
    assert run.status is RunStatus.FAILED and run.rows_written == 0
    coins = sorted(run.metadata["subject_errors"])
    assert len(coins) == 5 and "BTC" in coins
    assert run.error is not None
    assert run.error.startswith("AllSubjectsFailed: hyperliquid every coin's fundingHistory: all 5 failed: ")
    assert all(f"{coin}: hyperliquid fundingHistory: HTTP 422" in run.error for coin in coins)
    assert query(offline, "SELECT count(*) FROM funding") == [(0,)]
    assert query(offline, "SELECT count(*) FROM hyperliquid_universe") == [(0,)]


def test_one_search_term_failing_keeps_the_markets_of_the_others(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers, tmp_path: Path
) -> None:
    terms = list(DEFAULT_SEARCH_TERMS[:LOCAL_MAX_SEARCH_TERMS])
    whole = MarketMemory(db_path=str(tmp_path / "whole.db"))
    assert materialize(discovery_asset, whole, instance).success
    found = query(whole, "SELECT market_id, search_term FROM polymarket_tracked_markets ORDER BY market_id")
    failing = next(term for term in terms if any(t == term for _, t in found))

    replay.plan.add_http(
        HttpFault(HttpFaultKind.STATUS, path="/gamma/public-search", query={"q": failing}, status=422, times=None)
    )
    assert materialize(discovery_asset, offline, instance).success
    run = only_run(offline, POLYMARKET_DISCOVERY)
    assert run.status is RunStatus.SUCCEEDED and list(run.metadata["subject_errors"]) == [failing]
    kept = query(offline, "SELECT market_id, search_term FROM polymarket_tracked_markets ORDER BY market_id")
    assert kept and all(term != failing for _, term in kept)
    # Every market the other terms found first is kept, under the same term.
    assert {m for m in found if m[1] != failing} <= set(kept)


def test_one_defillama_series_failing_keeps_the_other_series(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers, tmp_path: Path
) -> None:
    whole = MarketMemory(db_path=str(tmp_path / "whole.db"))
    assert materialize(macro_asset, whole, instance).success
    every_series = "SELECT series, subject, ts_ms, value FROM defillama_series ORDER BY 1, 2, 3"
    reference = query(whole, every_series)

    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/llama/overview/fees", status=422, times=None))
    assert materialize(macro_asset, offline, instance).success
    run = only_run(offline, DEFILLAMA_MACRO)
    assert run.status is RunStatus.SUCCEEDED and list(run.metadata["subject_errors"]) == ["fees"]
    assert query(offline, every_series) == [row for row in reference if row[0] != "fees"]
    assert any(row[0] == "fees" for row in reference)


def test_a_hip3_dex_failing_keeps_the_main_dex(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    main_only = MarketMemory(db_path=str(tmp_path / "main-only.db"))
    assert materialize(funding_asset, main_only, instance).success
    universe = "SELECT coin, dex, asset_index, sz_decimals, max_leverage, is_delisted FROM hyperliquid_universe ORDER BY coin"
    settled = "SELECT coin, hour_ms, funding_rate, premium FROM funding WHERE settled = 1 ORDER BY coin, hour_ms"

    monkeypatch.setenv("MARKET_HIP3_DEXES", "xyz")  # the replay holds no recording of any HIP-3 dex: 422
    assert materialize(funding_asset, offline, instance).success
    run = only_run(offline, FUNDING)
    assert run.status is RunStatus.SUCCEEDED
    [(dex, error)] = run.metadata["subject_errors"].items()
    assert dex == "dex xyz" and error.startswith("hyperliquid metaAndAssetCtxs: HTTP 422")
    assert query(offline, universe) == query(main_only, universe)
    assert query(offline, settled) == query(main_only, settled)


def test_one_summary_request_failing_keeps_the_markets_of_the_others(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers, tmp_path: Path
) -> None:
    """Every market the replay holds is tracked (103): two requests of 100 and 3 ids. The second
    fails; the first hundred are stored as a whole run stores them."""
    every_id = [str(market["id"]) for market in replay.catalog.all_gamma_markets]
    assert len(every_id) == 103
    whole = MarketMemory(db_path=str(tmp_path / "whole.db"))
    for memory in (whole, offline):
        with open_memory(Path(memory.db_path)) as conn:
            polymarket.track_markets(conn, [TrackedMarket(market_id, "seeded") for market_id in every_id], 0)
    assert materialize(summary_asset, whole, instance).success

    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/gamma/markets", query={"limit": "3"}, status=422, times=None))
    assert materialize(summary_asset, offline, instance).success
    run = only_run(offline, POLYMARKET_SUMMARY)
    first_hundred, last_three = sorted(every_id)[:100], sorted(every_id)[100:]
    assert run.status is RunStatus.SUCCEEDED and sorted(run.metadata["subject_errors"]) == last_three
    columns = "market_id, question, slug, outcomes, outcome_prices, volume, liquidity, end_date, active, closed"
    stored = query(offline, f"SELECT {columns} FROM polymarket_markets ORDER BY market_id")
    assert [row[0] for row in stored] == first_hundred
    assert stored == [row for row in query(whole, f"SELECT {columns} FROM polymarket_markets ORDER BY market_id") if row[0] in first_hundred]
