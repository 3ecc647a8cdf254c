"""``hyperliquid/candles``: written by the streamer, seen by Dagster as an external asset.

The streamer stays Dagster-free and records one ledger run per minute window; this sensor turns
each new succeeded window into a runless materialization, so the registry's freshness policy
covers candles like every scheduled asset.
"""

from __future__ import annotations

import dagster as dg

from market_assets.clock import wall_clock_ms
from market_assets.defs.automation import asset_key
from market_assets.defs.resources import MarketMemory
from market_assets.health import Status, evaluate_channel
from market_assets.memory import MarketMemoryError, open_memory
from market_assets.memory.runs import BACKFILL_KEY, RunRecord, RunStatus, runs_after
from market_assets.registry import CANDLES

WINDOWS_PER_TICK = 500
"""Bounds one tick's work after a long daemon outage; the next tick carries on from the cursor."""

candles = dg.AssetSpec(
    key=asset_key(CANDLES),
    group_name=CANDLES.source,
    description=CANDLES.description + " Written by `market stream`, not by Dagster runs.",
    kinds={"sqlite", "websocket"},
    metadata={"table": CANDLES.data.table, "written_by": CANDLES.producer.value},
)


def windows_to_report(windows: list[RunRecord], now_ms: int) -> tuple[list[RunRecord], int | None]:
    """The succeeded windows to report, and the run id the cursor may advance to.

    The cursor never passes a window still running (it may yet succeed), unless that window has
    outlived the stale threshold: its process was killed and it will never finish. A history
    backfill's run of the channel is not a window: it is passed over whatever its state, so a
    long backfill never holds the streamer's windows back.
    """
    reported: list[RunRecord] = []
    cursor: int | None = None
    for window in windows:
        if BACKFILL_KEY in window.metadata:
            cursor = window.run_id
            continue
        if window.status is RunStatus.RUNNING and evaluate_channel(CANDLES, window, now_ms).status is not Status.STALE:
            break
        if window.status is RunStatus.SUCCEEDED:
            reported.append(window)
        cursor = window.run_id
    return reported, cursor


@dg.sensor(
    name="hyperliquid_candles_windows",
    minimum_interval_seconds=CANDLES.expected_cadence_sec // 2,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reports each streamer minute window recorded in the ledger as a runless materialization "
        "of hyperliquid/candles. Its ticks show as skipped even when it reports: Dagster counts a "
        "result without run requests as empty."
    ),
)
def candles_windows_sensor(context: dg.SensorEvaluationContext, memory: MarketMemory) -> dg.SensorResult | dg.SkipReason:
    after = int(context.cursor or 0)
    try:
        with open_memory(memory.path, readonly=True) as conn:
            windows = runs_after(conn, CANDLES.source, CANDLES.name, after, WINDOWS_PER_TICK)
    except MarketMemoryError as exc:  # none yet (the streamer has not started) or unusable: say which
        return dg.SkipReason(str(exc))
    reported, cursor = windows_to_report(windows, wall_clock_ms())
    if cursor is None:
        return dg.SkipReason(f"no finished candle window after ledger run {after}")
    return dg.SensorResult(
        cursor=str(cursor),
        asset_events=[
            dg.AssetMaterialization(
                asset_key=candles.key,
                metadata={
                    "ledger_run_id": window.run_id,
                    "window_start_ms": window.started_at_ms,
                    "rows_written": window.rows_written,
                    "dagster/row_count": window.rows_written,
                },
            )
            for window in reported
        ],
    )
