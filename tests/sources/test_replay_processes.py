"""The replay runs standalone (``python -m market_assets.replay``) and in a background thread,
and its faults can be driven over the control API."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from market_assets.replay import ReplayConfig, ReplayThread
from market_assets.sources.hyperliquid_ws import Ack, candle_subscription, parse_frame, subscribe_message
from market_assets.sources.polymarket import GammaClient
from market_assets.sources.timing import AcceleratedClock

from .conftest import T0_MS

pytestmark = pytest.mark.anyio


@pytest.fixture
def standalone() -> Iterator[dict[str, object]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "market_assets.replay", "--speed", "1000", "--start-ms", str(T0_MS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        yield {"process": process, **urls}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


async def test_standalone_replay_prints_its_urls_and_obeys_the_control_api(standalone: dict[str, object]) -> None:
    endpoints = standalone["endpoints"]
    assert isinstance(endpoints, dict)
    assert str(standalone["http"]).startswith("http://127.0.0.1:") and str(standalone["ws"]).endswith("/ws")
    control = str(standalone["control"])
    async with httpx.AsyncClient() as http:
        added = await http.post(
            f"{control}/faults",
            json={"kind": "status", "path": "/gamma/markets", "status": 429, "retry_after": "20", "times": 1},
        )
        assert added.status_code == 200
        clock = AcceleratedClock(1000, T0_MS)
        async with GammaClient(endpoints["gamma_api"], clock=clock) as gamma:
            markets = await gamma.markets()
        log = (await http.get(f"{control}/requests")).json()
    assert len(markets) == 100 and gamma.stats.rate_limited == 1 and gamma.stats.retries == 1
    assert [entry["status"] for entry in log if entry["path"] == "/gamma/markets"] == [429, 200, 200]
    first, second = (entry["at_ms"] for entry in log[:2])
    assert second - first >= 20_000  # Retry-After honoured on the replay's own clock


def test_standalone_replay_stops_cleanly_on_sigterm(standalone: dict[str, object]) -> None:
    process = standalone["process"]
    assert isinstance(process, subprocess.Popen)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_a_threaded_replay_serves_synchronous_callers() -> None:
    with ReplayThread(ReplayConfig(clock=AcceleratedClock(1000, T0_MS))) as replay:
        replay.plan.silenced_coins.add("BTC")
        response = httpx.post(f"{replay.endpoints.hyperliquid_api}/info", json={"type": "meta"})
        chains = httpx.get(f"{replay.endpoints.llama_api}/v2/chains")
        faults = httpx.delete(f"{replay.http_url}/_replay/faults")
    assert response.status_code == 200 and response.json()["universe"][0]["name"] == "BTC"
    assert len(chains.json()) == 450
    assert faults.status_code == 200 and replay.plan.silenced_coins == set()


async def test_standalone_replay_drops_websockets_on_command(standalone: dict[str, object]) -> None:
    control = str(standalone["control"])
    async with connect(str(standalone["ws"])) as ws:
        await ws.send(subscribe_message(candle_subscription("BTC")))
        assert isinstance(parse_frame(await ws.recv()), Ack)
        async with httpx.AsyncClient() as http:
            dropped = await http.post(f"{control}/faults", json={"kind": "ws_drop"})
        assert dropped.status_code == 200
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is None
