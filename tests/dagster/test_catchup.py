"""A missing or stale scheduled channel is run now, not at its next cron tick; a failed one once
its backoff has passed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from market_assets.backoff import backoff_sec, retry_due_at_ms, retry_is_due
from market_assets.clock import wall_clock_ms
from market_assets.definitions import SCHEDULED, defs, jobs
from market_assets.defs.automation import job_name
from market_assets.defs.catchup import catch_up_sensor
from market_assets.defs.resources import MarketMemory
from market_assets.health import read_health
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.memory.checks import CheckResult, record_results
from market_assets.memory.failures import FailureStreak, failure_streak
from market_assets.registry import (
    DEFILLAMA_MACRO,
    FEATURES,
    FUNDING,
    MAINTENANCE,
    POLYMARKET_DISCOVERY,
    POLYMARKET_SUMMARY,
    RETRY_BACKOFF_BASE,
    RETRY_BACKOFF_CAP,
)

MINUTE_MS = 60_000


def tick(db: Path, instance: dg.DagsterInstance) -> dg.SensorExecutionData:
    sensor = defs.get_repository_def().get_sensor_def("catch_up_missing_stale_or_failed")
    context = dg.build_sensor_context(instance=instance, resources={"memory": MarketMemory(db_path=str(db))})
    return sensor.evaluate_tick(context)


def requested(result: dg.SensorExecutionData) -> list[str]:
    return sorted(request.job_name for request in result.run_requests)


def every_channel_ok(db: Path) -> None:
    """A run of every channel that started before any failure a test adds and finished just now."""
    now = wall_clock_ms()
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for channel in SCHEDULED:
            ledger.start(channel, started_at_ms=now - 120 * MINUTE_MS).succeed(finished_at_ms=now)


def fail(db: Path, channel: object, *, times: int, last_finished_ago_ms: int) -> None:
    """``times`` consecutive failed runs of ``channel``, the newest finished that long ago."""
    now = wall_clock_ms()
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for i in range(times, 0, -1):
            finished = now - last_finished_ago_ms - (i - 1) * MINUTE_MS
            ledger.start(channel, started_at_ms=finished - 1_000).fail(  # type: ignore[arg-type]
                "hyperliquid fundingHistory: HTTP 503", finished_at_ms=finished
            )


def test_a_fresh_memory_runs_every_scheduled_channel_and_is_not_created(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    result = tick(tmp_path / "m.db", instance)
    assert requested(result) == sorted(job_name(c) for c in SCHEDULED)
    assert {r.tags["market/trigger"] for r in result.run_requests} == {"catch-up: missing"}
    assert list(tmp_path.iterdir()) == []  # the sensor only reads


def test_ok_and_running_channels_and_a_failure_inside_its_backoff_are_left_alone(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    db = tmp_path / "m.db"
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for channel in SCHEDULED:
            if channel not in (DEFILLAMA_MACRO, POLYMARKET_SUMMARY):
                ledger.start(channel).succeed()
        ledger.start(FEATURES)  # running
        ledger.start(MAINTENANCE).fail("disk full")  # failed a moment ago: inside its first minute
        stale = ledger.start(POLYMARKET_SUMMARY, started_at_ms=0)
        stale.succeed(finished_at_ms=1)
    instance.add_run(dg.DagsterRun(job_name=job_name(FUNDING), run_id="in-flight", status=dg.DagsterRunStatus.STARTED))
    result = tick(db, instance)
    assert requested(result) == sorted([job_name(DEFILLAMA_MACRO), job_name(POLYMARKET_SUMMARY)])


def test_a_failed_channel_is_rerun_once_its_backoff_has_passed(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """Three consecutive failures: 1 → 2 → 4 minutes. Three minutes after the last one it waits;
    five minutes after, it is run, tagged with why."""
    waiting, due = tmp_path / "waiting.db", tmp_path / "due.db"
    for db, ago_ms in ((waiting, 3 * MINUTE_MS), (due, 5 * MINUTE_MS)):
        every_channel_ok(db)
        fail(db, POLYMARKET_DISCOVERY, times=3, last_finished_ago_ms=ago_ms)

    assert tick(waiting, instance).run_requests == []
    result = tick(due, instance)
    assert requested(result) == [job_name(POLYMARKET_DISCOVERY)]
    assert result.run_requests[0].tags["market/trigger"] == "catch-up: failed, retry after 240s backoff"


def test_the_sensor_retries_exactly_when_the_backoff_ends_on_its_clock(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """The same sensor on an injected clock: two failures, the last finished at ``t``: nothing at
    ``t + 2 min - 1 ms``, a run at ``t + 2 min``."""
    db = tmp_path / "m.db"
    every_channel_ok(db)
    fail(db, FUNDING, times=2, last_finished_ago_ms=0)
    with open_memory(db, readonly=True) as conn:
        streak = failure_streak(conn, FUNDING.source, FUNDING.name, 10)
    assert streak.failures == 2 and streak.last_failed_at_ms is not None
    due = streak.last_failed_at_ms + 2 * MINUTE_MS

    def evaluate(now_ms: int) -> list[str]:
        sensor = catch_up_sensor(jobs, clock=lambda: now_ms)
        context = dg.build_sensor_context(instance=instance, resources={"memory": MarketMemory(db_path=str(db))})
        return requested(sensor.evaluate_tick(context))

    assert evaluate(due - 1) == []
    assert evaluate(due) == [job_name(FUNDING)]


def test_a_success_ends_the_streak(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    """Failures before a success do not lengthen the backoff of a new failure: one failure two
    minutes ago is due (1 minute), though five more came before the success."""
    db = tmp_path / "m.db"
    every_channel_ok(db)
    fail(db, DEFILLAMA_MACRO, times=5, last_finished_ago_ms=60 * MINUTE_MS)
    with open_memory(db) as conn:
        Ledger(conn).start(DEFILLAMA_MACRO, started_at_ms=wall_clock_ms() - 50 * MINUTE_MS).succeed()
    fail(db, DEFILLAMA_MACRO, times=1, last_finished_ago_ms=2 * MINUTE_MS)
    with open_memory(db, readonly=True) as conn:
        assert failure_streak(conn, "defillama", "macro", 10).failures == 1
    assert requested(tick(db, instance)) == [job_name(DEFILLAMA_MACRO)]


def test_a_failed_channel_already_in_flight_is_not_requested_twice(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    db = tmp_path / "m.db"
    every_channel_ok(db)
    fail(db, FUNDING, times=1, last_finished_ago_ms=10 * MINUTE_MS)
    instance.add_run(dg.DagsterRun(job_name=job_name(FUNDING), run_id="retrying", status=dg.DagsterRunStatus.STARTING))
    assert tick(db, instance).run_requests == []


def test_nothing_to_catch_up_is_a_skip(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    db = tmp_path / "m.db"
    every_channel_ok(db)
    result = tick(db, instance)
    assert result.run_requests == [] and "every scheduled channel is ok" in result.skip_message


@pytest.mark.parametrize(
    ("channel", "waits_min"),
    # hourly: doubles up to the 30-minute cap; every 15 minutes: capped at its cadence.
    [(DEFILLAMA_MACRO, [1, 2, 4, 8, 16, 30, 30, 30]), (FUNDING, [1, 2, 4, 8, 15, 15])],
)
def test_the_backoff_doubles_per_consecutive_failure_up_to_its_cap(channel: object, waits_min: list[int]) -> None:
    assert RETRY_BACKOFF_BASE.total_seconds() == 60 and RETRY_BACKOFF_CAP.total_seconds() == 1800
    assert [backoff_sec(channel, n) // 60 for n in range(1, len(waits_min) + 1)] == waits_min  # type: ignore[arg-type]
    assert backoff_sec(channel, 10_000) // 60 == waits_min[-1]  # type: ignore[arg-type]


def test_a_retry_is_due_exactly_when_the_backoff_has_passed() -> None:
    failed_at = 1_795_000_000_000
    streak = FailureStreak(failures=2, last_failed_at_ms=failed_at)
    assert retry_due_at_ms(FUNDING, streak) == failed_at + 2 * MINUTE_MS
    assert not retry_is_due(FUNDING, streak, failed_at + 2 * MINUTE_MS - 1)
    assert retry_is_due(FUNDING, streak, failed_at + 2 * MINUTE_MS)
    assert retry_due_at_ms(FUNDING, FailureStreak(0, None)) is None


def test_a_failing_blocking_check_neither_triggers_a_retry_nor_hides_a_stale_channel(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """Health says ``failed`` for both channels below (SPEC §12); the sensor judges by their runs:
    funding's run is fresh, so it is left alone; the summary's is stale, so it is run."""
    db = tmp_path / "m.db"
    now = wall_clock_ms()
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for channel in SCHEDULED:
            if channel is not POLYMARKET_SUMMARY:
                ledger.start(channel).succeed()
        ledger.start(POLYMARKET_SUMMARY, started_at_ms=0).succeed(finished_at_ms=1)
        record_results(conn, [
            CheckResult(c.source, c.name, "seeded", False, True, "ERROR", now, 10, 1, "failed: 1 of 10")
            for c in (FUNDING, POLYMARKET_SUMMARY)
        ])
        health = {h.channel: h.status.value for h in read_health(conn, now).channels}
    assert health[FUNDING] == health[POLYMARKET_SUMMARY] == "failed"
    result = tick(db, instance)
    assert requested(result) == [job_name(POLYMARKET_SUMMARY)]
    assert {r.tags["market/trigger"] for r in result.run_requests} == {"catch-up: stale"}
