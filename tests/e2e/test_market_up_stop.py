"""End to end: Ctrl-C of ``market up`` while a Dagster run waits on a slow source ends that run
CANCELED after the grace period, never FAILURE, and every process exits.

Before: the stop signalled the daemon's whole process group, the run worker took the signal as
an unexpected interruption, and the run became a permanent FAILURE (and fired the failure alert).
"""

from __future__ import annotations

import time
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus

from .offline_stack import offline_stack
from .test_dagster_dev import live_processes, wait_for


def test_ctrl_c_cancels_a_run_in_flight_past_the_grace_never_failure(tmp_path: Path) -> None:
    with offline_stack(tmp_path, "--stop-grace", "2") as stack:
        # Every DefiLlama answer now takes 10 minutes: its run stays in flight.
        stack.fault(("/llama", "/stablecoins"), kind="slow", delay_s=600, times=None)

        def defillama_run() -> str | None:
            with DagsterInstance.from_config(str(stack.home)) as instance:
                runs = [r for r in instance.get_runs() if r.job_name.startswith("defillama")]
            return runs[0].run_id if runs and runs[0].status == DagsterRunStatus.STARTED else None

        run_id = wait_for(240, "a defillama run in flight", defillama_run)
        time.sleep(15)  # its step is waiting on the source (a timeout takes 10 s, 5 attempts)
    console, home = stack.console, stack.home
    assert stack.exit_code == 0, console[-3000:]
    wait_for(30, "every process of market up to exit", lambda: not live_processes(stack.process.pid))
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.CANCELED, console
        assert not [r.run_id for r in instance.get_runs() if r.status == DagsterRunStatus.FAILURE], console
    assert f"canceling run {run_id[:8]} of " in console
