"""The admin page with its pictures at 200 coins: p99 of ``GET /admin/ingestion``.

    .venv/bin/python bench/admin_page.py [--coins 200] [--requests 300]

Seeds ``--coins`` × 24 h of closed 1-minute candles ending now, confirmed but for a few spans per
coin class (every 10th coin 5 unverified minutes, every 25th a 7-minute hole, every 40th 3
no-trade minutes, every 50th a 30-minute unfillable span; each coin's newest minute is
unverified, as a streamer that keeps up leaves it), and 24 h of ledger runs of every channel at
its cadence (candles: 1,440 windows), each with its newest data timestamp, one in 97 failed.
Runs ``ANALYZE``, serves the real app with uvicorn in a child process (as ``bench/api.py`` does)
and times sequential keep-alive GETs of the page, after a warm-up, interleaved in rounds of 20
with as many of the dashboard's JSON endpoint: the page reads the same dashboard document plus
the pictures' history, so the ratio is what the pictures cost. The rounds go on for at least
``--requests`` page requests and 65 s, so the coverage strip's once-a-minute read (after a
response, in the server) falls among them; its own time is printed after.

Goal: page p99 <= 100 ms. Both figures go through ``figures.report``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import report  # noqa: E402  (bench/ is on sys.path: this file runs as a script)

from api.admin_page import read_coverage  # noqa: E402
from market_assets.clock import wall_clock_ms  # noqa: E402
from market_assets.memory import connect, write_transaction  # noqa: E402
from market_assets.memory.connection import close  # noqa: E402
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe  # noqa: E402
from market_assets.registry import CANDLES, REGISTRY  # noqa: E402

# bench/api.py's server and timing helpers; loaded by path (its module name is the app's package's).
_spec = importlib.util.spec_from_file_location("bench_api", Path(__file__).with_name("api.py"))
assert _spec is not None and _spec.loader is not None
bench_api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_api)

# Bench-only seeding statements: the product writes candles through the streamer's writer, gaps
# through the repairs, and runs one at a time through the ledger API.
CANDLE_SQL = (
    "INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, "
    "volume, trades, closed, confirmed, ingested_at_ms) VALUES (?, '1m', ?, ?, 100.0, 101.0, 99.0, 100.5, 12.5, 7, 1, ?, ?)"
)
GAP_SQL = (
    "INSERT INTO candle_gaps (coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms) "
    "VALUES (?, '1m', ?, ?, ?, ?, ?)"
)
RUN_SQL = (
    "INSERT INTO ingestion_runs (source, channel, started_at_ms, finished_at_ms, status, rows_written, "
    "retries, throttles, metadata, data_latest_ms) VALUES (?, ?, ?, ?, ?, ?, 0, 0, '{}', ?)"
)
DRAIN_SQL = ("DELETE FROM pending_features", "DELETE FROM pending_rollups")
MINUTE_MS = 60_000
DAY_MINUTES = 1440
PAGE_GOAL_MS = 100.0
ROUND = 20
REDRAW_SPAN_SEC = 65.0
"""How long the timed requests go on at least: past a minute's end, when the server reads the
coverage strip again."""


def seed(path: Path, coins: int, now_ms: int) -> str:
    """The memory the module docstring describes; returns what it holds, in a line."""
    conn = connect(path)
    end = now_ms - now_ms % MINUTE_MS
    start = end - DAY_MINUTES * MINUTE_MS
    names = [f"C{i:03d}" for i in range(coins)]
    upsert_universe(conn, [UniverseRow(name, "", i, 2, 20, False) for i, name in enumerate(names)], now_ms)
    gaps = []
    for i, name in enumerate(names):
        unverified = set(range(600, 605)) if i % 10 == 0 else set()
        absent = set(range(300, 307)) if i % 25 == 0 else set()
        if i % 40 == 0:
            absent |= set(range(900, 903))
            gaps.append((name, start + 900 * MINUTE_MS, start + 903 * MINUTE_MS, "no_trades", 3, now_ms))
        if i % 50 == 0:
            absent |= set(range(60, 90))
            gaps.append((name, start + 60 * MINUTE_MS, start + 90 * MINUTE_MS, "unfillable", 30, now_ms))
        rows = [
            (name, start + m * MINUTE_MS, start + (m + 1) * MINUTE_MS - 1,
             int(m not in unverified and m != DAY_MINUTES - 1), start + (m + 1) * MINUTE_MS)
            for m in range(DAY_MINUTES) if m not in absent
        ]
        with write_transaction(conn):
            conn.executemany(CANDLE_SQL, rows)
    runs = []
    for channel in REGISTRY:
        cadence_ms = channel.expected_cadence_sec * 1000
        took_ms = cadence_ms if channel is CANDLES else 2_000
        for i in range(1, 86_400_000 // cadence_ms + 1):
            begun = end - i * cadence_ms
            failed = i % 97 == 0
            runs.append((channel.source, channel.name, begun, begun + took_ms, "failed" if failed else "succeeded",
                         0 if failed else 50 + i % 7, begun + took_ms - (1 + i % 5) * MINUTE_MS))
    with write_transaction(conn):
        conn.executemany(GAP_SQL, gaps)
        conn.executemany(RUN_SQL, runs)
        for statement in DRAIN_SQL:
            conn.execute(statement)
    conn.execute("ANALYZE")
    close(conn)
    return f"{coins} coins x 24 h of 1m candles, {len(gaps)} gap spans, {len(runs):,} runs"


def read_times(db: Path) -> list[float]:
    """Milliseconds of the strip's read and drawing (``read_coverage``), three times."""
    conn = connect(db, readonly=True)
    try:
        times = []
        for _ in range(3):
            begun = time.perf_counter()
            read_coverage(conn, wall_clock_ms())
            times.append((time.perf_counter() - begun) * 1000)
        return times
    finally:
        close(conn)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-admin-") as scratch:
        db = Path(scratch) / "market.db"
        held = seed(db, args.coins, wall_clock_ms())
        print(f"seeded {held}")
        server, base = bench_api.start("market", db)
        try:
            with httpx.Client(timeout=30) as client:
                page_url, json_url = base + "/admin/ingestion", base + "/api/v1/ingestion/dashboard"
                size = len(client.get(page_url).content)
                bench_api.latencies_ms(client, page_url, 20)
                bench_api.latencies_ms(client, json_url, 20)
                page, plain = [], []
                begun = time.monotonic()
                # Interleaved rounds, so machine noise hits both alike; past a minute, so the
                # strip's once-a-minute read (after a response, in the server) lands among them.
                while len(page) < args.requests or time.monotonic() - begun < REDRAW_SPAN_SEC:
                    page += bench_api.latencies_ms(client, page_url, ROUND)
                    plain += bench_api.latencies_ms(client, json_url, ROUND)
        finally:
            server.terminate()
            server.wait(timeout=10)
        reads = read_times(db)
    page_p99, plain_p99 = bench_api.percentile(page, 0.99), bench_api.percentile(plain, 0.99)
    print(f"admin page ({size / 1000:,.0f} kB), {len(page)} requests: p50 {statistics.median(page):.1f} ms, "
          f"p99 {page_p99:.1f} ms, max {max(page):.1f} ms; dashboard JSON, {len(plain)} requests: "
          f"p50 {statistics.median(plain):.1f} ms, p99 {plain_p99:.1f} ms, max {max(plain):.1f} ms "
          f"({page_p99 / plain_p99:.2f}x)")
    print(f"the coverage strip's read and drawing (in the server once a minute, after a response): "
          f"median {statistics.median(reads):.0f} ms of 3")
    report("admin_page", "admin page p99", page_p99, "ms", goal=f"<= {PAGE_GOAL_MS:g} ms",
           baseline=f"dashboard JSON p99 {plain_p99:.1f} ms in the same run ({page_p99 / plain_p99:.2f}x); {held}",
           limit=PAGE_GOAL_MS, direction="max")


if __name__ == "__main__":
    os.environ.pop("MARKET_DB", None)
    main()
