"""The API over a production-sized memory: dashboard latency, and health throughput against hello world.

    .venv/bin/python bench/api.py [--coins 200] [--minutes 50000] [--requests 500] [--seconds 10]
                                  [--rounds 5] [--unconfirmed]

Seeds ``--coins`` × ``--minutes`` closed 1-minute candles (10M by default, ending now) with
executemany in 1,000-row transactions, a listed universe and a day of ledger runs, runs
``ANALYZE``, then serves with uvicorn in a child process, as ``market api`` does (but logging at
``warning``, for both apps alike: ``market api`` logs every request at ``info``):

* the dashboard: p50/p99 of ``--requests`` sequential keep-alive GETs, after a warm-up that
  includes the first request's whole-table count (goal: p99 <= 50 ms);
* health: requests/s of sequential keep-alive GETs for ``--seconds``, as a ratio to a Litestar
  hello-world endpoint served the same way in the same run (goal >= 0.5x): ``--rounds`` pairs of
  back-to-back rounds, hello world then health, and the median of the pairs' ratios, so a load
  that comes and goes on the machine divides out of each pair instead of landing on one side. Hello world is the yardstick because it is the cost of the
  same server, framework and client with no work at all: the ratio is what the health route adds.

The candles are seeded as a streamer that keeps up leaves them: each minute confirmed, but each
coin's newest, whose final frame is still due. ``--unconfirmed`` seeds every minute unconfirmed
instead (the seed before schema V5's ``confirmed``); the dashboard's fidelity count then walks the
288,000 unverified minutes of the last day (``market_assets.memory.repairs.fidelity``).

Both figures go through ``figures.report`` for ``make bench``'s summary table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import report  # noqa: E402  (bench/ is on sys.path: this file runs as a script)
from served import latencies_ms, percentile, seed_ledger, start  # noqa: E402

from market_assets.clock import wall_clock_ms  # noqa: E402
from market_assets.memory import connect, write_transaction  # noqa: E402
from market_assets.memory.connection import close  # noqa: E402

# Bench-only seeding statement: the product writes candles through the streamer's writer.
CANDLE_SQL = (
    "INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, "
    "volume, trades, closed, confirmed, ingested_at_ms) VALUES (?, '1m', ?, ?, 100.0, 101.0, 99.0, 100.5, 12.5, 7, 1, ?, ?)"
)
MINUTE_MS = 60_000
BATCH = 1_000


def seed(path: Path, coins: int, minutes: int, now_ms: int, *, unconfirmed: bool = False) -> None:
    conn = connect(path)
    end = now_ms - now_ms % MINUTE_MS
    start = end - minutes * MINUTE_MS
    newest = end - MINUTE_MS
    names = [f"C{i:03d}" for i in range(coins)]
    begun = time.perf_counter()
    for name in names:  # coin-major: each batch appends to the end of one coin's key range
        for first in range(0, minutes, BATCH):
            rows = [
                (name, open_ms, open_ms + MINUTE_MS - 1, int(not unconfirmed and open_ms != newest), open_ms + MINUTE_MS)
                for open_ms in range(start + first * MINUTE_MS, start + min(first + BATCH, minutes) * MINUTE_MS, MINUTE_MS)
            ]
            with write_transaction(conn):
                conn.executemany(CANDLE_SQL, rows)
    seeded = time.perf_counter() - begun
    runs = seed_ledger(conn, names, end, now_ms)
    begun_analyze = time.perf_counter()
    conn.execute("ANALYZE")
    print(f"seeded {coins * minutes:,} candles in {seeded:.1f} s ({coins * minutes / seeded:,.0f} rows/s), "
          f"{runs:,} runs; ANALYZE {time.perf_counter() - begun_analyze:.1f} s; "
          f"file {path.stat().st_size / 1e6:,.0f} MB")
    close(conn)


def rate(client: httpx.Client, url: str, seconds: float, headers: dict[str, str], server: int) -> tuple[float, float]:
    """Requests/s, and the server process's CPU µs per request (user + system, all its threads)."""
    done, cpu, begun = 0, cpu_seconds(server), time.perf_counter()
    while (elapsed := time.perf_counter() - begun) < seconds:
        client.get(url, headers=headers).raise_for_status()
        done += 1
    return done / elapsed, (cpu_seconds(server) - cpu) / done * 1e6


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used: a diagnostic that a loaded machine stretches far less than
    requests/s, which is what the goal is written in (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unconfirmed", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
        db = Path(scratch) / "market.db"
        seed(db, args.coins, args.minutes, wall_clock_ms(), unconfirmed=args.unconfirmed)
        market, market_base = start("market", db)
        hello, hello_base = start("hello", db)
        try:
            with httpx.Client(timeout=30) as client:
                begun = time.perf_counter()
                client.get(market_base + "/api/v1/ingestion/dashboard").raise_for_status()
                print(f"first dashboard request (counts every table): {(time.perf_counter() - begun) * 1000:,.0f} ms")
                latencies_ms(client, market_base + "/api/v1/ingestion/dashboard", 20)
                dashboard = latencies_ms(client, market_base + "/api/v1/ingestion/dashboard", args.requests)
                dashboard_p99 = percentile(dashboard, 0.99)
                print(f"dashboard over {args.coins * args.minutes:,} candles, {args.requests} requests: "
                      f"p50 {statistics.median(dashboard):.1f} ms, p99 {dashboard_p99:.1f} ms, "
                      f"max {max(dashboard):.1f} ms (goal p99 <= 50 ms)")
                health_url, hello_url = market_base + "/api/v1/ingestion/health", hello_base + "/hello"
                user = {"x-user-id": "bench"}
                rate(client, health_url, 1, user, market.pid), rate(client, hello_url, 1, {}, hello.pid)
                health_rounds, hello_rounds = [], []
                for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
                    hello_rounds.append(rate(client, hello_url, args.seconds / args.rounds, {}, hello.pid))
                    health_rounds.append(rate(client, health_url, args.seconds / args.rounds, user, market.pid))
            health_rates, hello_rates = [r for r, _ in health_rounds], [r for r, _ in hello_rounds]
            health_rps, hello_rps = statistics.median(health_rates), statistics.median(hello_rates)
            ratio = statistics.median(h / w for h, w in zip(health_rates, hello_rates, strict=True))
            print(f"health {health_rps:,.0f} req/s vs hello world {hello_rps:,.0f} req/s (medians, "
                  f"{health_rps / hello_rps:.2f}x); median of the rounds' ratios {ratio:.2f}x (goal >= 0.5x)")
            print("rounds (health / hello req/s): "
                  + ", ".join(f"{h:,.0f}/{w:,.0f}" for h, w in zip(health_rates, hello_rates, strict=True)))
            print(f"server CPU per request (median, 10 ms ticks over whole rounds): health "
                  f"{statistics.median(c for _, c in health_rounds):,.0f} us, hello world "
                  f"{statistics.median(c for _, c in hello_rounds):,.0f} us")
            candles = f"{args.coins * args.minutes / 1e6:g}M candles" + (", all unconfirmed" if args.unconfirmed else "")
            report("api", "dashboard p99", dashboard_p99, "ms", goal="<= 50 ms",
                   baseline=f"none (an absolute goal; {args.requests} sequential requests over {candles})",
                   limit=50, direction="max")
            report("api", "health req/s / hello world", ratio, "x", goal=">= 0.5x",
                   baseline=f"Litestar hello world {hello_rps:,.0f} req/s", limit=0.5, direction="min")
        finally:
            for child in (market, hello):
                child.terminate()
                child.wait(timeout=10)


if __name__ == "__main__":
    os.environ.pop("MARKET_DB", None)
    main()
