"""End to end: Ctrl-C of ``market up`` while a Dagster run waits on a slow source ends that run
CANCELED after the grace period, never FAILURE, and every process exits.

Before: the stop signalled the daemon's whole process group, the run worker took the signal as
an unexpected interruption, and the run became a permanent FAILURE (and fired the failure alert).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from dagster import DagsterInstance, DagsterRunStatus

from ..conftest import MARKET
from .test_dagster_dev import free_port, live_processes, wait_for


def test_ctrl_c_cancels_a_run_in_flight_past_the_grace_never_failure(tmp_path: Path) -> None:
    home, logs = tmp_path / "dagster_home", tmp_path / "logs"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
    }
    console_file = tmp_path / "console.txt"
    with console_file.open("w") as console_out:
        up = subprocess.Popen(
            [str(MARKET), "--db", str(tmp_path / "market.db"), "up", "--offline", "--profile", "local",
             "--api-port", str(free_port()), "--dagster-port", str(free_port()), "--log-dir", str(logs),
             "--stop-grace", "2"],
            env=env, stdout=console_out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            def replay_control() -> str | None:
                lines = (logs / "replay.log").read_text().splitlines() if (logs / "replay.log").exists() else []
                urls = [json.loads(line) for line in lines if line.startswith("{")]
                return urls[0]["control"] if urls else None

            control = wait_for(60, "the replay to print its URLs", replay_control)
            # Every DefiLlama answer now takes 10 minutes: its run stays in flight.
            for host in ("/llama", "/stablecoins"):
                fault = {"kind": "slow", "path": host, "delay_s": 600, "times": None}
                httpx.post(f"{control}/faults", json=fault, timeout=10).raise_for_status()

            def defillama_run() -> str | None:
                with DagsterInstance.from_config(str(home)) as instance:
                    runs = [r for r in instance.get_runs() if r.job_name.startswith("defillama")]
                return runs[0].run_id if runs and runs[0].status == DagsterRunStatus.STARTED else None

            run_id = wait_for(240, "a defillama run in flight", defillama_run)
            time.sleep(15)  # its step is waiting on the source (a timeout takes 10 s, 5 attempts)
        finally:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
            try:
                exit_code = up.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                raise
    console = console_file.read_text()
    assert exit_code == 0, console[-3000:]
    wait_for(30, "every process of market up to exit", lambda: not live_processes(up.pid))
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.CANCELED, console
        assert not [r.run_id for r in instance.get_runs() if r.status == DagsterRunStatus.FAILURE], console
    assert f"canceling run {run_id[:8]} of " in console
