"""Rollup cost: the hourly incremental rollup of 200 coins, and a full rebuild against DuckDB.

    .venv/bin/python bench/rollups.py [--coins 200] [--minutes 10000] [--hours 5] [--rounds 2]

1. Loads ``coins × minutes`` closed 1-minute candles (``memory.candles.upsert_candles``, one
   transaction per coin: the triggers queue them as the streamer's flushes do), rolls them up
   once, then appends one more hour for every coin and times the incremental rollup of it as
   maintenance runs it (autocheckpoint deferred to its checkpoint); median of ``--hours``.
   Yardstick, same run: what an hour's rollup cannot avoid, in SQLite itself: one statement
   aggregating the hour's 12,000 minutes, plus one statement inserting as many fresh rows as the
   run writes (2,600, or 2,800 when a day ends) into ``candle_rollups`` the cheapest way SQLite
   can (``floor``), rolled back, no commit. The run's CPU time is printed beside its wall time:
   on a loaded machine the wall time is mostly waiting for a core.
2. Times the full rebuild (``maintenance.rebuild_rollups``: one transaction per day) against
   DuckDB's ``sqlite_scan`` of the same file computing the same rollups (5m by GROUP BY of the
   minutes, 1h and 1d from it, kept in DuckDB, nothing written back), interleaved, best of
   ``--rounds``. The sqlite extension on PyPI (``duckdb-extension-sqlite-scanner``) exists only
   for DuckDB 1.5.5, and this project runs DuckDB 2 (loading it there crashes), so the yardstick
   runs in a subprocess on DuckDB 1.5.5 installed with pip beside the venv
   (``<venv>/bench-duckdb-1.5.5``, once). When that install fails (no registry) the yardstick is
   DuckDB 2 over an Arrow table read from SQLite through Python, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from figures import report

from market_assets.ledger import Ledger
from market_assets.maintenance import rebuild_rollups
from market_assets.memory import open_memory
from market_assets.memory.candles import CandleRow, upsert_candles
from market_assets.memory.connection import write_transaction
from market_assets.memory.retention import checkpoint, checkpoint_at_the_end, optimize
from market_assets.memory.rollups import ROLLING_CACHE_KIB, roll_pending

T0_MS = 1_794_960_000_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DUCKDB_SCANNER = "1.5.5"
SIDE_INSTALL = Path(sys.prefix) / f"bench-duckdb-{DUCKDB_SCANNER}"

DUCK_ROLLUPS = """
    CREATE OR REPLACE TEMP TABLE r5 AS SELECT coin, open_time_ms // 300000 * 300000 AS b,
        arg_min(open, open_time_ms) AS o, max(high) AS h, min(low) AS l, arg_max(close, open_time_ms) AS c,
        sum(volume) AS v, sum(trades) AS n, count(*) AS m
    FROM {source} WHERE interval = '1m' AND closed = 1 GROUP BY ALL;
    CREATE OR REPLACE TEMP TABLE r1h AS SELECT coin, b // 3600000 * 3600000 AS b, arg_min(o, b) AS o, max(h) AS h,
        min(l) AS l, arg_max(c, b) AS c, sum(v) AS v, sum(n) AS n, sum(m) AS m FROM r5 GROUP BY ALL;
    CREATE OR REPLACE TEMP TABLE r1d AS SELECT coin, b // 86400000 * 86400000 AS b, arg_min(o, b) AS o, max(h) AS h,
        min(l) AS l, arg_max(c, b) AS c, sum(v) AS v, sum(n) AS n, sum(m) AS m FROM r1h GROUP BY ALL;
"""
"""The same rollups the rebuild writes (5m from the minutes, 1h from 5m, 1d from 1h)."""

SCANNER_CHILD = """
import json, pathlib, sys, time
import duckdb, duckdb_extension_sqlite_scanner as ext
path, sql = sys.argv[1], sys.argv[2]
duck = duckdb.connect()
duck.execute("SET enable_progress_bar = false")
duck.execute(f"LOAD '{next(pathlib.Path(ext.__file__).parent.rglob('*.duckdb_extension'))}'")
started = time.perf_counter()
duck.execute(sql.format(source=f"sqlite_scan('{path}', 'candles')"))
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "buckets": duck.sql("SELECT count(*) FROM r5").fetchone()[0],
                  "duckdb": duckdb.__version__}))
