"""Run a scheduled channel now when the ledger says it is missing, stale, or failed and due a retry.

Cron alone leaves a fresh deploy (or a machine back from sleep) without data for up to a whole
cadence: an hourly channel would stay ``missing`` for an hour, and one whose source refused a
single run would stay ``failed`` for as long. This sensor reads the same health the API serves
and requests a run of every scheduled channel that is missing or stale, and of every failed one
whose backoff has passed (``market_assets.backoff``: 1, 2, 4 ... minutes over its consecutive
failures, capped at its cadence or 30 minutes), unless its job already has a run in flight.

It only reads the memory, through a read-only connection: no memory yet means every channel is
missing.
"""

from __future__ import annotations

import dagster as dg

from market_assets.backoff import backoff_sec, retry_due_at_ms, streak_limit
from market_assets.clock import Clock, wall_clock_ms
from market_assets.defs.automation import IN_FLIGHT, job_name
from market_assets.defs.resources import MarketMemory
from market_assets.health import ChannelHealth, Status, evaluate_health, read_health
from market_assets.memory import MarketMemoryError, MemoryMissingError, open_memory
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.failures import failure_streak
from market_assets.registry import Channel

CATCH_UP_STATUSES = frozenset({Status.MISSING, Status.STALE})
CATCH_UP_INTERVAL_SEC = 30


def catch_up_sensor(
    scheduled: dict[Channel, dg.UnresolvedAssetJobDefinition], *, clock: Clock = wall_clock_ms
) -> dg.SensorDefinition:
    @dg.sensor(
        name="catch_up_missing_stale_or_failed",
        minimum_interval_seconds=CATCH_UP_INTERVAL_SEC,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=list(scheduled.values()),
        description=(
            "Requests a run of every scheduled channel the ledger reports missing or stale, and "
            "of every failed one once its backoff (1, 2, 4 ... minutes, capped) has passed, "
            "unless its job is already in flight."
        ),
    )
    def catch_up(context: dg.SensorEvaluationContext, memory: MarketMemory) -> dg.SensorResult | dg.SkipReason:
        now_ms = clock()
        try:
            triggers = _triggers(memory, tuple(scheduled), now_ms)
        except MarketMemoryError as exc:
            return dg.SkipReason(f"cannot read the market memory: {exc}")
        requests = []
        for channel, trigger in triggers.items():
            name = job_name(channel)
            if context.instance.get_run_records(dg.RunsFilter(job_name=name, statuses=IN_FLIGHT), limit=1):
                continue
            requests.append(dg.RunRequest(job_name=name, tags={"market/trigger": f"catch-up: {trigger}"}))
        if not requests:
            return dg.SkipReason("every scheduled channel is ok, running, or failed and backing off")
        return dg.SensorResult(run_requests=requests)

    return catch_up


def _triggers(memory: MarketMemory, channels: tuple[Channel, ...], now_ms: int) -> dict[Channel, str]:
    """Why each channel is due a run now (``missing``, ``stale``, ``failed, retry after 240s
    backoff``); channels not due are absent."""
    try:
        with open_memory(memory.path, readonly=True) as conn:
            report = read_health(conn, now_ms, channels)
            return {health.channel: why for health in report.channels if (why := _why(conn, health, now_ms))}
    except MemoryMissingError:  # no memory yet (SQLite: no file; PostgreSQL: no market tables)
        return {c.channel: c.run_status.value for c in evaluate_health(channels, {}, now_ms).channels}


def _why(conn: MemoryConnection, health: ChannelHealth, now_ms: int) -> str | None:
    """Judged by the runs alone: a failing check is not a failed run to retry, and a stale
    channel whose check fails is still due its run."""
    if health.run_status in CATCH_UP_STATUSES:
        return health.run_status.value
    if health.run_status is not Status.FAILED:
        return None
    channel = health.channel
    streak = failure_streak(conn, channel.source, channel.name, streak_limit(channel))
    due = retry_due_at_ms(channel, streak)
    if due is None or now_ms < due:
        return None
    return f"failed, retry after {backoff_sec(channel, streak.failures)}s backoff"

