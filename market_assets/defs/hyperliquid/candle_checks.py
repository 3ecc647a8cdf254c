"""The asset checks of ``hyperliquid/candles``, evaluated by a sensor on the candles cadence.

The streamer writes candles outside Dagster, so no run follows its windows with their checks.
This sensor evaluates the candle checks in the sensor process once per cadence (a minute) and
reports them as runless check evaluations, which the daemon stores as it stores the windows
sensor's runless materializations. Both being runless, Dagster's UI shows the latest evaluation
as the one of the asset's latest materialization (it relates them by run, here the same empty
one), so the checks do not blink out each time a new window is reported. The same checks stay
executable as a run from the UI (``Execute`` on the asset's checks).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from market_assets.clock import Clock, wall_clock_ms
from market_assets.defs.automation import asset_key
from market_assets.defs.checks import outcome_metadata, severity
from market_assets.defs.resources import MarketMemory
from market_assets.memory import MarketMemoryError
from market_assets.quality.catalog import evaluate_all, record
from market_assets.quality.outcome import QualityCheck
from market_assets.registry import CANDLES

SENSOR_NAME = "hyperliquid_candles_checks"


def candle_checks_sensor(checks: Sequence[QualityCheck], *, clock: Clock = wall_clock_ms) -> dg.SensorDefinition:
    """The sensor evaluating ``checks`` (the catalog's candle checks) every candles cadence."""
    if any(check.channel is not CANDLES for check in checks):
        raise ValueError("the candles checks sensor evaluates checks of hyperliquid/candles only")

    @dg.sensor(
        name=SENSOR_NAME,
        minimum_interval_seconds=CANDLES.expected_cadence_sec,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Evaluates the asset checks of hyperliquid/candles every minute (the streamer's cadence) "
            "and reports them as runless check evaluations; each outcome is also kept in the memory's "
            "check_results. Its ticks show as skipped: Dagster counts a result without run requests as empty."
        ),
    )
    def evaluate(memory: MarketMemory) -> dg.SensorResult | dg.SkipReason:
        now_ms = clock()
        try:  # read-only first: the sensor never creates a memory the streamer has not made yet
            with memory.connect(readonly=True) as conn:
                outcomes = evaluate_all(conn, checks, now_ms)
        except MarketMemoryError as exc:
            return dg.SkipReason(str(exc))
        with memory.connect() as conn:
            record(conn, outcomes, now_ms)
        return dg.SensorResult(
            asset_events=[
                dg.AssetCheckEvaluation(
                    asset_key=asset_key(CANDLES),
                    check_name=check.name,
                    passed=outcome.passed,
                    metadata=outcome_metadata(outcome),
                    severity=severity(check),
                    description=outcome.summary(),
                    blocking=check.blocking,
                )
                for check, outcome in outcomes.items()
            ]
        )

    return evaluate
