"""The Dagster runs of ``market up``'s stack: each failed run as one console line, and the end of
in-flight runs when the stack stops.

Both read Dagster's own instance (its run records and event log), not the processes' text: the
daemon's output holds a run's full traceback, 80-160 lines, which now goes to its log file only.

Stopping: a run worker that receives a signal with no termination requested ends FAILURE
("Execution was interrupted unexpectedly", dagster/_core/execution/api.py), counts as a failed
run and fires the run-failure sensor. So the supervisor stops the daemon's own process first
(nothing new is launched; its code server stops accepting runs and waits for the ones in flight),
lets the runs finish within a grace period, and then ends the rest through Dagster's termination,
``run_launcher.terminate`` (the UI's "Terminate"): the run is marked CANCELING, its worker is
interrupted and records CANCELED. A run that ignores even that is marked CANCELED as Dagster's
"force termination" does, and its processes are killed with the daemon's tree.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from market_assets.redact import redact
from market_assets.supervisor import Background, Drain

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun
    from dagster._utils.error import SerializableErrorInfo

STOP_GRACE_SEC = 30.0
"""How long in-flight runs get to finish after Ctrl-C before they are canceled (``--stop-grace``)."""
CANCEL_WAIT_SEC = 20.0
"""How long a run gets to honour its termination before it is marked CANCELED by force."""
FAILURE_POLL_SEC = 2.0
CAUSE_MAX_CHARS = 300


def short_id(run_id: str) -> str:
    return run_id[:8]


def run_label(run: DagsterRun, failed_steps: Sequence[str] = ()) -> str:
    """The assets a run materializes (``hyperliquid/funding``); for a whole asset job, which
    selects none, the assets of its failed steps (a step key is the asset key joined by ``__``);
    else the job's name."""
    keys = sorted("/".join(key.path) for key in run.asset_selection or ()) or [
        step.replace("__", "/") for step in failed_steps
    ]
    return ", ".join(keys) if keys else run.job_name


def cause_line(error: SerializableErrorInfo) -> str:
    """The innermost cause's ``Type: message`` line, as a traceback's last line shows it."""
    while error.cause is not None:
        error = error.cause
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    text = lines[0] if lines else error.cls_name or "unknown error"
    return text if len(text) <= CAUSE_MAX_CHARS else text[: CAUSE_MAX_CHARS - 1] + "…"


def failure_cause(instance: DagsterInstance, run_id: str) -> tuple[list[str], str]:
    """The failed steps of a run, and one line for why: the first failed step's cause, else the
    run's own error."""
    from dagster import DagsterEventType

    entries = instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE})
    steps = [event.step_key for entry in entries if (event := entry.dagster_event) and event.is_step_failure]
    for entry in entries:
        event = entry.dagster_event
        if event is not None and event.is_step_failure and event.step_failure_data.error is not None:
            return [step for step in steps if step], cause_line(event.step_failure_data.error)
    for entry in entries:
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event is not None else None
        if error is not None:
            return [], cause_line(error)
        if entry.message:
            return [], entry.message.splitlines()[0]
    return [], "no failure event recorded"


def failure_line(instance: DagsterInstance, run: DagsterRun, *, log_file: Path, ui_url: str) -> str:
    steps, cause = failure_cause(instance, run.run_id)
    attempt = run.tags.get("dagster/retry_number")
    return (
        f"run {short_id(run.run_id)} of {run_label(run, steps)}"
        + (f" (retry {attempt})" if attempt else "")
        + f" failed: {redact(cause)}"
        + f" (full log: {log_file}; {ui_url}/runs/{run.run_id})"
    )


def new_failures(instance: DagsterInstance, since: datetime, seen: set[str]) -> Sequence[DagsterRun]:
    """Runs that ended FAILURE after ``since`` and are not in ``seen`` (which this adds them to)."""
    from dagster import DagsterRunStatus, RunsFilter

    runs = [
        run
        for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE], updated_after=since))
        if run.run_id not in seen
    ]
    seen.update(run.run_id for run in runs)
    return sorted(runs, key=lambda run: run.run_id)


def failure_reporter(
    dagster_home: Path, *, log_file: Path, ui_url: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Background:
    """A supervisor background task printing one line per run that fails from now on."""

    async def report(say: Callable[[str, str], None]) -> None:
        from dagster import DagsterInstance

        since = now() - timedelta(seconds=1)
        seen: set[str] = set()
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            unreadable = ""
            while True:
                try:
                    for run in await asyncio.to_thread(new_failures, instance, since, seen):
                        line = await asyncio.to_thread(failure_line, instance, run, log_file=log_file, ui_url=ui_url)
                        say("dagster", line)
                    unreadable = ""
                except Exception as error:  # noqa: BLE001 - a busy or broken instance is said once, and read again
                    if str(error) != unreadable:
                        say("dagster", f"could not read the failed runs ({type(error).__name__}: {error}); trying again")
                    unreadable = str(error)
                await asyncio.sleep(FAILURE_POLL_SEC)

    return report


def in_flight(instance: DagsterInstance, since: datetime) -> list[DagsterRun]:
    """Runs starting, started or canceling that changed since ``since`` (the stack's start): a run
    left STARTED by an earlier stack that was killed has no worker, and is not this one's to wait for."""
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    return list(instance.get_runs(filters=RunsFilter(statuses=statuses, updated_after=since)))


def finish_or_cancel(
    dagster_home: Path,
    since: datetime,
    say: Callable[[str], None],
    hurry: threading.Event,
    *,
    grace_sec: float = STOP_GRACE_SEC,
    cancel_wait_sec: float = CANCEL_WAIT_SEC,
) -> None:
    """Let in-flight runs finish within ``grace_sec`` (cut short by ``hurry``), then terminate
    the rest, CANCELED; never FAILURE. Call once the daemon has stopped launching runs."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = in_flight(instance, since)
        if not runs:
            return
        say(f"waiting up to {grace_sec:.0f}s for {len(runs)} run(s) to finish: {_names(runs)}")
        deadline = time.monotonic() + grace_sec
        while runs and not hurry.is_set() and time.monotonic() < deadline:
            hurry.wait(0.5)
            runs = in_flight(instance, since)
        if not runs:
            say("every run in flight finished")
            return
        for run in runs:
            say(f"canceling run {short_id(run.run_id)} of {run_label(run)}")
            try:
                instance.run_launcher.terminate(run.run_id)
            except Exception as error:  # noqa: BLE001 - a failed request is forced below
                say(f"run {short_id(run.run_id)}: termination request failed ({type(error).__name__}: {error})")
        deadline = time.monotonic() + cancel_wait_sec
        while runs and time.monotonic() < deadline:
            time.sleep(0.5)
            runs = in_flight(instance, since)
        for run in runs:
            instance.report_run_canceled(
                run, message=f"market up stopped: the run did not end within {cancel_wait_sec:.0f}s of its termination"
            )
            say(f"run {short_id(run.run_id)} marked CANCELED by force; its processes are killed")


def run_drain(dagster_home: Path, *, since: datetime, grace_sec: float) -> Drain:
    """The daemon child's drain for the supervisor: :func:`finish_or_cancel` in a thread."""

    async def drain(say: Callable[[str], None], hurry: threading.Event) -> None:
        await asyncio.to_thread(finish_or_cancel, dagster_home, since, say, hurry, grace_sec=grace_sec)

    return drain


def _names(runs: Sequence[DagsterRun]) -> str:
    return ", ".join(f"{short_id(run.run_id)} ({run_label(run)})" for run in runs)
