"""Run a scheduled channel now when the ledger says it is missing or stale.

Cron alone leaves a fresh deploy (or a machine back from sleep) without data for up to a whole
cadence: an hourly channel would stay ``missing`` for an hour. This sensor reads the same health
the API serves and requests a run of every scheduled channel that is missing or stale, unless
its job already has a run in flight. A ``failed`` channel is left to its schedule: retrying it
every tick would hammer a source that is refusing us.
"""

from __future__ import annotations

import dagster as dg

from market_assets.clock import wall_clock_ms
from market_assets.defs.automation import IN_FLIGHT, job_name
from market_assets.defs.resources import MarketMemory
from market_assets.health import Status, read_health
from market_assets.registry import Channel

CATCH_UP_STATUSES = frozenset({Status.MISSING, Status.STALE})
CATCH_UP_INTERVAL_SEC = 30


def catch_up_sensor(scheduled: dict[Channel, dg.UnresolvedAssetJobDefinition]) -> dg.SensorDefinition:
    @dg.sensor(
        name="catch_up_missing_or_stale",
        minimum_interval_seconds=CATCH_UP_INTERVAL_SEC,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=list(scheduled.values()),
        description=(
            "Requests a run of every scheduled channel the ledger reports missing or stale "
            "(not failed), unless its job is already in flight."
        ),
    )
    def catch_up(context: dg.SensorEvaluationContext, memory: MarketMemory) -> dg.SensorResult | dg.SkipReason:
        with memory.connect() as conn:
            report = read_health(conn, wall_clock_ms(), tuple(scheduled))
        requests = []
        for health in report.channels:
            if health.status not in CATCH_UP_STATUSES:
                continue
            name = job_name(health.channel)
            if context.instance.get_run_records(dg.RunsFilter(job_name=name, statuses=IN_FLIGHT), limit=1):
                continue
            requests.append(dg.RunRequest(job_name=name, tags={"market/trigger": f"catch-up: {health.status.value}"}))
        if not requests:
            return dg.SkipReason("every scheduled channel is ok, running or failed")
        return dg.SensorResult(run_requests=requests)

    return catch_up
