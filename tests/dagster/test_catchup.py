"""A missing or stale scheduled channel is run now, not at its next cron tick."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from market_assets.defs.automation import job_name
from market_assets.defs.resources import MarketMemory
from market_assets.definitions import SCHEDULED, defs
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.registry import DEFILLAMA_MACRO, FEATURES, FUNDING, MAINTENANCE, POLYMARKET_SUMMARY


def tick(db: Path, instance: dg.DagsterInstance) -> dg.SensorExecutionData:
    sensor = defs.get_repository_def().get_sensor_def("catch_up_missing_or_stale")
    context = dg.build_sensor_context(instance=instance, resources={"memory": MarketMemory(db_path=str(db))})
    return sensor.evaluate_tick(context)


def requested(result: dg.SensorExecutionData) -> list[str]:
    return sorted(request.job_name for request in result.run_requests)


def test_a_fresh_memory_runs_every_scheduled_channel(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    result = tick(tmp_path / "m.db", instance)
    assert requested(result) == sorted(job_name(c) for c in SCHEDULED)
    assert {r.tags["market/trigger"] for r in result.run_requests} == {"catch-up: missing"}


def test_ok_running_and_failed_channels_are_left_to_their_schedule(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    db = tmp_path / "m.db"
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for channel in SCHEDULED:
            if channel not in (DEFILLAMA_MACRO, POLYMARKET_SUMMARY):
                ledger.start(channel).succeed()
        ledger.start(FEATURES)  # running
        ledger.start(MAINTENANCE).fail("disk full")
        stale = ledger.start(POLYMARKET_SUMMARY, started_at_ms=0)
        stale.succeed(finished_at_ms=1)
    instance.add_run(dg.DagsterRun(job_name=job_name(FUNDING), run_id="in-flight", status=dg.DagsterRunStatus.STARTED))
    result = tick(db, instance)
    assert requested(result) == sorted([job_name(DEFILLAMA_MACRO), job_name(POLYMARKET_SUMMARY)])


def test_nothing_to_catch_up_is_a_skip(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    db = tmp_path / "m.db"
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for channel in SCHEDULED:
            ledger.start(channel).succeed()
    result = tick(db, instance)
    assert result.run_requests == [] and "every scheduled channel is ok" in result.skip_message