"""


def minutes(coin: str, start: int, count: int, rng: np.random.Generator) -> list[CandleRow]:
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, count)))
    volumes = rng.uniform(0.1, 10.0, count)
    return [
        CandleRow(coin, "1m", T0_MS + (start + i) * MINUTE_MS, T0_MS + (start + i + 1) * MINUTE_MS - 1,
                  c, c + 0.5, c - 0.5, c + 0.1, v, 3, True, True)
        for i, (c, v) in enumerate(zip(closes.tolist(), volumes.tolist()))
    ]


def load(conn: sqlite3.Connection, coins: list[str], start: int, count: int, rng: np.random.Generator, now_ms: int) -> None:
    """Closed minutes through the streamer's upsert (its triggers queue the rollups), one
    transaction per coin. Not ``write_candles``: its per-flush close of ended buckets scans the
    table, which makes loading 2M rows take minutes without changing what is stored."""
    for coin in coins:
        with write_transaction(conn):
            upsert_candles(conn, minutes(coin, start, count, rng), now_ms)


def per_level(statements: list[tuple[float, str]], ended: float) -> dict[str, float]:
    """Seconds per rollup level (its roll statement and the queue statements after it) and the
    commit, from the start times of the statements ``roll_pending`` ran."""
    marks = [t for t, sql in statements if sql.startswith("DELETE FROM rollup_rows") or sql == "COMMIT"]
    names = ["5m", "1h", "1d", "commit"]
    bounds = marks + [ended]
    return {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}


def floor(conn: sqlite3.Connection, now_ms: int) -> float:
    """What an hour's rollup cannot avoid, in SQLite: aggregate the hour's minutes of every coin in
    one statement, and insert as many fresh rows as the run wrote into ``candle_rollups`` in one
    statement (rolled back; the rows are the run's own, moved a year on so none exists yet), the
    cheapest way SQLite inserts them: ``OR IGNORE`` (no statement journal), in the page cache the
    rollup itself gets (``rollups.ROLLING_CACHE_KIB``). The commit is not in it."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS floor_rows AS SELECT * FROM candle_rollups WHERE false")
    conn.execute("DELETE FROM temp.floor_rows")
    conn.execute("INSERT INTO temp.floor_rows SELECT coin, interval, open_time_ms + 366 * 86400000, open, high, low, "
                 "close, volume, trades, minutes, complete, rolled_up_at_ms, confirmed_minutes FROM candle_rollups WHERE rolled_up_at_ms = ?",
                 (now_ms,))
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{ROLLING_CACHE_KIB}")
    started = time.perf_counter()
    conn.execute("SELECT count(*), max(high), min(low), sum(volume), sum(trades) FROM candles "
                 "WHERE interval = '1m' AND open_time_ms >= ? AND open_time_ms < ?", (now_ms - HOUR_MS, now_ms)).fetchone()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR IGNORE INTO candle_rollups SELECT * FROM temp.floor_rows ORDER BY coin, interval, open_time_ms")
    elapsed = time.perf_counter() - started
    conn.execute("ROLLBACK")
    conn.execute(f"PRAGMA cache_size = {cache}")
    return elapsed


def duckdb_scanner(path: Path) -> tuple[float, str] | None:
    """Seconds of DuckDB's ``sqlite_scan`` rollups of the file, in a subprocess on DuckDB 1.5.5."""
    if not (SIDE_INSTALL / "duckdb_extension_sqlite_scanner").exists():
        print(f"installing duckdb=={DUCKDB_SCANNER} and its sqlite scanner into {SIDE_INSTALL} (once)", flush=True)
        installed = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(SIDE_INSTALL),
             f"duckdb=={DUCKDB_SCANNER}", f"duckdb-extension-sqlite-scanner=={DUCKDB_SCANNER}"],
            capture_output=True, text=True,
        )
        if installed.returncode != 0:
            print(f"  could not install it: {installed.stderr.strip().splitlines()[-1:]}")
            return None
    child = subprocess.run([sys.executable, "-c", SCANNER_CHILD, str(path), DUCK_ROLLUPS],
                           capture_output=True, text=True, env={"PYTHONPATH": str(SIDE_INSTALL)})
    if child.returncode != 0:
        print(f"  DuckDB sqlite_scan failed: {child.stderr.strip()[-300:]}")
        return None
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result["seconds"], f"DuckDB {result['duckdb']} sqlite_scan GROUP BY ({result['buckets']:,} 5m buckets)"


