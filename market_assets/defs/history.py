"""History backfills as daily-partitioned assets, launched from the Dagster UI's backfill dialog.

A backfill of many days runs once over the whole range (``BackfillPolicy.single_run``): one
DefiLlama history request serves every day, and candle requests are paced by one weight budget.
"""

# No ``from __future__ import annotations``: Dagster inspects the ``context`` annotation itself.
import dagster as dg
from dagster import AssetExecutionContext

from market_assets.clock import wall_clock_ms
from market_assets.defs.automation import asset_key
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.history import OutOfReach, backfill_candle_days, backfill_tvl_days, day_text
from market_assets.registry import CANDLES, DEFILLAMA_MACRO

TVL_HISTORY_START = "2019-01-01"
"""DefiLlama's all-chain TVL history starts in 2018; earlier days would store nothing."""
CANDLE_HISTORY_START = "2025-01-01"
"""Partitions before the 5,000-candle window fail with a plain 'out of reach' message."""


def _window_ms(context: AssetExecutionContext) -> tuple[int, int]:
    window = context.partition_time_window
    return int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)


@dg.asset(
    key=dg.AssetKey([DEFILLAMA_MACRO.source, "tvl_history"]),
    group_name=DEFILLAMA_MACRO.source,
    description="Total TVL per UTC day from /v2/historicalChainTvl, into the defillama/macro series.",
    kinds={"python", "sqlite"},
    partitions_def=dg.DailyPartitionsDefinition(start_date=TVL_HISTORY_START, end_offset=1),
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def tvl_history(context: AssetExecutionContext, memory: MarketMemory) -> dg.MaterializeResult:
    start_ms, end_ms = _window_ms(context)
    written = backfill_tvl_days(memory.settings, start_ms, end_ms, wall_clock_ms())
    return dg.MaterializeResult(metadata={"dagster/row_count": written, "rows_written": written})


@dg.asset(
    key=dg.AssetKey([CANDLES.source, "candles_history"]),
    group_name=CANDLES.source,
    description=(
        "1-minute candles of every followed coin per UTC day from candleSnapshot, for days the "
        "streamer missed. Only the last 5,000 minutes (about 3.5 days) are served: older days "
        "fail saying they are out of reach."
    ),
    kinds={"python", "sqlite"},
    partitions_def=dg.DailyPartitionsDefinition(start_date=CANDLE_HISTORY_START, end_offset=1),
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[asset_key(CANDLES)],
)
def candles_history(context: AssetExecutionContext, memory: MarketMemory) -> dg.MaterializeResult:
    start_ms, end_ms = _window_ms(context)
    try:
        result = backfill_candle_days(memory.settings, start_ms, end_ms, wall_clock_ms())
    except OutOfReach as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if result.reachable_from_ms > start_ms:
        context.log.warning(
            f"minutes before {day_text(result.reachable_from_ms)} are out of candleSnapshot's reach and were not filled"
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows_written,
            "rows_written": result.rows_written,
            "coins": result.coins,
            "reachable_from": day_text(result.reachable_from_ms),
            "coins_with_missing_minutes": len(result.missing_by_coin),
            "missing_minutes": sum(result.missing_by_coin.values()),
            "retries": result.stats.retries,
            "throttles": result.stats.throttles,
            "budget_waits": result.stats.budget_waits,
        }
    )
