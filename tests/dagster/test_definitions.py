"""The code location loads, and every key, group, pool, cron, freshness window and asset check
follows the registry and the quality catalog.

After a deliberate change, regenerate the snapshot with
``python -c "import json, tests.dagster.test_definitions as t; print(json.dumps(t.snapshot(), indent=2))" > tests/dagster/definitions_snapshot.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from market_assets.definitions import SCHEDULED, defs
from market_assets.defs.automation import IN_FLIGHT, job_name
from market_assets.quality.catalog import checks_of
from market_assets.registry import CANDLES, REGISTRY

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def check_label(name: str, severity: str, blocking: bool) -> str:
    return f"{name} ({severity}{', blocking' if blocking else ''})"


def snapshot() -> dict[str, dict[str, object]]:
    repository = defs.get_repository_def()
    graph = repository.asset_graph
    crons = {
        schedule.job_name: schedule.cron_schedule for schedule in repository.schedule_defs
    }
    targets = {
        key.to_user_string(): job.name
        for job in repository.get_all_jobs()
        if not job.name.startswith("__")
        for key in job.asset_layer.selected_asset_keys
    }
    rows: dict[str, dict[str, object]] = {}
    for key in sorted(repository.asset_graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = repository.asset_graph.get(key)
        policy = node.freshness_policy
        name = key.to_user_string()
        rows[name] = {
            "group": node.group_name,
            "pool": repository.assets_defs_by_key[key].op.pool if node.is_executable else None,
            "cron": crons.get(targets.get(name, "")),
            "fail_window_sec": None if policy is None else int(policy.fail_window.to_timedelta().total_seconds()),
            "warn_window_sec": None if policy is None else int(policy.warn_window.to_timedelta().total_seconds()),
            "checks": sorted(
                check_label(check.key.name, check.metadata["severity"], check.blocking)
                for check in (graph.get(check_key) for check_key in graph.asset_check_keys)
                if check.key.asset_key == key
            ),
        }
    return rows


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_every_channel_is_an_asset_with_the_registry_cron_and_freshness() -> None:
    actual = snapshot()
    for channel in REGISTRY:
        assert actual[channel.key] == {
            "group": channel.source,
            "pool": None if channel is CANDLES else channel.source,
            "cron": None if channel is CANDLES else channel.cron_schedule,
            "fail_window_sec": channel.stale_after_sec,
            "warn_window_sec": channel.freshness_warn_sec,
            "checks": sorted(check_label(c.name, c.severity.value, c.blocking) for c in checks_of(channel)),
        }, channel.key


def test_definitions_match_the_committed_snapshot() -> None:
    """A change to a key, group, pool, cron, window or check must be deliberate: update the snapshot with it."""
    assert snapshot() == json.loads(SNAPSHOT.read_text())


def test_candles_are_streamed_not_scheduled() -> None:
    assert CANDLES not in SCHEDULED
    assert set(SCHEDULED) == set(REGISTRY) - {CANDLES}


def run_in_flight(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus) -> str:
    run = dg.DagsterRun(job_name=job, run_id=f"run-{status.value.lower()}", status=status)
    instance.add_run(run)
    return run.run_id


def test_a_schedule_skips_while_its_previous_run_is_in_flight() -> None:
    repository = defs.get_repository_def()
    for channel in SCHEDULED:
        schedule = repository.get_schedule_def(f"{channel.source}_{channel.name}_schedule")
        assert schedule.default_status is dg.DefaultScheduleStatus.RUNNING
        with dg.instance_for_test() as instance:
            free = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
            assert len(free.run_requests) == 1 and free.skip_message is None
            run_id = run_in_flight(instance, job_name(channel), IN_FLIGHT[-1])
            busy = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
            assert busy.run_requests == []
            assert busy.skip_message == f"run {run_id} of {job_name(channel)} is still STARTED"


def test_a_finished_run_does_not_hold_the_schedule() -> None:
    repository = defs.get_repository_def()
    channel = next(iter(SCHEDULED))
    schedule = repository.get_schedule_def(f"{channel.source}_{channel.name}_schedule")
    with dg.instance_for_test() as instance:
        run_in_flight(instance, job_name(channel), dg.DagsterRunStatus.SUCCESS)
        run_in_flight(instance, "another_job", dg.DagsterRunStatus.STARTED)
        tick = schedule.evaluate_tick(dg.build_schedule_context(instance=instance))
        assert len(tick.run_requests) == 1


LOAD_AND_PROBE = """
import json, warnings
import dagster as dg
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import market_assets.definitions
    market_assets.definitions.defs.get_repository_def()
    warnings.warn("a beta API used outside our deliberate calls", dg.BetaWarning)
    warnings.warn("a preview API used outside our deliberate calls", dg.PreviewWarning)
print(json.dumps([[w.category.__name__, str(w.message)] for w in caught]))
"""


def test_loading_the_definitions_silences_only_our_deliberate_beta_and_preview_calls() -> None:
    """A fresh interpreter, as each Dagster process (webserver, daemon, run worker) is: loading
    prints no BetaWarning or PreviewWarning, and the silencing does not leak: the same classes
    raised afterwards still surface."""
    loaded = subprocess.run(
        [sys.executable, "-W", "always", "-c", LOAD_AND_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    dagster_warnings = [
        (category, message)
        for category, message in json.loads(loaded.stdout.splitlines()[-1])
        if category in {"BetaWarning", "PreviewWarning"}
    ]
    assert dagster_warnings == [
        ("BetaWarning", "a beta API used outside our deliberate calls"),
        ("PreviewWarning", "a preview API used outside our deliberate calls"),
    ]