def duckdb_over_arrow(conn: sqlite3.Connection) -> tuple[float, str]:
    """The offline stand-in: the minutes read into Arrow through Python's sqlite3, then DuckDB."""
    import duckdb
    import pyarrow as pa

    started = time.perf_counter()
    rows = conn.execute("SELECT coin, interval, open_time_ms, open, high, low, close, volume, trades, closed "
                        "FROM candles WHERE interval = '1m'").fetchall()
    names = ["coin", "interval", "open_time_ms", "open", "high", "low", "close", "volume", "trades", "closed"]
    minutes_table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})
    duck = duckdb.connect()
    duck.register("minutes", minutes_table)
    duck.execute(DUCK_ROLLUPS.format(source="minutes"))
    return time.perf_counter() - started, f"DuckDB {duckdb.__version__} over Arrow read via sqlite3 (no sqlite scanner)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=10_000)
    parser.add_argument("--hours", type=int, default=5, help="new hours rolled up one at a time (median)")
    parser.add_argument("--rounds", type=int, default=2, help="rebuild and DuckDB rounds, interleaved (best)")
    args = parser.parse_args()
    coins = [f"C{i:03d}" for i in range(args.coins)]
    rng = np.random.default_rng(7)
    span = args.minutes - args.minutes % 60

    with tempfile.TemporaryDirectory() as tmp, open_memory(Path(tmp) / "bench.db") as conn:
        path = Path(tmp) / "bench.db"
        started = time.perf_counter()
        load(conn, coins, 0, span, rng, T0_MS)
        conn.execute("DELETE FROM pending_features")  # another job's queue
        print(f"{args.coins} coins x {span:,} minutes = {args.coins * span:,} rows loaded in {time.perf_counter() - started:.1f} s")

        now = T0_MS + span * MINUTE_MS
        started = time.perf_counter()
        first = roll_pending(conn, now)
        print(f"first incremental rollup of everything     {(time.perf_counter() - started) * 1e3:9.1f} ms  {first}")
        optimize(conn)  # planner statistics, as every maintenance run leaves them

        rolls, cpus, checkpoints, floors, levels = [], [], [], [], []
        for hour in range(args.hours):
            load(conn, coins, span + 60 * hour, 60, rng, now)
            conn.execute("DELETE FROM pending_features")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # each hour starts from the same WAL state
            now += HOUR_MS
            statements: list[tuple[float, str]] = []
            conn.set_trace_callback(lambda sql: statements.append((time.perf_counter(), sql)))
            started, cpu = time.perf_counter(), time.process_time()
            with checkpoint_at_the_end(conn):  # as run_maintenance rolls up
                hourly = roll_pending(conn, now)
            rolls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            conn.set_trace_callback(None)
            levels.append(per_level(statements, started + rolls[-1]))
            print(f"  hour {hour + 1}: {rolls[-1] * 1e3:6.1f} ms  {hourly}")
            started = time.perf_counter()
            checkpoint(conn, 2_000)
            checkpoints.append(time.perf_counter() - started)
            floors.append(floor(conn, now))
        roll_ms, floor_ms = statistics.median(rolls) * 1e3, statistics.median(floors) * 1e3
        print(f"incremental rollup of one new hour          {roll_ms:9.1f} ms   (median of {args.hours}; "
              f"CPU {statistics.median(cpus) * 1e3:.1f} ms)")
        print("  of which " + ", ".join(f"{name} {statistics.median(level[name] for level in levels) * 1e3:.1f} ms"
                                     for name in levels[0]))
        print(f"  then maintenance's checkpoint of it       {statistics.median(checkpoints) * 1e3:9.1f} ms")
        print(f"SQLite floor: aggregate the hour's minutes, insert as many rows {floor_ms:.1f} ms"
              f"   (the incremental run = {roll_ms / floor_ms:.1f} x)")
        report("rollups", "incremental rollup of one hour, 200 coins", roll_ms, "ms", goal="<= 20 ms",
               baseline=f"SQLite floor (aggregate the hour's 12,000 minutes + insert its rows) {floor_ms:.1f} ms",
               limit=20.0, direction="max")

        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rebuilds, ducks, yardstick = [], [], ""
        for _ in range(args.rounds):
            clock_now = now
            started = time.perf_counter()
            rebuilt = rebuild_rollups(conn, Ledger(conn, lambda: clock_now))
            rebuilds.append(time.perf_counter() - started)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            duck = duckdb_scanner(path) or duckdb_over_arrow(conn)
            ducks.append(duck[0])
            yardstick = duck[1]
            print(f"  full rebuild {rebuilds[-1]:6.2f} s  {dict(rebuilt.buckets_rolled)};  {yardstick} {ducks[-1]:6.2f} s")
        ratio = min(rebuilds) / min(ducks)
        print(f"full rebuild, one transaction per day      {min(rebuilds):9.2f} s   (best of {args.rounds})")
        print(f"{yardstick}  {min(ducks):.2f} s   (rebuild = {ratio:.2f} x)")
        report("rollups", "full rollup rebuild / DuckDB", ratio, "x", goal="<= 1.0x",
               baseline=f"{yardstick} {min(ducks):.2f} s", limit=1.0, direction="max")


if __name__ == "__main__":
    main()
