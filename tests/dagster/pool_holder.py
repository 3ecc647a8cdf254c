"""A Dagster run in the ``hyperliquid`` pool that holds its slot until told to let go.

Run as a separate process by tests/dagster/test_source_pools.py: ``python pool_holder.py
HOLDING_FILE RELEASE_FILE``, with ``DAGSTER_HOME`` set. It writes HOLDING_FILE once its step has
the slot, then waits (at most a minute) for RELEASE_FILE to exist.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dagster as dg

HOLD_AT_MOST_SEC = 60.0


def main(holding: Path, release: Path) -> None:
    @dg.asset(pool="hyperliquid")
    def holds_the_hyperliquid_slot() -> None:
        holding.write_text("holding")
        deadline = time.monotonic() + HOLD_AT_MOST_SEC
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([holds_the_hyperliquid_slot], instance=instance).success


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
