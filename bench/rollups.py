"""Rollup cost: the hourly incremental rollup of 200 coins, and a full rebuild against alternatives.

    .venv/bin/python bench/rollups.py [--coins 200] [--minutes 10000] [--duckdb]

1. Loads ``coins × minutes`` closed 1-minute candles through the streamer's writer, rolls them
   up once, then appends one more hour for every coin and times the incremental rollup of it as
   maintenance runs it (autocheckpoint deferred to its checkpoint, timed apart); median of ``--hours``.
   Beside it, in the same run, peers.md §3's "one-hour rollup, all coins" query (1h only, from
   the minutes, nothing written; 8.6 ms on the research machine) as the yardstick: the run does
   that plus the twelve 5m buckets per coin it is built from, and writes all 2,600 rows.
2. Times the full rebuild (``maintenance.rebuild_rollups``: one transaction per day, each
   interval from the one below) against the same SQL as one transaction over the whole span
   (``memory.rollups.rebuild_range``: SQLite's GROUP BY, one statement per interval).
3. With ``--duckdb``: DuckDB's 1h rollup of the same minutes, counting the only offline way to
   get them there (Python sqlite3 → Arrow; the sqlite scanner extension cannot be installed
   offline for DuckDB 2.x, see ``maintenance.rebuild_rollups``).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from market_assets.ledger import Ledger
from market_assets.maintenance import rebuild_rollups
from market_assets.memory import open_memory
from market_assets.memory.candles import CandleRow, candles_of, write_candles
from market_assets.memory.connection import write_transaction
from market_assets.memory.retention import checkpoint, checkpoint_at_the_end, optimize
from market_assets.memory.rollups import DAY_MS, LEVELS, rebuild_range, roll_pending

T0_MS = 1_794_960_000_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000

ONE_HOUR_ROLLUP = """WITH g AS (
        SELECT coin, open_time_ms / 3600000 AS hr, min(open_time_ms) AS t0, max(open_time_ms) AS t1,
            max(high) AS h, min(low) AS l, sum(volume) AS v, sum(trades) AS n
        FROM candles WHERE interval = '1m' AND open_time_ms >= :since GROUP BY coin, hr)
    SELECT g.coin, g.hr * 3600000, f.open, g.h, g.l, z.close, g.v, g.n FROM g
    JOIN candles AS f ON f.coin = g.coin AND f.interval = '1m' AND f.open_time_ms = g.t0
    JOIN candles AS z ON z.coin = g.coin AND z.interval = '1m' AND z.open_time_ms = g.t1"""
"""peers.md §3's rollup_bench.py query on this schema (skip-scan over the coins once analyzed)."""


def minutes(coin: str, start: int, count: int, rng: np.random.Generator) -> list[CandleRow]:
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, count)))
    return [
        CandleRow(coin, "1m", T0_MS + (start + i) * MINUTE_MS, T0_MS + (start + i + 1) * MINUTE_MS - 1,
                  c, c + 0.5, c - 0.5, c + 0.1, 2.0, 3, True)
        for i, c in enumerate(closes.tolist())
    ]


def per_level(statements: list[tuple[float, str]], ended: float) -> dict[str, float]:
    """Seconds per rollup level (its batch, upsert and queue statements) and the commit, from the
    start times of the statements ``roll_pending`` ran (each level begins by emptying its batch)."""
    marks = [(t, sql) for t, sql in statements if sql.startswith("DELETE FROM temp.rollup_batch") or sql == "COMMIT"]
    names = [level.interval for level in LEVELS] + ["commit"]
    bounds = [t for t, _ in marks] + [ended]
    return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}


