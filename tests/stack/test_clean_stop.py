"""Ctrl-C of ``market up``'s supervisor with a Dagster run in flight: the run finishes within the
grace period (SUCCESS; past it, CANCELED: tests/e2e/test_market_up_stop.py), never FAILURE; and a failed run is one console
line with its cause and the path of the full log, which holds the traceback.

Real processes: the supervisor in its own process group (Ctrl-C is SIGINT to the terminal's
foreground group), a real ``dagster-daemon`` launching real runs from a test code location."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from market_assets.stack import BIN, prepare_dagster_home

from ..e2e.test_dagster_dev import live_processes

DEFS = Path(__file__).with_name("slow_runs_defs.py")


def supervisor_script(home: Path, workspace: Path, logs: Path, grace_sec: float) -> str:
    return (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from datetime import UTC, datetime\n"
        "from market_assets.stack_runs import failure_reporter, run_drain\n"
        "from market_assets.supervisor import Child, Supervisor\n"
        f"home, logs = Path({str(home)!r}), Path({str(logs)!r})\n"
        f"daemon = Child('dagster-daemon', [{str(BIN / 'dagster-daemon')!r}, 'run', '-w', {str(workspace)!r}],"
        f" drain=run_drain(home, since=datetime.now(UTC), grace_sec={grace_sec}))\n"
        "reporter = failure_reporter(home, log_file=logs / 'dagster-daemon.log', ui_url='http://127.0.0.1:3000')\n"
        "sys.exit(asyncio.run(Supervisor([daemon], log_dir=logs, background=[reporter]).run()))\n"
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    prepare_dagster_home(home)
    return home


def start(tmp_path: Path, home: Path, *, grace_sec: float, slow_sec: float) -> subprocess.Popen[str]:
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_file: {DEFS}\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
           "DAGSTER_HOME": str(home), "SLOW_RUN_SEC": str(slow_sec)}
    return subprocess.Popen(
        [sys.executable, "-c", supervisor_script(home, workspace, tmp_path / "logs", grace_sec)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[subprocess.Popen[str]]]:
    """Every supervisor the test started, and its children's groups, are gone at the end."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_for(deadline_s: float, what: str, probe):
    deadline = time.monotonic() + deadline_s
    while not (value := probe()):
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.5)
    return value


def runs_by_job(home: Path) -> dict[str, DagsterRunStatus]:
    with DagsterInstance.from_config(str(home)) as instance:
        return {run.job_name: run.status for run in instance.get_runs()}


def test_ctrl_c_lets_a_run_in_flight_finish_within_the_grace_never_failure(
    tmp_path: Path, home: Path, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    """A run past the grace ends CANCELED: tests/e2e/test_market_up_stop.py, through `market up` itself."""
    expected = DagsterRunStatus.SUCCESS
    up = start(tmp_path, home, grace_sec=90.0, slow_sec=6.0)
    stopped_at_the_end.append(up)
    wait_for(180, "the slow run to be in flight", lambda: (home / "slow-started").exists())
    wait_for(60, "the failing run to fail", lambda: runs_by_job(home).get("failing_job") == DagsterRunStatus.FAILURE)
    time.sleep(FAILURE_REPORT_SEC)
    os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
    assert up.wait(timeout=180) == 0
    console = up.stdout.read()
    assert runs_by_job(home) == {"slow_job": expected, "failing_job": DagsterRunStatus.FAILURE}, console
    wait_for(30, "every process of the daemon's tree to exit", lambda: not live_processes(up.pid))

    # The failed run: one console line with the cause and the full log's path; the trace in the log.
    log_file = tmp_path / "logs" / "dagster-daemon.log"
    failures = [line for line in console.splitlines() if " failed: " in line]
    assert len(failures) == 1, console
    assert "run " in failures[0] and " of fails failed: ValueError: the source said no" in failures[0]  # the failed step
    assert f"(full log: {log_file}; http://127.0.0.1:3000/runs/" in failures[0]
    assert "Traceback" not in console
    log = log_file.read_text()
    assert "ValueError: the source said no" in log and "Stack Trace:" in log
    assert 'raise ValueError("the source said no")' in log  # the full trace, down to our line


FAILURE_REPORT_SEC = 5.0
"""Long enough for the supervisor's failure poll (every 2 s) to see the failed run."""
