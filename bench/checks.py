"""Candle checks: the five asset checks of ``hyperliquid/candles`` over 200 coins × 1 day of 1m.

    .venv/bin/python bench/checks.py [--coins 200] [--rounds 5] [--cache /tmp/market-bench-checks]

Builds (once, cached under ``--cache`` keyed by its size and the schema version) a memory of
``coins`` × (1 day + 1 hour) closed, confirmed 1-minute candles written through
``memory.candles.upsert_candles`` (one transaction per coin), the perp universe listing every
coin, and planner statistics (``ANALYZE``, as maintenance's ``PRAGMA optimize`` keeps them). Then, best of
``--rounds``, interleaved: every candle check evaluated as the Dagster sensor evaluates them
(``quality.catalog.evaluate_all``, one snapshot), and the yardstick, one scan of the same
window's rows, ``SELECT count(*) FROM candles WHERE interval = '1m' AND open_time_ms >= ?``.
Goal: the checks ≤ 1 s; their ratio to the scan is shown for information (what five checks
over the window cost in passes of it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from figures import report

from market_assets.memory.candles import CandleRow, upsert_candles
from market_assets.memory.connection import close, connect, write_transaction
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.schema import SCHEMA_VERSION
from market_assets.quality.catalog import checks_of, evaluate_all
from market_assets.registry import CANDLES

T0_MS = 1_794_960_000_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def build(path: Path, coins: int, minutes: int, now_ms: int) -> None:
    """The memory: ``minutes`` closed confirmed minutes per coin ending before ``now_ms``."""
    rng = np.random.default_rng(16)
    start = now_ms - now_ms % MINUTE_MS - minutes * MINUTE_MS
    conn = connect(path, clock=lambda: now_ms)
    names = [f"C{i:03}" for i in range(coins)]
    for coin in names:
        closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, minutes)))
        volumes = rng.uniform(0.1, 10.0, minutes)
        rows = [
            CandleRow(coin, "1m", start + i * MINUTE_MS, start + i * MINUTE_MS + MINUTE_MS - 1, float(c) * 0.999,
                      float(c) * 1.002, float(c) * 0.997, float(c), float(v), int(v * 3), True, True)
            for i, (c, v) in enumerate(zip(closes, volumes))
        ]
        with write_transaction(conn):
            upsert_candles(conn, rows, now_ms)
    upsert_universe(conn, [UniverseRow(coin, "", i, 2, 20, False) for i, coin in enumerate(names)], now_ms)
    conn.execute("ANALYZE")  # the statistics maintenance keeps current (PRAGMA optimize)
    close(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/market-bench-checks"))
    args = parser.parse_args()

    window_sec = CANDLES.quality.window_sec
    minutes = window_sec // 60 + 60
    now_ms = T0_MS + minutes * MINUTE_MS + 20_000
    path = args.cache / f"checks-{args.coins}x{minutes}-v{SCHEMA_VERSION}.db"
    if not path.exists():
        args.cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".building")
        for leftover in args.cache.glob(partial.name + "*"):
            leftover.unlink()
        started = time.perf_counter()
        build(partial, args.coins, minutes, now_ms)
        partial.rename(path)
        print(f"built {path} in {time.perf_counter() - started:.1f} s")
    conn = connect(path, clock=lambda: now_ms, readonly=True)
    checks = checks_of(CANDLES)
    start = now_ms - window_sec * 1000

    def scan() -> int:
        return int(conn.execute(
            "SELECT count(*) FROM candles WHERE interval = '1m' AND open_time_ms >= ?", (start,)
        ).fetchone()[0])

    rows = scan()
    outcomes = evaluate_all(conn, checks, now_ms)  # warm the cache the way the scan warmed it
    failed = [check.name for check, outcome in outcomes.items() if not outcome.passed]
    if failed:
        raise SystemExit(f"the benchmark memory fails {failed}: its data is wrong, not its speed")
    check_times: list[float] = []
    scan_times: list[float] = []
    per_check: dict[str, float] = {}
    for _ in range(args.rounds):
        began = time.perf_counter()
        scan()
        scan_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        evaluate_all(conn, checks, now_ms)
        check_times.append(time.perf_counter() - began)
        for check in checks:
            began = time.perf_counter()
            check.evaluate(conn, now_ms)
            elapsed = time.perf_counter() - began
            per_check[check.name] = min(per_check.get(check.name, elapsed), elapsed)
    close(conn)
    checks_s, scan_s = min(check_times), min(scan_times)
    print(f"{rows:,} rows in the window; per check (best): "
          + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in per_check.items()))
    baseline = f"one count(*) scan of the window's {rows:,} rows {scan_s * 1000:.0f} ms"
    report("checks", f"candle checks, {args.coins} coins x 1 day", checks_s, "s", goal="<= 1 s",
           baseline=baseline, limit=1.0)
    report("checks", "candle checks / one scan of the window", checks_s / scan_s, "x", goal="info",
           baseline=baseline, limit=None)


if __name__ == "__main__":
    main()
