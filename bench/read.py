"""Reading the memory (SPEC §11, issue 15): the reader against the yardsticks a quant would use instead.

    .venv/bin/python bench/read.py [--coins 20] [--days 30] [--hourly-coins 200] [--year-days 365]
                                   [--http-rows 100000] [--rounds 3] [--cache /tmp/market-bench-read]

Four figures, each against a yardstick measured in the same run (rounds interleaved, best of
``--rounds`` for each side):

a. ``--coins`` × ``--days`` of 1-minute candles (864,000 rows) into pandas through
   ``MarketReader.candles(coins, "1m", start, end)``, as a ratio to DuckDB's ``sqlite_scan`` of
   the same file → Arrow → pandas of the same rows in the same order (goal ≤ 1.0×): the columnar
   engine already in our dependencies reading our file directly, with no Python per row. Its
   sqlite extension exists on PyPI for DuckDB 1.5.5 only, so it runs in a subprocess on the side
   install ``bench/rollups.py`` makes (``<venv>/bench-duckdb-1.5.5``); the reader's process
   start is not timed, neither is the yardstick's (DuckDB's import, the extension's load).
   Measured twice: with the minutes only in SQLite, and with every finished day also in the
   Parquet archive (stamped), where the reader may take them from either.
b. 1h bars of ``--hourly-coins`` × ``--days`` through ``candles(None, "1h", ...)``, as a ratio to
   a pandas resample, ``groupby(["coin", pd.Grouper(key="open_time", freq="1h")])``
   (first/max/min/last/sum), of the same 1-minute rows already in a DataFrame (goal ≤ 0.2×):
   what a strategy does without rollups, minus loading the minutes at all.
c. A year (``--year-days``) of 1-minute candles of one coin, archived then pruned from the
   memory by maintenance, read through ``candles`` (goal ≤ 1 s, an absolute goal); and the
   archive's bytes per 1-minute row (goal ≤ 35), on the ``--coins``-coin days of (a) and, for
   information, on the one-coin days of the year.
d. ``GET /api/v1/candles`` of ``--http-rows`` 1-minute rows as an Arrow IPC stream, served by
   uvicorn in a child process as ``market api`` serves, read into a ``pyarrow.Table`` by the
   client, as a ratio to ``candles(..., output="arrow")`` of the same rows in this process
   (goal ≤ 1.5×): what HTTP (encoding, the socket, decoding) adds to the read itself.

Prices are realistic for the archive's sake: each coin a random walk at its own price level
(0.1 to 50,000) quantized to 5 significant digits, volumes to the coin's size decimals. The
memories are built through the memory's own writers (``upsert_candles`` in 1,024-row statements,
``roll_pending``, ``archive.write_day``, ``run_maintenance``) and cached under ``--cache``, keyed
by their parameters, the schema version and the archive module's source, so a second run only
measures. The data ends on a fixed day in the past (2026-11-01), read at the wall clock.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import repeat
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# bench/ is on sys.path: this file runs as a script.
from figures import report

from market_assets import archive
from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect, write_transaction
from market_assets.memory.candles import upsert_candles
from market_assets.memory.connection import close
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.retention import optimize
from market_assets.memory.rollups import roll_pending
from market_assets.memory.schema import SCHEMA_VERSION
from market_assets.read import MarketReader

MINUTE_MS = 60_000
DAY_MS = 86_400_000
END_MS = 1_793_491_200_000
"""2026-11-01 00:00 UTC: every memory's data ends here, finished days only."""
ROOT = Path(__file__).resolve().parents[1]
SIDE_INSTALL = Path(sys.prefix) / "bench-duckdb-1.5.5"
ARROW_STREAM = "application/vnd.apache.arrow.stream"

