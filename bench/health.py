"""Health evaluation over a large ledger, as a ratio to the bare indexed latest-run SELECTs.

    .venv/bin/python bench/health.py [--runs 1000000] [--growth 10] [--repeat 2000]

Builds a ledger of ``--runs`` runs spread over the seven channels (the streamer's one-per-minute
windows dominate, as in production), then times, in the same process and the same memory:

* baseline: the bare indexed ``SELECT`` of the latest run of each channel (raw tuples);
* health:   ``read_health`` + the SPEC document + its JSON encoding (what the API serves).

It then grows the ledger ``--growth`` times and measures again. Goal: ratio <= 2x, and flat.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from market_assets.health import encode_document, read_health  # noqa: E402
from market_assets.memory import connect, write_transaction  # noqa: E402
from market_assets.memory.connection import close  # noqa: E402
from market_assets.memory.runs import LATEST_RUN_SQL  # noqa: E402
from market_assets.registry import CANDLES, REGISTRY  # noqa: E402

from figures import report  # noqa: E402

# Bench-only seeding statement: the product writes runs one at a time through the ledger API.
SEED_SQL = (
    "INSERT INTO ingestion_runs (source, channel, started_at_ms, finished_at_ms, status, "
    "rows_written, retries, throttles, metadata) VALUES (?, ?, ?, ?, ?, ?, 0, 0, '{}')"
)
T0_MS = 1_700_000_000_000


def seed(conn, first: int, count: int) -> None:
    """Runs ``first .. first+count``: 9 of 10 are candle windows, the rest round-robin the others."""
    others = [c for c in REGISTRY if c is not CANDLES]
    batch = []
    for i in range(first, first + count):
        channel = CANDLES if i % 10 else others[(i // 10) % len(others)]
        started = T0_MS + i * 6_000
        status = "failed" if i % 997 == 0 else "succeeded"
        batch.append((channel.source, channel.name, started, started + 2_000, status, i % 500))
        if len(batch) == 50_000:
            with write_transaction(conn):
                conn.executemany(SEED_SQL, batch)
            batch.clear()
    if batch:
        with write_transaction(conn):
            conn.executemany(SEED_SQL, batch)


def median_us(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def measure(conn, now_ms: int, repeat: int) -> tuple[float, float]:
    keys = [(c.source, c.name) for c in REGISTRY]

    def bare() -> None:
        for key in keys:
            conn.execute(LATEST_RUN_SQL, key).fetchone()

    def health() -> None:
        encode_document(read_health(conn, now_ms).document())

    for fn in (bare, health):  # warm the page cache and the statement cache
        median_us(fn, 50)
    # Interleave the two so machine noise hits both alike.
    bare_us, health_us = [], []
    for _ in range(5):
        bare_us.append(median_us(bare, repeat // 5))
        health_us.append(median_us(health, repeat // 5))
    return statistics.median(bare_us), statistics.median(health_us)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--growth", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "bench.db")
        total = 0
        print(f"{'ledger runs':>12} {'bare SELECT µs':>15} {'health µs':>10} {'ratio':>6}")
        for size in (args.runs, args.runs * args.growth):
            seed(conn, total, size - total)
            total = size
            conn.execute("ANALYZE")
            now_ms = T0_MS + total * 6_000 + 10_000
            bare_us, health_us = measure(conn, now_ms, args.repeat)
            print(f"{total:>12,} {bare_us:>15.1f} {health_us:>10.1f} {health_us / bare_us:>5.2f}x", flush=True)
        report("health", f"health evaluation / bare indexed SELECT, {total:,} ledger runs", health_us / bare_us, "x",
               goal="<= 2x, flat", baseline=f"bare SELECT {bare_us:.1f} us", limit=2.0)
        close(conn)


if __name__ == "__main__":
    main()
