"""``hyperliquid/features`` and ``hyperliquid/maintenance``: computed from the stored candles."""

from __future__ import annotations

from typing import Any

import dagster as dg

from market_assets.defs.automation import asset_key, source_pool
from market_assets.defs.resources import MarketMemory
from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.registry import CANDLES, FEATURES, MAINTENANCE


def _result(metadata: dict[str, Any], rows_written: int, run_id: int) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={**metadata, "dagster/row_count": rows_written, "rows_written": rows_written, "ledger_run_id": run_id}
    )


@dg.asset(
    key=asset_key(FEATURES),
    group_name=FEATURES.source,
    pool=source_pool(FEATURES),
    description=FEATURES.description,
    kinds={"python", "sqlite", "talib"},
    deps=[asset_key(CANDLES)],
)
def features_asset(memory: MarketMemory) -> dg.MaterializeResult:
    with memory.connect() as conn:
        result = run_features(conn, Ledger(conn))
    return _result(result.metadata(), result.rows_written, result.run_id)


@dg.asset(
    key=asset_key(MAINTENANCE),
    group_name=MAINTENANCE.source,
    pool=source_pool(MAINTENANCE),
    description=MAINTENANCE.description,
    kinds={"python", "sqlite"},
    deps=[asset_key(CANDLES), asset_key(FEATURES)],
)
def maintenance_asset(memory: MarketMemory) -> dg.MaterializeResult:
    with memory.connect() as conn:
        result = run_maintenance(conn, Ledger(conn))
    return _result(result.metadata(), result.rows_written, result.run_id)
