"""What confirming minutes costs the streamer: CPU seconds per 1,000 frames, commits included,
in this checkout and in a baseline checkout (before confirmation existed), in one run.

    .venv/bin/python bench/confirmation_cost.py [--baseline f40abc7] [--coins 100] [--minutes 60]
                                                [--frames-per-bucket 6] [--rounds 3]

The feed is a live one's shape: every coin's bucket is re-sent ``--frames-per-bucket`` times
with growing volume, then the coins move on to the next minute, so every bucket is closed by
the next one and (here) confirmed by it. One replay process (this checkout's) sends the frames
as fast as the socket takes them; the streamer runs in a child process importing either this
checkout or a ``git worktree`` of ``--baseline``, and reports the CPU time of its whole process
(event loop and memory thread) from the first frame handed over to the last row committed.
Rounds alternate between the two so a busy machine weighs on both; best of ``--rounds``, and the
median beside it (on these machines the same code varies by a third from one round to the next).
Goal: this checkout <= 1.05x the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import report

HERE = Path(__file__).resolve().parents[1]
T0_MS = 1_795_000_000_000
MINUTE_MS = 60_000


def live_frames(coins: int, minutes: int, per_bucket: int) -> list[str]:
    """Minutes long closed, minute-major; within a minute, rounds over the coins with growing volume."""
    frames = []
    start = T0_MS - 30 * 24 * 60 * MINUTE_MS
    for minute in range(minutes):
        t = start + minute * MINUTE_MS
        for k in range(1, per_bucket + 1):
            for coin in range(coins):
                price = 100 + (coin * 7 + minute) % 97
                frames.append(
                    f'{{"channel":"candle","data":{{"t":{t},"T":{t + MINUTE_MS - 1},"s":"BENCH{coin}","i":"1m",'
                    f'"o":"{price}.0","c":"{price}.{k}","h":"{price + 1}.0","l":"{price - 1}.0",'
                    f'"v":"{k * 1.25 + coin}","n":{k * 3}}}}}'
                )
    return frames


async def replay_worker(frames: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    from market_assets.replay import ReplayConfig, ReplayServers
    from market_assets.sources.timing import SystemClock

    replay = ReplayServers(ReplayConfig(clock=SystemClock(), tick_s=0.02, enforce_weight=False))
    await replay.start()
    print(json.dumps({"http": replay.http_url, "ws": replay.ws_url}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.startswith("inject"):
            replay.plan.injected_frames.extend(frames)
            print("injected", flush=True)
    await replay.stop()


async def streamer_worker(checkout: Path, urls: dict[str, str], count: int) -> None:
    """In the child: stream into a fresh memory, inject, and print CPU seconds and rows."""
    sys.path.insert(0, str(checkout))
    from market_assets.sources.timing import SystemClock
    from streamer.config import StreamerConfig
    from streamer.connection import ConnectionState
    from streamer.service import Endpoints, Streamer

    names = {f.name for f in dataclasses.fields(StreamerConfig)}
    config = StreamerConfig(max_coins=1, **({"warm_start_minutes": 0} if "warm_start_minutes" in names else {}))
    with tempfile.TemporaryDirectory() as folder:
        streamer = Streamer(Path(folder) / "cost.db", Endpoints(f"{urls['http']}/hyperliquid", urls["ws"]), config, SystemClock())
        stop = asyncio.Event()
        task = asyncio.create_task(streamer.run(stop))
        await streamer.started.wait()
        while streamer.pool.connections[0].state is not ConnectionState.LIVE:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # let start-up settle
        received = streamer.counters.candle_frames
        print("ready", flush=True)
        sys.stdin.readline()  # the parent injected
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while streamer.counters.candle_frames < received + count:
            await asyncio.sleep(0.005)
        await streamer.writer.barrier()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rows = streamer.counters.rows_written
        stop.set()
        await task
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "rows": rows}), flush=True)


def measure(checkout: Path, frames_args: list[str], count: int) -> dict[str, float]:
    replay = subprocess.Popen(
        [sys.executable, __file__, "--replay-worker", *frames_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert replay.stdin is not None and replay.stdout is not None
    try:
        urls = replay.stdout.readline()
        child = subprocess.Popen(
            [sys.executable, __file__, "--streamer-worker", str(checkout), "--urls", urls, "--count", str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            replay.stdin.write("inject\n")
            replay.stdin.flush()
            assert replay.stdout.readline().strip() == "injected"
            child.stdin.write("go\n")
            child.stdin.flush()
            result: dict[str, float] = json.loads(child.stdout.readline())
        finally:
            child.stdin.close()
            child.wait(timeout=60)
    finally:
        replay.stdin.close()
        replay.wait(timeout=60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="f40abc7", help="the commit before confirmation existed")
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--frames-per-bucket", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--replay-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--streamer-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_worker:
        asyncio.run(replay_worker(live_frames(args.coins, args.minutes, args.frames_per_bucket)))
        return
    if args.streamer_worker:
        asyncio.run(streamer_worker(args.streamer_worker, json.loads(args.urls), args.count))
        return

    count = args.coins * args.minutes * args.frames_per_bucket
    frames_args = ["--coins", str(args.coins), "--minutes", str(args.minutes), "--frames-per-bucket", str(args.frames_per_bucket)]
    with tempfile.TemporaryDirectory() as folder:
        baseline = Path(folder) / "baseline"
        subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "--quiet", str(baseline), args.baseline], check=True)
        try:
            results: dict[str, list[dict[str, float]]] = {"this checkout": [], f"baseline {args.baseline}": []}
            for _ in range(args.rounds):
                results["this checkout"].append(measure(HERE, frames_args, count))
                results[f"baseline {args.baseline}"].append(measure(baseline, frames_args, count))
        finally:
            subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(baseline)], check=True)
    print(f"confirmation cost: {count:,} frames ({args.coins} coins x {args.minutes} minutes x "
          f"{args.frames_per_bucket} frames a bucket); best of {args.rounds}")
    best = {name: min(runs, key=lambda r: r["cpu_s"]) for name, runs in results.items()}
    for name, run in best.items():
        cpus = ", ".join(f"{1000 * r['cpu_s'] / count * 1000:.1f}" for r in results[name])
        print(f"  {name:<22} {1000 * run['cpu_s'] / count * 1000:7.1f} ms CPU per 1,000 frames   "
              f"{run['rows']:,.0f} rows, {count / run['wall_s']:,.0f} frames/s   (all: {cpus})")
    now, before = (run["cpu_s"] for run in best.values())
    medians = [statistics.median(r["cpu_s"] for r in runs) for runs in results.values()]
    print(f"  ratio                  {now / before:7.2f}x best, {medians[0] / medians[1]:.2f}x median   (goal <= 1.05x)")
    report("confirmation_cost", f"CPU per frame / baseline {args.baseline} (before confirmation)", now / before, "x",
           goal="<= 1.05x", baseline=f"{args.baseline}: {1000 * before / count * 1000:.1f} ms CPU per 1,000 frames",
           limit=1.05)


if __name__ == "__main__":
    main()
