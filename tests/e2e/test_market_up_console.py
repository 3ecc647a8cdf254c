"""End to end: with a source failing, ``market up``'s console gets one line per failed run (its
cause and the path of the full log), never a traceback; the traceback is in the log file.

Before: each failed run printed its 80-160-line traceback on the console (244 lines in 4 minutes).
"""

from __future__ import annotations

import re
from pathlib import Path

from .offline_stack import offline_stack
from .test_dagster_dev import live_processes, wait_for


def test_a_failing_source_is_one_console_line_per_failed_run_with_the_log_path(tmp_path: Path) -> None:
    with offline_stack(tmp_path, stop_timeout_s=120) as stack:
        # Both DefiLlama hosts answer 400 to everything from now on: not retried, and with no
        # subject written each run fails.
        stack.fault(("/llama", "/stablecoins"), kind="status", status=400, body='{"message":"bad"}', times=None)
        wait_for(300, "a failed defillama/macro run on the console", lambda: " of defillama/macro " in stack.console)
    console, logs = stack.console, stack.logs
    assert stack.exit_code == 0, console[-3000:]
    wait_for(30, "every process of market up to exit", lambda: not live_processes(stack.process.pid))
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
