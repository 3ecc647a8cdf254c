"""A maintenance run in its own process that SIGKILLs itself inside its second day-prune DELETE.

    python maintenance_worker.py DB NOW_MS

The kill comes from SQLite's progress handler while that DELETE is executing, so the process
dies with the day's transaction open and rows already deleted inside it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect

DAY_PRUNE = "DELETE FROM candles WHERE interval = '1m' AND closed = 1"


def main(path: str, now_ms: str) -> None:
    conn = connect(Path(path), clock=lambda: int(now_ms))
    day_prunes = 0
    progress_calls = 0

    def trace(statement: str) -> None:
        nonlocal day_prunes
        if statement.startswith(DAY_PRUNE):
            day_prunes += 1

    def progress() -> int:
        nonlocal progress_calls
        if day_prunes == 2:
            progress_calls += 1
            if progress_calls == 20:
                os.kill(os.getpid(), signal.SIGKILL)
        return 0

    conn.set_trace_callback(trace)
    conn.set_progress_handler(progress, 100)
    run_maintenance(conn, Ledger(conn, lambda: int(now_ms)))


if __name__ == "__main__":
    main(*sys.argv[1:])
