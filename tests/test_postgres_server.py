"""The suite's throw-away PostgreSQL server never outlives the test process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.postgres_server import URL_ENV

STARTER = """
import sys, time
from tests.postgres_server import start_server
server = start_server()
print(server.admin_url, flush=True)
time.sleep(600)
"""


def _gone(url: str, deadline_sec: float) -> bool:
    deadline = time.monotonic() + deadline_sec
    while time.monotonic() < deadline:
        try:
            psycopg.connect(url, connect_timeout=1).close()
        except psycopg.OperationalError:
            return True
        time.sleep(0.2)
    return False


def test_a_cluster_stops_and_leaves_no_folder_when_its_test_process_is_killed() -> None:
    repo = Path(__file__).resolve().parents[1]
    env = {name: value for name, value in os.environ.items() if name != URL_ENV}  # a cluster of its own
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER], cwd=repo, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert starter.stdout is not None
        url = starter.stdout.readline().strip()
        assert url.startswith("postgresql://"), url
        with psycopg.connect(url) as conn:
            data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        assert data_dir.is_dir()

        os.killpg(starter.pid, signal.SIGKILL)  # no teardown, no atexit: as a timeout or the OOM killer would
        starter.wait(timeout=10)

        assert _gone(url, 30), "the server outlived the process that started it"
        deadline = time.monotonic() + 10
        while data_dir.parent.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not data_dir.parent.exists()
    finally:
        if starter.poll() is None:
            os.killpg(starter.pid, signal.SIGKILL)
            starter.wait(timeout=10)
