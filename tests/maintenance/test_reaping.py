"""SPEC §3: a run recorded ``running`` by a process that died is not ``running`` for ever:
maintenance records it failed ("abandoned"), whichever channel it belongs to."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect
from market_assets.memory.connection import close
from market_assets.memory.runs import ABANDONED, RunStatus, get_run

WORKER = Path(__file__).parents[1] / "ledger_worker.py"


def test_maintenance_records_a_killed_process_s_run_failed_as_abandoned(memory_path: Path) -> None:
    hung = subprocess.Popen([sys.executable, str(WORKER), str(memory_path), "hang"], stdout=subprocess.PIPE, text=True)
    try:
        assert hung.stdout is not None
        left_id = int(hung.stdout.readline())
        conn = connect(memory_path)
        try:
            run_maintenance(conn, Ledger(conn))  # its process is alive: the run is still its own
            assert get_run(conn, left_id).status is RunStatus.RUNNING
            hung.send_signal(signal.SIGKILL)
            hung.wait(timeout=10)
            result = run_maintenance(conn, Ledger(conn))
            left = get_run(conn, left_id)
        finally:
            close(conn)
    finally:
        if hung.poll() is None:
            hung.kill()
            hung.wait(timeout=10)
    assert result.runs_reaped == 1 and result.metadata()["runs_reaped"] == 1
    assert left is not None and left.status is RunStatus.FAILED
    assert left.error is not None and left.error.startswith(f"{ABANDONED}: its process (pid {hung.pid} on ")
