"""``hyperliquid/funding`` as a scheduled asset."""

from __future__ import annotations

import dagster as dg

from market_assets.defs.automation import asset_key
from market_assets.defs.resources import MarketMemory
from market_assets.ingest import funding
from market_assets.ingest.runner import run_channel
from market_assets.registry import FUNDING


@dg.asset(
    key=asset_key(FUNDING),
    group_name=FUNDING.source,
    description=FUNDING.description,
    kinds={"python", "sqlite"},
)
def funding_asset(memory: MarketMemory) -> dg.MaterializeResult:
    result = run_channel(FUNDING, memory.settings, funding.collect, funding.store)
    return dg.MaterializeResult(metadata=result.metadata())
