"""``defillama/macro`` as a scheduled asset."""

from __future__ import annotations

import dagster as dg

from market_assets.defs.automation import asset_key
from market_assets.defs.resources import MarketMemory
from market_assets.ingest import defillama
from market_assets.ingest.runner import run_channel
from market_assets.registry import DEFILLAMA_MACRO


@dg.asset(
    key=asset_key(DEFILLAMA_MACRO),
    group_name=DEFILLAMA_MACRO.source,
    description=DEFILLAMA_MACRO.description,
    kinds={"python", "sqlite"},
)
def macro_asset(memory: MarketMemory) -> dg.MaterializeResult:
    result = run_channel(DEFILLAMA_MACRO, memory.settings, defillama.collect, defillama.store)
    return dg.MaterializeResult(metadata=result.metadata())
