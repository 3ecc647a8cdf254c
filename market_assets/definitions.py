"""The Dagster code location: composes the per-source definitions; holds no logic of its own.

Freshness policies are applied here, once, over every spec, from the channel registry.
"""

from __future__ import annotations

import warnings

import dagster as dg

from market_assets.defs.alerts import alert_on_freshness, alert_on_run_failure
from market_assets.defs.automation import with_registry_freshness
from market_assets.defs.hyperliquid.candles import candles, candles_windows_sensor
from market_assets.defs.resources import MarketMemory

with warnings.catch_warnings():
    # map_asset_specs is marked preview in 1.13; it is the documented way to apply one policy
    # over all specs (dagster-open-platform does the same).
    warnings.simplefilter("ignore", dg.PreviewWarning)
    defs = dg.Definitions(
        assets=[candles],
        sensors=[candles_windows_sensor, alert_on_run_failure, alert_on_freshness],
        resources={"memory": MarketMemory()},
    ).map_asset_specs(func=with_registry_freshness)