SCANNER_CHILD = """
import json, pathlib, sys, time
import duckdb, duckdb_extension_sqlite_scanner as ext, pandas
path, coins, start, end = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
duck = duckdb.connect()
duck.execute("SET enable_progress_bar = false")
duck.execute(f"LOAD '{next(pathlib.Path(ext.__file__).parent.rglob('*.duckdb_extension'))}'")
listed = ", ".join(f"'{coin}'" for coin in coins)
sql = (f"SELECT coin, open_time_ms, open, high, low, close, volume, trades, closed, confirmed "
       f"FROM sqlite_scan('{path}', 'candles') WHERE interval = '1m' AND coin IN ({listed}) "
       f"AND open_time_ms >= {start} AND open_time_ms < {end} ORDER BY coin, open_time_ms")
duck.sql(sql.replace("ORDER BY", "LIMIT 1 --")).to_arrow_table().to_pandas()  # warm, as the reader is: not timed
started = time.perf_counter()
frame = duck.sql(sql).to_arrow_table().to_pandas()
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rows": len(frame), "duckdb": duckdb.__version__}))
"""
"""The yardstick of (a): DuckDB 1.5.5 ``sqlite_scan`` of the candles, to Arrow, to pandas, timed
from the query on, after one small query (as the reader is warmed by one: pandas imported, the
file opened)."""


# ---- the data ----


def significant(values: np.ndarray, digits: int = 5) -> np.ndarray:
    """Values rounded to ``digits`` significant digits, as the doubles of their decimal text."""
    exponent = np.floor(np.log10(np.abs(values))).astype(np.int64) - (digits - 1)
    mantissa = np.round(values * 10.0 ** (-exponent))
    # Division by an exact power of ten is the double nearest the decimal, as float("91234") is.
    return np.where(exponent < 0, mantissa / 10.0 ** np.maximum(-exponent, 0), mantissa * 10.0 ** np.maximum(exponent, 0))


