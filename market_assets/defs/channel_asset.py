"""The asset of a channel whose work is a collect + store pair (market_assets.ingest)."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from market_assets.defs.automation import asset_key, source_pool
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.runner import Collect, Store, run_channel
from market_assets.registry import Channel


def channel_asset(
    channel: Channel, collect: Collect, store: Store, *, deps: Sequence[Channel] = ()
) -> dg.AssetsDefinition:
    """An asset running ``collect`` + ``store`` inside the channel's ledger run, reporting the
    run's counts as its materialization metadata (``dagster/row_count`` included).

    Its pool is its source (``source_pool``): every run of it, however launched, claims that
    source's concurrency slot."""

    @dg.asset(
        key=asset_key(channel),
        group_name=channel.source,
        pool=source_pool(channel),
        description=channel.description,
        kinds={"python", "sqlite"},
        deps=[asset_key(dep) for dep in deps],
    )
    def materialize(memory: MarketMemory) -> dg.MaterializeResult:
        result = run_channel(channel, memory.settings, collect, store)
        return dg.MaterializeResult(metadata=result.metadata())

    return materialize
