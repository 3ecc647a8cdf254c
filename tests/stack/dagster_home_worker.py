"""A separate process that opens Dagster instances at agreed moments, as the webserver and the
daemon do when ``market up`` starts them.

    python dagster_home_worker.py START_AT_EPOCH_S HOME [HOME ...]

Opens HOME number i at START_AT + i seconds and lists its runs; prints one line per home,
``ok`` or the error, and exits 0 either way (the test reads the lines).
"""

from __future__ import annotations

import sys
import time

from dagster import DagsterInstance


def main(start_at: float, homes: list[str]) -> None:
    for i, home in enumerate(homes):
        time.sleep(max(0.0, start_at + i - time.time()))
        try:
            with DagsterInstance.from_config(home) as instance:
                instance.get_runs(limit=1)
            print("ok", flush=True)
        except Exception as error:  # noqa: BLE001 - the test shows whatever Dagster raised
            print(f"{type(error).__name__}: {error}".splitlines()[0], flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