def io_floor(conn: sqlite3.Connection, now_ms: int) -> float:
    """What an hour's rollup cannot avoid, timed: one range read of the hour's minutes of every
    coin (aggregated, not grouped), then an executemany rewrite of the rows the run just wrote,
    in one transaction, into the pages they live in. The WAL is truncated after, untimed."""
    rows = conn.execute(
        "SELECT * FROM candle_rollups WHERE rolled_up_at_ms = ? ORDER BY coin, interval, open_time_ms", (now_ms,)
    ).fetchall()
    started = time.perf_counter()
    conn.execute(
        "SELECT count(*), max(high), min(low), sum(volume), sum(trades) FROM candles "
        "WHERE interval = '1m' AND open_time_ms >= ? AND open_time_ms < ?", (now_ms - HOUR_MS, now_ms)
    ).fetchone()
    with checkpoint_at_the_end(conn), write_transaction(conn):
        conn.executemany(
            "INSERT INTO candle_rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
            "volume = excluded.volume, trades = excluded.trades, minutes = excluded.minutes, "
            "complete = excluded.complete, rolled_up_at_ms = excluded.rolled_up_at_ms", rows,
        )
    elapsed = time.perf_counter() - started
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=10_000)
    parser.add_argument("--hours", type=int, default=3, help="new hours rolled up one at a time (median)")
    parser.add_argument("--duckdb", action="store_true")
    args = parser.parse_args()
    coins = [f"C{i:03d}" for i in range(args.coins)]
    rng = np.random.default_rng(7)
    span = args.minutes - args.minutes % 60

    with tempfile.TemporaryDirectory() as tmp, open_memory(Path(tmp) / "bench.db") as conn:
        started = time.perf_counter()
        for coin in coins:
            write_candles(conn, minutes(coin, 0, span, rng), newest_open_by_coin={}, interval="1m",
                          close_ended_before_ms=0, now_ms=T0_MS)
        print(f"{args.coins} coins x {span:,} minutes = {args.coins * span:,} rows loaded in {time.perf_counter() - started:.1f} s")

        now = T0_MS + span * MINUTE_MS
        started = time.perf_counter()
        first = roll_pending(conn, now)
        print(f"first incremental rollup of everything     {(time.perf_counter() - started) * 1e3:9.1f} ms  {first}")
        optimize(conn)  # planner statistics, as every maintenance run leaves them

        rolls, checkpoints, floors, levels = [], [], [], []
        for hour in range(args.hours):
            for coin in coins:
                write_candles(conn, minutes(coin, span + 60 * hour, 60, rng), newest_open_by_coin={}, interval="1m",
                              close_ended_before_ms=0, now_ms=now)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # each hour starts from the same WAL state
            now += HOUR_MS
            statements: list[tuple[float, str]] = []
            conn.set_trace_callback(lambda sql: statements.append((time.perf_counter(), sql)))
            started = time.perf_counter()
            with checkpoint_at_the_end(conn):  # as run_maintenance rolls up
                hourly = roll_pending(conn, now)
            rolls.append(time.perf_counter() - started)
            conn.set_trace_callback(None)
            levels.append(per_level(statements, started + rolls[-1]))
            started = time.perf_counter()
            checkpoint(conn, 2_000)
            checkpoints.append(time.perf_counter() - started)
            floors.append(io_floor(conn, now))
        print(f"incremental rollup of one new hour          {statistics.median(rolls) * 1e3:9.1f} ms  {hourly}"
              f"   (median of {args.hours}: {', '.join(f'{r * 1e3:.1f}' for r in rolls)})")
        print("  of which " + ", ".join(f"{name} {statistics.median(level[name] for level in levels) * 1e3:.1f} ms"
                                     for name in levels[0]))
        print(f"  then maintenance's checkpoint of it       {statistics.median(checkpoints) * 1e3:9.1f} ms")
        print(f"SQLite floor: read its minutes, rewrite its rows {statistics.median(floors) * 1e3:4.1f} ms"
              f"   (the incremental run = {statistics.median(rolls) / statistics.median(floors):.1f} x)")
        yardstick = []
        for _ in range(args.hours):
            started = time.perf_counter()
            conn.execute(ONE_HOUR_ROLLUP, {"since": now - HOUR_MS}).fetchall()
            yardstick.append(time.perf_counter() - started)
        print(f"peers.md one-hour rollup SELECT, 1h only    {statistics.median(yardstick) * 1e3:9.1f} ms"
              f"   (the incremental run = {statistics.median(rolls) / statistics.median(yardstick):.1f} x)")

        clock_now = now
        started = time.perf_counter()
        rebuilt = rebuild_rollups(conn, Ledger(conn, lambda: clock_now))
        per_day_s = time.perf_counter() - started
        start_day = T0_MS - T0_MS % DAY_MS
        started = time.perf_counter()
        whole = rebuild_range(conn, start_day, clock_now + DAY_MS, clock_now)
        whole_s = time.perf_counter() - started
        print(f"full rebuild, one transaction per day      {per_day_s * 1e3:9.1f} ms  {dict(rebuilt.buckets_rolled)}")
        print(f"same SQL as one GROUP BY per interval       {whole_s * 1e3:9.1f} ms  {whole}"
              f"   (rebuild = {per_day_s / whole_s:.2f} x)")

        if args.duckdb:
            import duckdb
            import pyarrow as pa

            started = time.perf_counter()
            columns: dict[str, list[object]] = {"coin": [], "open_time_ms": [], "open": [], "high": [], "low": [],
                                                "close": [], "volume": [], "trades": []}
            for coin in coins:
                for row in candles_of(conn, coin, "1m"):
                    for name in columns:
                        columns[name].append(getattr(row, name))
            table = pa.table(columns)
            fetch_s = time.perf_counter() - started
            started = time.perf_counter()
            duck = duckdb.connect()
            duck.register("minutes", table)
            hours = duck.sql(
                "SELECT coin, open_time_ms // 3600000 * 3600000 AS hour, arg_min(open, open_time_ms) AS open, "
                "max(high) AS high, min(low) AS low, arg_max(close, open_time_ms) AS close, sum(volume) AS volume, "
                "sum(trades) AS trades, count(*) AS minutes FROM minutes GROUP BY ALL"
            ).fetchall()
            duck_s = time.perf_counter() - started
            print(f"DuckDB: sqlite3 -> Arrow {fetch_s * 1e3:9.1f} ms, then 1h GROUP BY {duck_s * 1e3:7.1f} ms"
                  f"  ({len(hours):,} hours; total = {(fetch_s + duck_s) / whole_s:.2f} x SQLite's three intervals)")


if __name__ == "__main__":
    main()
