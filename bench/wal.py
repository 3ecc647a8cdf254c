"""WAL size high-water mark while candles stream in, two dashboard readers poll, and maintenance runs.

    .venv/bin/python bench/wal.py [--rows 1000000] [--coins 200] [--every 5] [--only bound|maintenance|neither]

One writer process upserts closed 1-minute candles time-major (every coin for minute m, then
m + 1: the streamer's order) in 1,000-row transactions through ``memory.candles.write_candles``,
and after each commit applies the streamer's own WAL bound (``memory.retention.WalBound``, as
``streamer.writer.Writer`` does) in the ``bound`` configuration.
Two reader processes loop over dashboard-like queries, each its own short read transaction (one
coin's last 24 h aggregate; ``memory.dashboard.window_counts`` of the last hour, peers.md §3 (c)).
With maintenance, this process runs ``maintenance.run_maintenance`` every ``--every`` seconds on
its own connection. A thread samples the size of the ``-wal`` file every 5 ms.

The figure is the high-water mark of what the product runs (the writer's bound and maintenance;
goal ≤ 64 MB); its baseline is the same run's ``neither`` configuration (SQLite's automatic
checkpoint alone), which shows why the bound exists: with readers always in flight the automatic
checkpoint never copies the last commit's frames, so the WAL never restarts and grows by every
commit (2.4 MB per 1,000-row commit here). ``maintenance`` (its 5 s checkpoint alone) is not run
unless asked for: the product never runs without the writer's bound.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect
from market_assets.memory.candles import CandleRow, write_candles
from market_assets.memory.connection import close
from market_assets.memory.dashboard import window_counts
from market_assets.memory.retention import WalBound
from market_assets.registry import CANDLES

from figures import report

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
MB = 1024 * 1024


def writer(path: Path, rows: int, coins: int, batch: int, t0_ms: int, bound: bool, done: Event,
           truncations: "mp.Queue[tuple[int, int, int]]") -> None:
    conn = connect(path)
    wal_bound = WalBound(path)
    names = [f"C{i:03d}" for i in range(coins)]
    chunk: list[CandleRow] = []
    for k in range(rows):
        minute, coin = divmod(k, coins)
        open_ms = t0_ms + minute * MINUTE_MS
        price = 100.0 + (k % 977) * 0.01
        chunk.append(CandleRow(names[coin], "1m", open_ms, open_ms + MINUTE_MS - 1,
                               price, price + 0.5, price - 0.5, price + 0.1, 2.0, 3, True))
        if len(chunk) == batch or k == rows - 1:
            write_candles(conn, chunk, newest_open_by_coin={}, interval="1m", close_ended_before_ms=0,
                          now_ms=int(time.time() * 1000))
            chunk = []
            if bound:
                wal_bound(conn)
    close(conn)
    truncations.put((wal_bound.truncations, wal_bound.held_back, wal_bound.retries_refused))
    done.set()


def reader(path: Path, which: int, coins: int, done: Event, counts: "mp.Queue[tuple[int, int]]") -> None:
    conn = connect(path)
    queries = 0
    while not done.is_set():
        now_ms = int(time.time() * 1000)
        if which == 0:
            conn.execute(
                "SELECT count(*), avg(close), max(high), min(low), sum(volume) FROM candles "
                "WHERE coin = ? AND interval = '1m' AND open_time_ms >= ?",
                (f"C{queries % coins:03d}", now_ms - 24 * HOUR_MS),
            ).fetchone()
        else:
            window_counts(conn, CANDLES.data, now_ms - HOUR_MS)
        queries += 1
    conn.close()
    counts.put((which, queries))


def run(rows: int, coins: int, every_s: float | None, bound: bool) -> int:
    """One configuration; returns its WAL high-water mark in bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wal.db"
        close(connect(path))  # create and migrate before the processes race to
        wal = Path(f"{path}-wal")
        minutes = -(-rows // coins)
        now_ms = int(time.time() * 1000)
        t0_ms = now_ms - now_ms % MINUTE_MS - (minutes + 1) * MINUTE_MS  # every minute closed by the end

        ctx = mp.get_context("spawn")
        done = ctx.Event()
        counts: mp.Queue[tuple[int, int]] = ctx.Queue()
        readers = [ctx.Process(target=reader, args=(path, i, coins, done, counts)) for i in range(2)]
        for process in readers:
            process.start()
        time.sleep(1.0)  # readers connected and looping before the first write
        high = [0]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                try:
                    high[0] = max(high[0], wal.stat().st_size)
                except FileNotFoundError:
                    pass
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.perf_counter()
        truncations: mp.Queue[tuple[int, int, int]] = ctx.Queue()
        write = ctx.Process(target=writer, args=(path, rows, coins, 1_000, t0_ms, bound, done, truncations))
        write.start()
        maintenance_s: list[float] = []
        busy = 0
        if every_s is not None:
            conn = connect(path)
            ledger = Ledger(conn)
            while not done.wait(every_s):
                begun = time.perf_counter()
                result = run_maintenance(conn, ledger)
                maintenance_s.append(time.perf_counter() - begun)
                busy += bool(result.checkpoint and result.checkpoint.busy)
            close(conn)
        write.join()
        elapsed = time.perf_counter() - started
        for process in readers:
            process.join()
        sampling.set()
        sampler.join()
        queries = dict(counts.get() for _ in readers)
        truncated, held_back, retries_refused = truncations.get()

    label = ("writer's WAL bound, " if bound else "no writer bound, ") + (
        "no maintenance" if every_s is None else f"maintenance every {every_s:g} s")
    print(f"{label}: {rows:,} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s); "
          f"readers {queries[0] / elapsed:,.0f} + {queries[1] / elapsed:,.0f} q/s")
    print(f"  WAL high-water mark {high[0] / MB:,.1f} MB"
          + (f"; the writer truncated it {truncated} times; {held_back} waited attempts and "
             f"{retries_refused} short retries refused" if bound else ""))
    if maintenance_s:
        print(f"  {len(maintenance_s)} maintenance runs, median {statistics.median(maintenance_s) * 1e3:,.0f} ms, "
              f"max {max(maintenance_s) * 1e3:,.0f} ms; checkpoint held back by readers in {busy}")
    return high[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between maintenance runs")
    parser.add_argument("--only", choices=("bound", "maintenance", "neither"),
                        help="run one configuration (default: bound, then neither)")
    args = parser.parse_args()
    configurations = {"bound": (args.every, True), "maintenance": (args.every, False), "neither": (None, False)}
    chosen = [args.only] if args.only else ["bound", "neither"]
    high = {name: run(args.rows, args.coins, *configurations[name]) for name in chosen}
    if "bound" in high:
        baseline = (f"automatic checkpoint alone {high['neither'] / MB:,.0f} MB" if "neither" in high
                    else "automatic checkpoint alone: not run (--only)")
        report("wal", f"WAL high-water mark, {args.rows:,} rows + 2 readers + maintenance", high["bound"] / MB, "MB",
               goal="<= 64 MB", baseline=baseline, limit=64, direction="max")


if __name__ == "__main__":
    main()