def coin_minutes(index: int, start_ms: int, count: int) -> dict[str, np.ndarray]:
    """``count`` minutes of coin ``C{index:03d}`` from ``start_ms``: a random walk at the coin's own
    price level, 5 significant digits, volumes to the coin's size decimals (the same values every run)."""
    rng = np.random.default_rng([index, start_ms // DAY_MS, count])
    level = 10 ** rng.uniform(-1, 4.7)
    closes = significant(level * np.exp(np.cumsum(rng.normal(0.0, 0.0008, count))))
    opens = np.concatenate(([closes[0]], closes[:-1]))
    spread = np.abs(rng.normal(0.0, 0.0005, (2, count)))
    return {
        "open_time_ms": start_ms + MINUTE_MS * np.arange(count, dtype=np.int64),
        "open": opens,
        "high": significant(np.maximum(opens, closes) * (1 + spread[0])),
        "low": significant(np.minimum(opens, closes) * (1 - spread[1])),
        "close": closes,
        "volume": np.round(rng.lognormal(3.0, 1.5, count), int(rng.integers(0, 5))),
        "trades": rng.poisson(30, count).astype(np.int64),
    }


def coin_names(count: int) -> list[str]:
    return [f"C{i:03d}" for i in range(count)]


def build_memory(path: Path, coins: int, start_ms: int, end_ms: int) -> None:
    """Closed, confirmed minutes of every coin through ``upsert_candles`` (a transaction per coin),
    the universe listing them, and every bucket rolled up as maintenance leaves them."""
    now_ms = end_ms + 5 * MINUTE_MS
    conn = connect(path, clock=lambda: now_ms)
    try:
        names = coin_names(coins)
        upsert_universe(conn, [UniverseRow(name, "", i, 2, 20, False) for i, name in enumerate(names)], now_ms)
        count = (end_ms - start_ms) // MINUTE_MS
        for index, name in enumerate(names):
            data = coin_minutes(index, start_ms, count)
            times = data["open_time_ms"].tolist()
            rows = list(zip(repeat(name), repeat("1m"), times, [t + MINUTE_MS - 1 for t in times], data["open"].tolist(),
                            data["high"].tolist(), data["low"].tolist(), data["close"].tolist(), data["volume"].tolist(),
                            data["trades"].tolist(), repeat(True), repeat(True), strict=False))
            with write_transaction(conn):
                upsert_candles(conn, rows, now_ms)  # type: ignore[arg-type]  (plain tuples in CandleRow's order)
        with write_transaction(conn):
            conn.execute("DELETE FROM pending_features")  # the features job's queue: not this benchmark's
        roll_pending(conn, now_ms)
        optimize(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        close(conn)


def archive_days(path: Path, start_ms: int, end_ms: int) -> list[archive.DayArchive]:
    """Every finished day of ``[start_ms, end_ms)`` written to the archive beside the memory and stamped."""
    now_ms = end_ms + 5 * MINUTE_MS
    conn = connect(path, clock=lambda: now_ms)
    try:
        root = archive.archive_root(path, {})
        return [archive.write_day(conn, root, "candles", day, now_ms) for day in range(start_ms, end_ms, DAY_MS)]
    finally:
        close(conn)


def archive_bytes_per_row(path: Path) -> tuple[float, int]:
    root = archive.archive_root(path, {}) / "candles"
    files = list(root.rglob(archive.PARTITION_FILE))
    rows = sum(int(pq.ParquetFile(f).metadata.num_rows) for f in files)
    return sum(f.stat().st_size for f in files) / rows, rows


def source_key() -> str:
    """The archive's code: a cached archive is rebuilt when the way it is written changes."""
    digest = hashlib.sha256()
    for module in ("market_assets/archive.py", "market_assets/memory/archive.py"):
        digest.update((ROOT / module).read_bytes())
    return digest.hexdigest()[:10]


def cached(cache: Path, name: str, build: Callable[[Path], None], *, base: Path | None = None) -> Path:
    """``<cache>/<name>/market.db``, built once by ``build`` (from a copy of ``base``'s folder if given)."""
    folder = cache / name
    done = folder / "done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        if base is not None:
            shutil.copytree(base.parent, folder)
            done.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build(folder / "market.db")
        done.write_text(f"built in {time.perf_counter() - started:.0f} s\n")
        print(f"built {folder} in {time.perf_counter() - started:.0f} s", flush=True)
    return folder / "market.db"


# ---- timing ----


def best(samples: list[float]) -> float:
    return min(samples)


def seconds(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def ensure_scanner() -> bool:
    if (SIDE_INSTALL / "duckdb_extension_sqlite_scanner").exists():
        return True
    print(f"installing duckdb==1.5.5 and its sqlite scanner into {SIDE_INSTALL} (once)", flush=True)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(SIDE_INSTALL),
         "duckdb==1.5.5", "duckdb-extension-sqlite-scanner==1.5.5"], check=False, capture_output=True, text=True)
    if installed.returncode != 0:
        print(f"  could not install it: {installed.stderr.strip().splitlines()[-1:]}")
    return installed.returncode == 0


def scanner_seconds(path: Path, coins: list[str], start_ms: int, end_ms: int) -> tuple[float, int, str]:
    child = subprocess.run([sys.executable, "-c", SCANNER_CHILD, str(path), json.dumps(coins), str(start_ms), str(end_ms)],
                           check=False, capture_output=True, text=True, env={"PYTHONPATH": str(SIDE_INSTALL)})
    if child.returncode != 0:
        raise SystemExit(f"DuckDB sqlite_scan failed: {child.stderr.strip()[-400:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    return result["seconds"], result["rows"], result["duckdb"]


def into_pandas(path: Path, coins: list[str], start_ms: int, end_ms: int, rounds: int, label: str) -> float:
    """Figure (a) on one memory: the reader's best against the scanner's best, interleaved."""
    reads, scans = [], []
    with MarketReader(path) as reader:
        reader.candles(coins[:1], "1m", start_ms, start_ms + DAY_MS)  # opens its connection: not timed
        for _ in range(rounds):
            elapsed, frame = seconds(lambda: reader.candles(coins, "1m", start_ms, end_ms))
            reads.append(elapsed)
            scan, rows, version = scanner_seconds(path, coins, start_ms, end_ms)
            scans.append(scan)
            print(f"  {label}: reader {elapsed:.3f} s ({len(frame):,} rows)   DuckDB {version} sqlite_scan {scan:.3f} s "
                  f"({rows:,} rows)", flush=True)
            assert len(frame) == rows, "the reader and the yardstick read different rows"
    ratio = best(reads) / best(scans)
    report("read", f"{len(coins)} coins x 1m into pandas / sqlite_scan, {label}", ratio, "x", goal="<= 1.0x",
           baseline=f"DuckDB {version} sqlite_scan -> Arrow -> pandas {best(scans):.3f} s ({rows:,} rows)",
           limit=1.0, direction="max")
    return ratio


def minutes_frame(coins: int, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The 1-minute rows of the memory of (b), as a strategy holding them in pandas would."""
    count = (end_ms - start_ms) // MINUTE_MS
    parts = []
    for index, name in enumerate(coin_names(coins)):
        data = coin_minutes(index, start_ms, count)
        parts.append(pd.DataFrame({"coin": name, "open_time": pd.to_datetime(data.pop("open_time_ms"), unit="ms", utc=True),
                                   **data}))
    return pd.concat(parts, ignore_index=True)


def pandas_hourly(frame: pd.DataFrame) -> pd.DataFrame:
    """The fastest pandas idiom for it measured on 864k rows (pandas 3.1): a ``Grouper`` with the
    frequency, 0.70 s; ``set_index`` then ``groupby().resample("1h")``, 1.1 s;
    ``groupby().resample("1h", on=...)``, 19 s. A slow yardstick would flatter the reader."""
    return (frame.groupby(["coin", pd.Grouper(key="open_time", freq="1h")])
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum", "trades": "sum"}))


# ---- the API in a child process ----


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(db: Path, port: int) -> None:
    """Child process: uvicorn serving the market app, as ``market api`` does (logging at warning)."""
    import uvicorn

    from api import create_app
    from market_assets.settings import Settings

    uvicorn.run(create_app(Settings(db_path=db)), host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def served(db: Path) -> Iterator[str]:
    """The API's base URL once ``/livez`` answers; its process group stopped on the way out
    (SIGTERM, SIGKILL after 10 s)."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--db", str(db), "--port", str(port)],
                             env=environment, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/livez", timeout=1)
                break
            except httpx.TransportError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the API did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def http_arrow(client: httpx.Client, base: str, coins: list[str], start_ms: int, end_ms: int, limit: int) -> pa.Table:
    """One page of the candles route as an Arrow stream (the whole read: ``limit`` holds every row)."""
    params = [("coin", coin) for coin in coins] + [("interval", "1m"), ("start", str(start_ms)), ("end", str(end_ms)),
                                                    ("limit", str(limit))]
    response = client.get(base + "/api/v1/candles", params=params, headers={"accept": ARROW_STREAM})
    response.raise_for_status()
    assert "x-next-cursor" not in response.headers, "the read did not fit one page"
    with pa.ipc.open_stream(response.content) as stream:
        return stream.read_all()


# ---- the run ----


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--hourly-coins", type=int, default=200)
    parser.add_argument("--year-days", type=int, default=365)
    parser.add_argument("--http-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/market-bench-read"))
    parser.add_argument("--only", nargs="+", choices=["pandas", "hourly", "year", "http"], help="these figures only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.db, args.port)
        return
    only = set(args.only or ["pandas", "hourly", "year", "http"])
    start_ms = END_MS - args.days * DAY_MS
    version = f"v{SCHEMA_VERSION}"
    coins = coin_names(args.coins)
    plain = cached(args.cache, f"minutes-{args.coins}x{args.days}d-{version}",
                   lambda path: build_memory(path, args.coins, start_ms, END_MS))

    if "pandas" in only:
        if not ensure_scanner():
            raise SystemExit("figure (a) needs DuckDB 1.5.5's sqlite scanner (pip into the side install)")
        archived = cached(args.cache, f"minutes-{args.coins}x{args.days}d-{version}-archived-{source_key()}",
                          lambda path: print(f"archived {len(archive_days(path, start_ms, END_MS))} days"), base=plain)
        into_pandas(plain, coins, start_ms, END_MS, args.rounds, "minutes in SQLite")
        into_pandas(archived, coins, start_ms, END_MS, args.rounds, "finished days also archived")
        per_row, rows = archive_bytes_per_row(archived)
        print(f"archive of {args.coins} coins x {args.days} days: {per_row:.1f} bytes per row ({rows:,} rows)")
        report("read", f"archive bytes per 1m row ({args.coins}-coin days)", per_row, "B", goal="<= 35 B",
               baseline=f"none (absolute; {rows:,} rows, prices at 5 significant digits)", limit=35, direction="max")

    if "hourly" in only:
        hourly = cached(args.cache, f"minutes-{args.hourly_coins}x{args.days}d-{version}",
                        lambda path: build_memory(path, args.hourly_coins, start_ms, END_MS))
        started = time.perf_counter()
        frame = minutes_frame(args.hourly_coins, start_ms, END_MS)
        print(f"the {len(frame):,} 1-minute rows in a DataFrame for the yardstick: {time.perf_counter() - started:.1f} s")
        reads, resamples = [], []
        with MarketReader(hourly) as reader:
            reader.candles("C000", "1h", start_ms, start_ms + DAY_MS)
            for _ in range(args.rounds):
                elapsed, bars = seconds(lambda: reader.candles(None, "1h", start_ms, END_MS))
                reads.append(elapsed)
                resampled, expected = seconds(lambda: pandas_hourly(frame))
                resamples.append(resampled)
                print(f"  1h bars: reader {elapsed:.3f} s ({len(bars):,} bars)   pandas resample {resampled:.3f} s "
                      f"({len(expected):,} bars)", flush=True)  # type: ignore[arg-type]
                assert len(bars) == len(expected)  # type: ignore[arg-type]
        report("read", f"1h bars of {args.hourly_coins} coins x {args.days} d / pandas resample", best(reads) / best(resamples), "x",
               goal="<= 0.2x", baseline=f"pandas resample (Grouper freq=1h) of {len(frame):,} 1m rows in a DataFrame {best(resamples):.2f} s",
               limit=0.2, direction="max")
        del frame

    if "year" in only:
        year_start = END_MS - args.year_days * DAY_MS

        def archived_year(path: Path) -> None:
            build_memory(path, 1, year_start, END_MS)
            archive_days(path, year_start, END_MS)
            conn = connect(path)
            try:  # at the wall clock: every day of the year is past the minutes' retention
                pruned = run_maintenance(conn, Ledger(conn)).candle_rows_pruned
                print(f"  maintenance pruned {pruned:,} archived minutes from the memory")
            finally:
                close(conn)

        year = cached(args.cache, f"year-1x{args.year_days}d-{version}-{source_key()}", archived_year)
        with sqlite3.connect(f"file:{year}?mode=ro", uri=True) as peek:
            held = peek.execute("SELECT count(*) FROM candles WHERE interval = '1m'").fetchone()[0]
        reads = []
        with MarketReader(year) as reader:
            reader.candles("C000", "1h", year_start, year_start + DAY_MS)
            for _ in range(args.rounds):
                elapsed, bars = seconds(lambda: reader.candles("C000", "1m", year_start, END_MS))
                reads.append(elapsed)
                print(f"  a year of 1m: {elapsed:.3f} s ({len(bars):,} rows; the memory holds {held:,} of them)", flush=True)  # type: ignore[arg-type]
                assert len(bars) == args.year_days * 1440  # type: ignore[arg-type]
        report("read", f"{args.year_days} days of 1m, one coin, from the archive", best(reads), "s", goal="<= 1 s",
               baseline=f"none (absolute; {args.year_days * 1440:,} rows, {held:,} of them still in SQLite)", limit=1.0,
               direction="max")
        per_row, rows = archive_bytes_per_row(year)
        report("read", "archive bytes per 1m row (one-coin days)", per_row, "B", goal="info",
               baseline=f"none ({rows:,} rows, 1,440 a file: each file's footer weighs on few rows)", limit=None)

    if "http" in only:
        per_coin = min(args.http_rows // len(coins[:5]), args.days * 1440)
        chosen = coins[: -(-args.http_rows // per_coin)]
        end_ms = start_ms + per_coin * MINUTE_MS
        https, pythons = [], []
        with served(plain) as base, httpx.Client(timeout=120) as client, MarketReader(plain) as reader:
            http_arrow(client, base, chosen, start_ms, start_ms + 60 * MINUTE_MS, args.http_rows)  # warm: not timed
            reader.candles(chosen, "1m", start_ms, start_ms + 60 * MINUTE_MS, output="arrow")
            for _ in range(args.rounds):
                elapsed, table = seconds(lambda: reader.candles(chosen, "1m", start_ms, end_ms, output="arrow"))
                pythons.append(elapsed)
                over_http, received = seconds(lambda: http_arrow(client, base, chosen, start_ms, end_ms, args.http_rows))
                https.append(over_http)
                print(f"  {table.num_rows:,} rows: Python API {elapsed:.3f} s   HTTP Arrow {over_http:.3f} s", flush=True)  # type: ignore[union-attr]
                assert received.num_rows == table.num_rows  # type: ignore[union-attr]
        report("read", f"HTTP Arrow, {args.http_rows:,} rows / Python API", best(https) / best(pythons), "x", goal="<= 1.5x",
               baseline=f"MarketReader.candles(output='arrow') in process {best(pythons):.3f} s", limit=1.5, direction="max")


if __name__ == "__main__":
    os.environ.pop("MARKET_ARCHIVE", None)
    os.environ.pop("MARKET_DB", None)
    main()
