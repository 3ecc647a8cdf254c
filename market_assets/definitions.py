"""The Dagster code location: composes the per-source definitions; holds no logic of its own.

Freshness policies are applied here, once, over every spec, from the channel registry.
"""

from __future__ import annotations

import warnings

import dagster as dg

from market_assets.defs.alerts import alert_on_freshness, alert_on_run_failure
from market_assets.defs.automation import (
    channel_job,
    channel_schedule,
    with_registry_freshness,
)
from market_assets.defs.catchup import catch_up_sensor
from market_assets.defs.checks import asset_checks
from market_assets.defs.defillama.assets import macro_asset
from market_assets.defs.history import candles_history, tvl_history
from market_assets.defs.hyperliquid.archive import (
    archive_job,
    archive_sensor,
    candles_archive,
)
from market_assets.defs.hyperliquid.candle_checks import candle_checks_sensor
from market_assets.defs.hyperliquid.candles import candles, candles_windows_sensor
from market_assets.defs.hyperliquid.derived import features_asset, maintenance_asset
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.polymarket.assets import discovery_asset, summary_asset
from market_assets.defs.resources import MarketMemory
from market_assets.quality.catalog import CHECKS, checks_of
from market_assets.registry import (
    CANDLES,
    DEFILLAMA_MACRO,
    FEATURES,
    FUNDING,
    MAINTENANCE,
    POLYMARKET_DISCOVERY,
    POLYMARKET_SUMMARY,
)

SCHEDULED = {
    FUNDING: funding_asset,
    FEATURES: features_asset,
    MAINTENANCE: maintenance_asset,
    POLYMARKET_DISCOVERY: discovery_asset,
    POLYMARKET_SUMMARY: summary_asset,
    DEFILLAMA_MACRO: macro_asset,
}
"""Every channel Dagster runs on a schedule, with the asset that materializes it."""

jobs = {channel: channel_job(channel) for channel in SCHEDULED}

defs = dg.Definitions(
    assets=[candles, *SCHEDULED.values(), tvl_history, candles_history, candles_archive],
    asset_checks=asset_checks(CHECKS),
    jobs=[*jobs.values(), archive_job],
    schedules=[channel_schedule(channel, job) for channel, job in jobs.items()],
    sensors=[
        candles_windows_sensor, candle_checks_sensor(checks_of(CANDLES)), catch_up_sensor(jobs), archive_sensor(),
        alert_on_run_failure, alert_on_freshness,
    ],
    resources={"memory": MarketMemory()},
)

with warnings.catch_warnings():
    # map_asset_specs is marked preview in 1.13; it is the documented way to apply one policy
    # over all specs (dagster-open-platform does the same).
    warnings.simplefilter("ignore", dg.PreviewWarning)
    defs = defs.map_asset_specs(func=with_registry_freshness)
