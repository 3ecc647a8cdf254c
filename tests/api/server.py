"""``market api`` as a real server process on a loopback port, stopped whatever the test did."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

from tests.conftest import MARKET

STOP_GRACE_SEC = 10.0
"""How long the server gets to stop after SIGTERM before it is killed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_api(db: Path, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The base URL of ``market --db DB api`` once ``/livez`` answers; SIGTERM, then SIGKILL after
    :data:`STOP_GRACE_SEC`, on the way out."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")} | dict(env or {})
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a full pipe would stall the server
        server = subprocess.Popen(
            [str(MARKET), "--db", str(db), "api", "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=errors, env=environment,
        )
        try:
            yield _listening(f"http://127.0.0.1:{port}", server, errors)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=STOP_GRACE_SEC)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _listening(base: str, server: subprocess.Popen[bytes], errors: IO[bytes]) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/livez", timeout=1)
            return base
        except httpx.TransportError:
            if server.poll() is not None:
                errors.seek(0)
                raise AssertionError(f"market api exited: {errors.read().decode()}") from None
            assert time.monotonic() < deadline, "market api did not start listening"
            time.sleep(0.1)
