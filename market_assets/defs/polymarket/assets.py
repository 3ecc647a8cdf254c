"""``polymarket/discovery`` and ``polymarket/summary`` as scheduled assets."""

from __future__ import annotations

import dagster as dg

from market_assets.defs.automation import asset_key
from market_assets.defs.resources import MarketMemory
from market_assets.ingest import polymarket
from market_assets.ingest.runner import run_channel
from market_assets.registry import POLYMARKET_DISCOVERY, POLYMARKET_SUMMARY


@dg.asset(
    key=asset_key(POLYMARKET_DISCOVERY),
    group_name=POLYMARKET_DISCOVERY.source,
    description=POLYMARKET_DISCOVERY.description,
    kinds={"python", "sqlite"},
)
def discovery_asset(memory: MarketMemory) -> dg.MaterializeResult:
    result = run_channel(
        POLYMARKET_DISCOVERY, memory.settings, polymarket.collect_discovery, polymarket.store_discovery
    )
    return dg.MaterializeResult(metadata=result.metadata())


@dg.asset(
    key=asset_key(POLYMARKET_SUMMARY),
    group_name=POLYMARKET_SUMMARY.source,
    description=POLYMARKET_SUMMARY.description,
    kinds={"python", "sqlite"},
    deps=[asset_key(POLYMARKET_DISCOVERY)],
)
def summary_asset(memory: MarketMemory) -> dg.MaterializeResult:
    result = run_channel(POLYMARKET_SUMMARY, memory.settings, polymarket.collect_summary, polymarket.store_summary)
    return dg.MaterializeResult(metadata=result.metadata())
