"""Features run cost: one new closed minute for each of 200 coins, against TA-Lib's own compute.

    .venv/bin/python bench/features.py [--coins 200] [--bars 4000 40000] [--repeat 5]

For each history length: load the history through the streamer's writer, run the features job
once over all of it (the full recompute), then append one closed minute per coin and time the
incremental run (median of ``--repeat``). Compared, in the same process and on the same closes:
TA-Lib over the tails a run needs (``tail_bars`` + 1 per coin, arrays already in memory) and
TA-Lib batch over each coin's whole history.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from market_assets.indicators import INDICATORS, compute, run_features
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.memory.candles import CandleRow, write_candles

from figures import report  # noqa: E402

T0_MS = 1_794_960_000_000
MINUTE_MS = 60_000


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def rows(coin: str, start: int, closes: np.ndarray) -> list[CandleRow]:
    return [
        CandleRow(coin, "1m", T0_MS + (start + i) * MINUTE_MS, T0_MS + (start + i + 1) * MINUTE_MS - 1,
                  c, c, c, c, 1.0, 1, True)
        for i, c in enumerate(closes.tolist())
    ]


def bench(coins: int, bars: int, repeat: int) -> None:
    rng = np.random.default_rng(42)
    history = {f"C{i:03d}": 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, bars + repeat))) for i in range(coins)}
    with tempfile.TemporaryDirectory() as tmp, open_memory(Path(tmp) / "bench.db") as conn:
        clock = Clock(T0_MS + (bars + repeat + 1) * MINUTE_MS)
        ledger = Ledger(conn, clock)
        started = time.perf_counter()
        for coin, closes in history.items():
            write_candles(conn, rows(coin, 0, closes[:bars]), newest_open_by_coin={}, interval="1m",
                          close_ended_before_ms=0, now_ms=clock())
        load_s = time.perf_counter() - started

        started = time.perf_counter()
        full = run_features(conn, ledger)
        full_s = time.perf_counter() - started

        runs = []
        for k in range(repeat):
            for coin, closes in history.items():
                write_candles(conn, rows(coin, bars + k, closes[bars + k:bars + k + 1]), newest_open_by_coin={},
                              interval="1m", close_ended_before_ms=0, now_ms=clock())
            started = time.perf_counter()
            result = run_features(conn, ledger)
            runs.append(time.perf_counter() - started)
            assert result.rows_written == coins
        incremental_s = statistics.median(runs)

    tail = INDICATORS.tail_bars + 1
    tails = [np.ascontiguousarray(c[bars - tail + 1:bars + 1]) for c in history.values()]
    wholes = [np.ascontiguousarray(c[:bars + 1]) for c in history.values()]
    talib_tail_s = statistics.median(_time(lambda: [compute(t) for t in tails]) for _ in range(repeat))
    talib_full_s = statistics.median(_time(lambda: [compute(w) for w in wholes]) for _ in range(3))

    print(f"{coins} coins x {bars:,} bars held (load {load_s:.1f} s, {full.rows_written:,} feature rows)")
    print(f"  full recompute (first run, every bar)   {full_s * 1e3:9.1f} ms")
    print(f"  incremental run, 1 new minute per coin  {incremental_s * 1e3:9.1f} ms"
          f"   = {incremental_s / full_s:.4f} x full recompute")
    print(f"  TA-Lib alone on the needed tails        {talib_tail_s * 1e3:9.1f} ms"
          f"   (incremental run = {incremental_s / talib_tail_s:.1f} x; {tail:,} bars per coin)")
    print(f"  TA-Lib batch over the whole history     {talib_full_s * 1e3:9.1f} ms"
          f"   (incremental run = {incremental_s / talib_full_s:.2f} x)")
    report("features", f"incremental run / TA-Lib on the tails, {bars:,} bars held", incremental_s / talib_tail_s, "x",
           goal="none of its own (flat as history grows)", baseline=f"TA-Lib on the tails {talib_tail_s * 1e3:.1f} ms",
           limit=None)


def _time(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", type=int, default=200)
    parser.add_argument("--bars", type=int, nargs="+", default=[4_000, 40_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for bars in args.bars:
        bench(args.coins, bars, args.repeat)


if __name__ == "__main__":
    main()
