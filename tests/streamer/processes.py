"""What the end-to-end process tests share: waiting on a condition with a deadline, and stopping a
process they started whatever happened."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

STOP_DEADLINE_S = 15.0


def poll(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[Any]) -> int:
    """SIGTERM, then SIGKILL past a deadline; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
