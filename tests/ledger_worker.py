"""A separate process that writes ledger runs, for the multi-process and SIGKILL tests.

    python ledger_worker.py DB runs N [--start-at EPOCH_S]   N runs, each start -> succeed
    python ledger_worker.py DB hang                           start one run, print its id, hang
    python ledger_worker.py DB lock SECONDS                   hold the write lock (SQLite's BEGIN
                                                              IMMEDIATE, PostgreSQL's advisory lock)
                                                              for SECONDS; prints "locked" once held

DB is a SQLite path or a PostgreSQL URL.
"""

from __future__ import annotations

import sys
import time

from market_assets.ledger import Ledger
from market_assets.memory import open_memory, write_transaction
from market_assets.registry import FUNDING


def main(path: str, mode: str, *args: str) -> None:
    if mode == "lock":
        hold_write_lock(path, float(args[0]))
        return
    with open_memory(path) as conn:
        ledger = Ledger(conn)
        if mode == "runs":
            count = int(args[0])
            if len(args) > 2 and args[1] == "--start-at":
                time.sleep(max(0.0, float(args[2]) - time.time()))
            for i in range(count):
                with ledger.run(FUNDING, metadata={"worker": path, "i": i}) as run:
                    run.add_rows(i)
        elif mode == "hang":
            run = ledger.start(FUNDING)
            print(run.run_id, flush=True)
            time.sleep(3600)


def hold_write_lock(path: str, seconds: float) -> None:
    """What a long write transaction of another process looks like to everyone else."""
    with open_memory(path) as conn, write_transaction(conn):
        print("locked", flush=True)
        time.sleep(seconds)


if __name__ == "__main__":
    main(*sys.argv[1:])
