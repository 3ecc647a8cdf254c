"""What the end-to-end process tests share: a standalone replay process, ``python -m streamer``
started against it as ``market up`` runs it, the replay's clock, waiting on a condition with a
deadline, and stopping a process they started whatever happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .conftest import T0_MS

STOP_DEADLINE_S = 15.0


@contextmanager
def standalone_replay(speed: float) -> Iterator[dict[str, Any]]:
    """``python -m market_assets.replay`` at ``speed`` from T0; yields its URLs (http, ws, control)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "market_assets.replay", "--speed", str(speed), "--start-ms", str(T0_MS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield {**json.loads(process.stdout.readline()), "speed": speed}
    finally:
        stop(process)


def start_streamer(replay: dict[str, Any], memory_path: Path | str, log: Path) -> subprocess.Popen[bytes]:
    """``market stream`` as ``market up`` runs it, on the replay's clock, logging to ``log``; the
    host's own files (a PostgreSQL memory's weight ledger) beside the log."""
    env = {
        **os.environ,
        "MARKET_DB": str(memory_path),
        "MARKET_HOME": str(log.parent),
        "MARKET_REPLAY_HTTP": replay["http"],
        "MARKET_REPLAY_WS": replay["ws"],
        "MARKET_PROFILE": "local",
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "streamer", "--clock-speed", str(replay["speed"]), "--replay-control", replay["control"]],
            env=env,
            stdout=sink,
            stderr=sink,
        )


def replay_now(replay: dict[str, Any]) -> int:
    return int(httpx.get(f"{replay['control']}/clock").json()["now_ms"])


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
