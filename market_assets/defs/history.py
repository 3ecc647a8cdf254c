"""History backfills as daily-partitioned assets, launched from the Dagster UI's backfill dialog.

A backfill of many days runs once over the whole range (``BackfillPolicy.single_run``): one
DefiLlama history request serves every day, and candle requests are paced by one weight budget.
Each run is a ledger run of the channel it fills (market_assets.ingest.history).
"""

# No ``from __future__ import annotations``: Dagster inspects the ``context`` annotation itself.
import warnings
from collections.abc import Iterator

import dagster as dg
from dagster import AssetExecutionContext

from market_assets.clock import wall_clock_ms
from market_assets.defs.automation import asset_key, source_pool
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.history import (
    SNAPSHOT_WINDOW_CANDLES,
    OutOfReach,
    backfill_candle_days,
    backfill_tvl_days,
    day_key,
    day_text,
    earliest_reachable_open_ms,
)
from market_assets.ingest.subjects import AllSubjectsFailed
from market_assets.registry import CANDLES, DEFILLAMA_MACRO

TVL_HISTORY_START = "2019-01-01"
"""DefiLlama's all-chain TVL history starts in 2018; earlier days would store nothing."""


def _window_ms(context: AssetExecutionContext) -> tuple[int, int]:
    window = context.partition_time_window
    return int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)


def candle_history_partitions(loaded_at_ms: int) -> dg.DailyPartitionsDefinition:
    """The days candleSnapshot still serves when the code location loads: from the day of its
    earliest minute (about 3.5 days back, only partly served) to today. Computed from the clock,
    no request: definitions load offline."""
    return dg.DailyPartitionsDefinition(start_date=day_key(earliest_reachable_open_ms(loaded_at_ms)), end_offset=1)


# backfill_policy is a beta parameter of @asset in Dagster 1.13; single_run is what lets one
# request (TVL) or one weight budget (candles) serve a whole backfill range.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)

    @dg.asset(
        key=dg.AssetKey([DEFILLAMA_MACRO.source, "tvl_history"]),
        group_name=DEFILLAMA_MACRO.source,
        pool=source_pool(DEFILLAMA_MACRO),
        description=(
            "Total TVL per UTC day from /v2/historicalChainTvl, into the defillama/macro series. "
            "Each run is a defillama/macro ledger run."
        ),
        kinds={"python", "sqlite"},
        partitions_def=dg.DailyPartitionsDefinition(start_date=TVL_HISTORY_START, end_offset=1),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def tvl_history(context: AssetExecutionContext, memory: MarketMemory) -> dg.MaterializeResult:
        start_ms, end_ms = _window_ms(context)
        result = backfill_tvl_days(memory.settings, start_ms, end_ms, wall_clock_ms())
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows_written,
                "rows_written": result.rows_written,
                "ledger_run_id": result.run_id,
            }
        )


def candles_history_asset(loaded_at_ms: int) -> dg.AssetsDefinition:
    """``hyperliquid/candles_history``, offering the days reachable at ``loaded_at_ms``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # backfill_policy, as for tvl_history

        @dg.asset(
            key=dg.AssetKey([CANDLES.source, "candles_history"]),
            group_name=CANDLES.source,
            pool=source_pool(CANDLES),
            description=(
                "1-minute candles of every followed coin per UTC day from candleSnapshot, for days "
                f"the streamer missed. Only the last {SNAPSHOT_WINDOW_CANDLES:,} minutes (about 3.5 "
                "days) are served, so only those days are offered, as of when this code location "
                "loaded: the first is filled from its first reachable minute on, and a day that has "
                "slipped out of reach since is skipped (no materialization), its run log saying so. "
                "Coins are stored one by one as they arrive; each run is a hyperliquid/candles "
                "ledger run."
            ),
            kinds={"python", "sqlite"},
            partitions_def=candle_history_partitions(loaded_at_ms),
            backfill_policy=dg.BackfillPolicy.single_run(),
            deps=[asset_key(CANDLES)],
            output_required=False,
        )
        def candles_history(context: AssetExecutionContext, memory: MarketMemory) -> Iterator[dg.MaterializeResult]:
            start_ms, end_ms = _window_ms(context)
            try:
                result = backfill_candle_days(
                    memory.settings, start_ms, end_ms, wall_clock_ms(), progress=context.log.info
                )
            except OutOfReach as exc:
                context.log.warning(f"skipped, nothing materialized: {exc}")
                return
            except AllSubjectsFailed as exc:
                raise dg.Failure(description=str(exc)) from exc
            for coin, error in result.subject_errors.items():
                context.log.warning(f"{coin} not filled: {error}")
            yield dg.MaterializeResult(
                metadata={
                    "dagster/row_count": result.rows_written,
                    "rows_written": result.rows_written,
                    "ledger_run_id": result.run_id,
                    "coins": result.coins,
                    "coins_failed": len(result.subject_errors),
                    "universe_read_from_source": result.universe_read_from_source,
                    "reachable_from": day_text(result.reachable_from_ms),
                    "coins_with_missing_minutes": len(result.missing_by_coin),
                    "missing_minutes": sum(result.missing_by_coin.values()),
                    "retries": result.stats.retries,
                    "throttles": result.stats.throttles,
                    "budget_waits": result.stats.budget_waits,
                }
            )

    return candles_history


candles_history = candles_history_asset(wall_clock_ms())
