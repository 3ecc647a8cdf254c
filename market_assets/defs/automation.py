"""Jobs, schedules and freshness policies, all derived from the channel registry.

One job per scheduled channel, one schedule per job at the channel's cadence (its cron derived by
the registry), running by default and skipping a tick while the job's previous run is still in
flight: tag concurrency alone would queue runs and let a backlog build up (dagster.md §0.5).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from market_assets.registry import REGISTRY, Channel

GROUP_TAG = "market/group"
"""Run tag of the scheduled jobs, which ``dagster_home/dagster.yaml`` limits to one run per value."""

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def asset_key(channel: Channel) -> dg.AssetKey:
    return dg.AssetKey([channel.source, channel.name])


def channel_of(key: dg.AssetKey) -> Channel | None:
    """The registry channel an asset key stands for, if any (backfill assets have none)."""
    return next((c for c in REGISTRY if asset_key(c) == key), None)


def source_pool(channel: Channel) -> str:
    """The Dagster concurrency pool of every asset that writes ``channel``: its source.

    A pool belongs to the asset's definition, so every run materializing the asset claims it
    however the run was launched (schedule, sensor, the UI's Materialize or backfill dialog,
    ``dagster asset materialize``); a run tag exists only on the runs of the job that sets it.
    With ``concurrency.pools`` at op granularity and a limit of 1 in ``dagster.yaml``, the run
    queue holds a run while its source's slot is taken, and a run that bypasses the queue (the
    CLI runs in its own process) waits for the slot at its step: one run per source at a time.
    """
    return channel.source


def job_name(channel: Channel) -> str:
    return f"{channel.source}_{channel.name}_job"


def channel_job(channel: Channel) -> dg.UnresolvedAssetJobDefinition:
    """The channel's asset and, after it in the same run, its asset checks (``defs/checks.py``):
    ``AssetSelection.assets`` selects the checks that target the selected assets.

    Both steps run in the run's own process: the default executor starts a process per step,
    ~5 s of CPU each on this machine against ~0.1 s of checks. A run worker that dies is still
    caught by run monitoring and retried (``dagster_home/dagster.yaml``), and each step still
    claims its source's pool."""
    return dg.define_asset_job(
        job_name(channel),
        selection=dg.AssetSelection.assets(asset_key(channel)),
        tags={GROUP_TAG: channel.source},
        description=f"Materialize {channel.key}: {channel.description}",
        executor_def=dg.in_process_executor,
    )


def channel_schedule(channel: Channel, job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    def skip_while_in_flight(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        busy = context.instance.get_run_records(
            dg.RunsFilter(job_name=job.name, statuses=IN_FLIGHT), limit=1
        )
        if busy:
            run = busy[0].dagster_run
            return dg.SkipReason(f"run {run.run_id} of {job.name} is still {run.status.value}")
        return dg.RunRequest()

    return dg.ScheduleDefinition(
        name=f"{channel.source}_{channel.name}_schedule",
        cron_schedule=channel.cron_schedule,
        execution_timezone="UTC",
        job=job,
        execution_fn=skip_while_in_flight,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every {channel.expected_cadence_sec}s (registry cadence of {channel.key}).",
    )


def freshness_policy(channel: Channel) -> dg.FreshnessPolicy:
    """Fail window = the channel's ``staleAfterSec`` (SPEC §2); warn window below it."""
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(seconds=channel.stale_after_sec),
        warn_window=timedelta(seconds=channel.freshness_warn_sec),
    )


def with_registry_freshness(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Applied once over every spec in the code location, so no asset repeats a policy."""
    channel = channel_of(spec.key)
    if channel is None:
        return spec
    return dg.apply_freshness_policy(spec, freshness_policy(channel), overwrite_existing=True)
