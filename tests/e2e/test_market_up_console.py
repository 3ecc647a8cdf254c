"""End to end: with a source failing, ``market up``'s console gets one line per failed run (its
cause and the path of the full log), never a traceback; the traceback is in the log file.

Before: each failed run printed its 80-160-line traceback on the console (244 lines in 4 minutes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx

from ..conftest import MARKET
from .test_dagster_dev import free_port, live_processes, wait_for


def test_a_failing_source_is_one_console_line_per_failed_run_with_the_log_path(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    console_file = tmp_path / "console.txt"
    logs = tmp_path / "logs"
    with console_file.open("w") as console_out:
        up = subprocess.Popen(
            [str(MARKET), "--db", str(tmp_path / "market.db"), "up", "--offline", "--profile", "local",
             "--api-port", str(free_port()), "--dagster-port", str(free_port()), "--log-dir", str(logs)],
            env=env, stdout=console_out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            def replay_control() -> str | None:
                lines = (logs / "replay.log").read_text().splitlines() if (logs / "replay.log").exists() else []
                urls = [json.loads(line) for line in lines if line.startswith("{")]
                return urls[0]["control"] if urls else None

            control = wait_for(60, "the replay to print its URLs", replay_control)
            # Both DefiLlama hosts answer 400 to everything from now on: not retried, and with no
            # subject written each run fails.
            for host in ("/llama", "/stablecoins"):
                fault = {"kind": "status", "path": host, "status": 400, "body": '{"message":"bad"}', "times": None}
                httpx.post(f"{control}/faults", json=fault, timeout=10).raise_for_status()
            wait_for(300, "a failed defillama/macro run on the console",
                     lambda: " of defillama/macro " in console_file.read_text())
        finally:
            os.killpg(up.pid, signal.SIGINT)
            try:
                exit_code = up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                raise
    console = console_file.read_text()
    assert exit_code == 0, console[-3000:]
    wait_for(30, "every process of market up to exit", lambda: not live_processes(up.pid))
    daemon_log = logs / "dagster-daemon.log"
    failed = re.findall(r"dagster \| run ([0-9a-f]{8}) of defillama/macro (?:\(retry \d+\) )?failed: (.+) "
                        rf"\(full log: {re.escape(str(daemon_log))}; http://127\.0\.0\.1:\d+/runs/([0-9a-f-]+)\)$",
                        console, flags=re.MULTILINE)
    assert failed, console
    for short, cause, run_id in failed:
        assert run_id.startswith(short)
        assert "400" in cause and "\n" not in cause
    assert "Traceback" not in console and "Stack Trace" not in console
    assert len(console.splitlines()) < 40, console  # banner, starts, failures, stops: no flood
    log = daemon_log.read_text()
    assert "Stack Trace:" in log and "defillama" in log
