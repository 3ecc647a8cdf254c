"""End to end: a real ``dagster dev`` on loopback ports, offline, fed by the ledger; stopped cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.registry import CANDLES

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FRESHNESS = """
{ assetNodes(assetKeys: [{path: ["hyperliquid", "candles"]}]) {
    freshnessStatusInfo { freshnessStatus }
    internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds } }
    assetMaterializations(limit: 1) { runId }
} }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(deadline_s: float, what: str, probe) -> object:
    deadline = time.monotonic() + deadline_s
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(1)


@pytest.fixture
def replay_urls() -> Iterator[dict[str, str]]:
    replay = subprocess.Popen(
        [sys.executable, "-m", "market_assets.replay"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        yield json.loads(replay.stdout.readline())
    finally:
        replay.terminate()
        replay.wait(timeout=20)


def record_candle_window(db: Path) -> None:
    """What the streamer writes once a minute window is flushed."""
    with open_memory(db) as conn:
        window = Ledger(conn).start(CANDLES)
        window.add_rows(5)
        window.succeed()


def live_processes(group: int) -> list[str]:
    listing = subprocess.run(
        ["ps", "-o", "pid=,stat=,args=", "-g", str(group)], capture_output=True, text=True
    ).stdout.splitlines()
    return [line for line in listing if line.split()[1][0] != "Z"]


def graphql(port: int, query: str) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


def test_dagster_dev_reports_the_streamer_windows_and_their_freshness(tmp_path: Path, replay_urls: dict[str, str]) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    db = tmp_path / "market.db"
    record_candle_window(db)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "MARKET_DB": str(db),
        "MARKET_PROFILE": "local",
        "MARKET_REPLAY_HTTP": replay_urls["http"],
        "MARKET_REPLAY_WS": replay_urls["ws"],
    }
    dagster = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, and SIGINT not ignored (dagster.md §0.10)
    )
    try:
        def fresh() -> dict | None:
            try:
                [node] = graphql(port, FRESHNESS)["assetNodes"]
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                return None
            return node if node["freshnessStatusInfo"]["freshnessStatus"] == "HEALTHY" else None

        node = wait_for(240, "hyperliquid/candles to be reported and judged fresh", fresh)
        assert node["internalFreshnessPolicy"] == {
            "failWindowSeconds": CANDLES.stale_after_sec,
            "warnWindowSeconds": CANDLES.freshness_warn_sec,
        }
        assert node["assetMaterializations"][0]["runId"] == ""  # runless: reported by the sensor
    finally:
        dagster.send_signal(signal.SIGTERM)
        try:
            # Its code server waits up to 60 s for RPCs in flight (a sensor tick) before it stops.
            exit_code = dagster.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(dagster.pid, signal.SIGKILL)
            raise
    assert exit_code == 0
    # The code server exits a moment after its parent; zombies (reaped late by PID 1 in a
    # container) are dead processes and do not count.
    wait_for(30, "every process of dagster dev's group to exit", lambda: not live_processes(dagster.pid))
