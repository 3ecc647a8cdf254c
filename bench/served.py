"""What the API benchmarks put in a memory besides its candles, and how they serve it.

``seed_ledger`` lists the universe and writes a day of ledger runs (a window a minute for the
streamer, each scheduled channel at its cadence) and drains the change queues, as a memory that
has been running a day holds them. ``start`` serves the market app (or a hello-world Litestar app,
the yardstick of the health figure) with uvicorn in a child process, as ``market api`` does but
logging at ``warning`` for both apps alike; the memory is a file path or a ``postgresql://`` URL.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from market_assets.memory import write_transaction
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.target import MemoryTarget, parse_target
from market_assets.registry import CANDLES, REGISTRY

# Bench-only seeding statements: the product runs one at a time through the ledger API.
RUN_SQL = (
    "INSERT INTO ingestion_runs (source, channel, started_at_ms, finished_at_ms, status, rows_written, "
    "retries, throttles, metadata) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)"
)
# What the features and rollups jobs would have consumed by now (the insert triggers queue every candle).
DRAIN_SQL = ("DELETE FROM pending_features", "DELETE FROM pending_rollups")
MINUTE_MS = 60_000


def seed_ledger(conn: MemoryConnection, coins: list[str], end_ms: int, now_ms: int) -> int:
    """The universe of ``coins``, a day of runs ending at ``end_ms``, empty change queues; the runs' count."""
    upsert_universe(conn, [UniverseRow(name, "", i, 2, 20, False) for i, name in enumerate(coins)], now_ms)
    with write_transaction(conn):
        for statement in DRAIN_SQL:
            conn.execute(statement)
    window = json.dumps({"reconnects": 0, "parse_errors": 0, "gaps_detected": 0, "queue_depth": 1, "coins": len(coins)})
    runs = [
        (CANDLES.source, CANDLES.name, end_ms - i * MINUTE_MS, end_ms - i * MINUTE_MS + MINUTE_MS, "succeeded", len(coins), window)
        for i in range(1, 1441)
    ]
    for channel in REGISTRY:
        if channel is not CANDLES:
            cadence_ms = channel.expected_cadence_sec * 1000
            runs += [
                (channel.source, channel.name, end_ms - i * cadence_ms, end_ms - i * cadence_ms + 2_000, "succeeded", 50, "{}")
                for i in range(1, 86_400_000 // cadence_ms + 1)
            ]
    with write_transaction(conn):
        conn.executemany(RUN_SQL, runs)
    return len(runs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(kind: str, db: MemoryTarget, port: int) -> None:
    """Child process: uvicorn serving the market app or a hello-world Litestar app."""
    import uvicorn
    from litestar import Litestar, get

    if kind == "market":
        from api import create_app
        from market_assets.settings import Settings

        app = create_app(Settings(db_path=db))
    else:

        @get("/hello", sync_to_thread=False)
        def hello() -> dict[str, str]:
            return {"hello": "world"}

        app = Litestar(route_handlers=[hello])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start(kind: str, db: MemoryTarget) -> tuple[subprocess.Popen[bytes], str]:
    """A served app and its base URL, once it answers."""
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, kind, str(db), str(port)])
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + ("/livez" if kind == "market" else "/hello"), timeout=1)
            return child, base
        except httpx.TransportError:
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {kind} server did not start")
            time.sleep(0.1)


def latencies_ms(client: httpx.Client, url: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        begun = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - begun) * 1000)
        response.raise_for_status()
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


if __name__ == "__main__":
    serve(sys.argv[1], parse_target(sys.argv[2]), int(sys.argv[3]))
