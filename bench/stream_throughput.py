"""The streamer end to end against replay servers running in a process of their own.

    .venv/bin/python bench/stream_throughput.py [--only throughput|latency|backfill] [--frames 102600]
                                       [--rounds 3] [--hours 1] [--hour-s 60]

throughput  Frames -> committed rows, sustained: the replay sends ``--frames`` candle frames, each
            a distinct (coin, minute), as fast as it can over one socket; timed from the moment
            they are handed to the replay until the last row is committed. Compared with SQLite's
            own ceiling measured in the same run: ``executemany`` of the same rows (the same
            upsert statement, the same schema and triggers) in 1,000-row transactions, with the
            parameters built before the clock starts. Goal >= 0.8x.
latency     An hour of simulated stream of every listed perp (171 in the recorded universe;
            Hyperliquid lists ~190-228) at 60x: frame received -> row committed p50/p99 (goal
            p99 <= 250 ms) and this process's RSS sampled through the hour (goal <= 120 MB, flat).
backfill    A 5-minute outage of every listed perp, then a restart: time until the repair queue
            is empty (every owed minute confirmed from ``candleSnapshot``), as a ratio to the
            weight-budget floor: when the last
            of the same requests could be sent at the earliest under 1,200 weight per rolling
            minute (21-weight requests pack a minute to 1,197, so 3,611 weight needs a fourth
            slot at 180 s, not the 120 s a fluid budget would suggest). Goal <= 1.1x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import report  # noqa: E402

from market_assets.memory import connect  # noqa: E402
from market_assets.memory.candles import _UPSERT, CandleRow, upsert_params  # noqa: E402  (the streamer's own statement)
from market_assets.memory.connection import close  # noqa: E402
from market_assets.memory.target import MemoryTarget  # noqa: E402
from market_assets.replay import ReplayConfig, ReplayServers  # noqa: E402
from market_assets.sources.hyperliquid_ws import CandleFrame, parse_frame  # noqa: E402
from market_assets.sources.ratelimit import HYPERLIQUID_WEIGHT_PER_MINUTE, info_weight  # noqa: E402
from market_assets.sources.timing import AcceleratedClock, AsyncClock, SystemClock  # noqa: E402
from streamer.__main__ import replay_clock  # noqa: E402
from streamer.buckets import row_of  # noqa: E402
from streamer.config import StreamerConfig  # noqa: E402
from streamer.connection import ConnectionState  # noqa: E402
from streamer.service import Endpoints, Streamer  # noqa: E402

T0_MS = 1_795_000_000_000
MINUTE_MS = 60_000
BENCH_COINS = 171
TRANSACTION_ROWS = 1000


def bench_frames(count: int) -> list[str]:
    """``count`` candle frames of distinct (coin, minute), time-major as a live feed is, for
    minutes long closed. Coins are named apart from the universe the socket subscribes to."""
    frames = []
    for i in range(count):
        minute, coin = divmod(i, BENCH_COINS)
        t = T0_MS - 30 * 24 * 60 * MINUTE_MS + minute * MINUTE_MS
        price = 100 + (i % 997) / 10
        frames.append(
            f'{{"channel":"candle","data":{{"t":{t},"T":{t + MINUTE_MS - 1},"s":"BENCH{coin}","i":"1m",'
            f'"o":"{price:.1f}","c":"{price + 0.1:.1f}","h":"{price + 0.5:.1f}","l":"{price - 0.5:.1f}",'
            f'"v":"{i % 5000 + 0.25}","n":{i % 300 + 1}}}}}'
        )
    return frames


# The replay process --------------------------------------------------------------------------


async def replay_worker(speed: float, tick_s: float, enforce_weight: bool) -> None:
    """Serve a replay; on ``inject N`` from stdin, hand it N bench frames and say when."""
    clock: AsyncClock = SystemClock() if speed == 1 else AcceleratedClock(speed, T0_MS)
    replay = ReplayServers(ReplayConfig(clock=clock, tick_s=tick_s, enforce_weight=enforce_weight))
    await replay.start()
    print(json.dumps({"http": replay.http_url, "ws": replay.ws_url, "control": f"{replay.http_url}/_replay"}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.startswith("inject "):
            frames = bench_frames(int(line.split()[1]))
            injected_at = time.time()
            replay.plan.injected_frames.extend(frames)
            print(json.dumps({"injected_at": injected_at}), flush=True)
    await replay.stop()


class ReplayProcess:
    def __init__(self, process: asyncio.subprocess.Process, urls: dict[str, str]) -> None:
        self.process = process
        self.urls = urls

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(f"{self.urls['http']}/hyperliquid", self.urls["ws"])

    async def inject(self, count: int) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"inject {count}\n".encode())
        await self.process.stdin.drain()
        return float(json.loads(await self.process.stdout.readline())["injected_at"])


@asynccontextmanager
async def replay_process(speed: float, tick_s: float, enforce_weight: bool = True) -> AsyncIterator[ReplayProcess]:
    args = ["--replay-worker", "--speed", str(speed), "--tick", str(tick_s)]
    if not enforce_weight:
        args.append("--no-weight-limit")
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        yield ReplayProcess(process, json.loads(await process.stdout.readline()))
    finally:
        process.stdin.close()
        await process.wait()


@asynccontextmanager
async def running(streamer: Streamer) -> AsyncIterator[Streamer]:
    stop = asyncio.Event()
    task = asyncio.create_task(streamer.run(stop))
    await streamer.started.wait()
    try:
        yield streamer
    finally:
        stop.set()
        await task


# Throughput ----------------------------------------------------------------------------------


async def streamer_rate(frames: int, target: MemoryTarget) -> float:
    """Frames/s from the replay's hand-over of ``frames`` new (coin, minute) frames to the last
    commit of a streamer writing the memory at ``target`` (a file, or a PostgreSQL database)."""
    async with replay_process(1, 0.02, enforce_weight=False) as replay:
        config = StreamerConfig(max_coins=1)
        async with running(Streamer(target, replay.endpoints, config, SystemClock())) as streamer:
            while streamer.pool.connections[0].state is not ConnectionState.LIVE:
                await asyncio.sleep(0.01)
            received = streamer.counters.candle_frames
            injected_at = await replay.inject(frames)
            while streamer.counters.candle_frames < received + frames:
                await asyncio.sleep(0.005)
            await streamer.writer.barrier()
            committed_at = time.time()
    return frames / (committed_at - injected_at)


def bench_rows(frames: int) -> list[CandleRow]:
    """The rows the streamer stores from ``bench_frames(frames)``, each closed: a ceiling's input."""
    rows = []
    for text in bench_frames(frames):
        frame = parse_frame(text)
        assert isinstance(frame, CandleFrame)
        rows.append(row_of(frame.candle, True))
    return rows


def sqlite_ceiling(frames: int, folder: Path) -> float:
    params = [upsert_params(row, T0_MS) for row in bench_rows(frames)]
    conn = connect(folder / "ceiling.db")
    try:
        started = time.perf_counter()
        for i in range(0, len(params), TRANSACTION_ROWS):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_UPSERT, params[i : i + TRANSACTION_ROWS])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        close(conn)
    return len(params) / elapsed


def throughput(frames: int, rounds: int) -> None:
    """Best of ``rounds``, the two measurements interleaved so a busy machine weighs on both."""
    stream, ceiling = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            stream.append(asyncio.run(streamer_rate(frames, Path(folder) / "stream.db")))
            ceiling.append(sqlite_ceiling(frames, Path(folder)))
    print(f"throughput: {frames:,} frames, each a new (coin, minute) row; best of {rounds}")
    print(f"  streamer, replay socket -> committed rows   {max(stream):10,.0f} frames/s   (all: {_list(stream)})")
    print(f"  SQLite executemany, 1,000-row transactions  {max(ceiling):10,.0f} rows/s     (all: {_list(ceiling)})")
    print(f"  ratio                                       {max(stream) / max(ceiling):10.2f}x   (goal >= 0.8x)")
    report("stream_throughput", "stream frames -> committed rows / executemany ceiling", max(stream) / max(ceiling), "x",
           goal=">= 0.8x", baseline=f"executemany, 1,000-row transactions: {max(ceiling):,.0f} rows/s", limit=0.8,
           direction="min")


def _list(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


# Latency and memory over an hour --------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class Histogram:
    """Latencies in 0.1 ms buckets: constant memory, so measuring does not grow the RSS measured."""

    def __init__(self, max_ms: float = 10_000) -> None:
        self.counts = [0] * int(max_ms * 10 + 1)

    def add(self, ms: float) -> None:
        self.counts[min(len(self.counts) - 1, int(ms * 10))] += 1

    def quantile(self, q: float) -> float:
        rank, seen = q * sum(self.counts), 0
        for bucket, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return bucket / 10
        return float("nan")


async def hours_of_stream(
    hours: int, hour_s: float, folder: Path
) -> tuple[Histogram, list[tuple[float, float]], Streamer]:
    speed = 3600 / hour_s
    async with replay_process(speed, 5.0) as replay:
        clock = replay_clock(speed, replay.urls["control"])
        # 100 ms of real time between flushes, as in production.
        config = StreamerConfig(flush_interval_s=0.1 * speed)
        async with running(Streamer(folder / "hour.db", replay.endpoints, config, clock)) as streamer:
            started = clock.now_ms()
            samples: list[tuple[float, float]] = []
            latencies = Histogram()
            while (elapsed_min := (clock.now_ms() - started) / MINUTE_MS) < 60 * hours:
                await asyncio.sleep(hour_s / 120)
                samples.append((elapsed_min, rss_mb()))
                for ns in streamer.writer.latencies_ns:
                    latencies.add(ns / 1e6)
                streamer.writer.latencies_ns.clear()
    return latencies, samples, streamer


def latency(hours: int, hour_s: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        latencies, samples, streamer = asyncio.run(hours_of_stream(hours, hour_s, Path(folder)))
    print(f"{hours} h of {len(streamer.universe.coins)} coins at {3600 / hour_s:.0f}x: "
          f"{streamer.counters.candle_frames:,} frames, {streamer.counters.rows_written:,} rows in "
          f"{streamer.counters.flushes:,} flushes, {streamer.counters.reconnects} reconnects")
    print(f"  frame -> committed  p50 {latencies.quantile(0.5):6.1f} ms   "
          f"p99 {latencies.quantile(0.99):6.1f} ms   (goal p99 <= 250 ms)")
    marks = [5] + [30 * k for k in range(1, 2 * hours + 1)]
    rss = [next(mb for minute, mb in samples if minute >= mark) if mark < 60 * hours else samples[-1][1] for mark in marks]
    trail = ", ".join(f"{mb:.1f} MB at {mark} min" for mark, mb in zip(marks, rss))
    print(f"  RSS                 {trail}; max {max(mb for _, mb in samples):.1f} MB   (goal <= 120 MB, flat)")
    report("stream_throughput", "frame -> committed p99, 1 h of every perp at 60x", latencies.quantile(0.99), "ms",
           goal="<= 250 ms", baseline=f"none (absolute); p50 {latencies.quantile(0.5):.1f} ms", limit=250)
    report("stream_throughput", "streamer RSS, max over the simulated hour", max(mb for _, mb in samples), "MB",
           goal="<= 120 MB, flat", baseline=f"{rss[0]:.1f} MB at 5 min", limit=120)


# Backfill after an outage ---------------------------------------------------------------------


async def outage(folder: Path) -> tuple[float, float, int, Streamer]:
    speed = 60.0
    async with replay_process(speed, 5.0) as replay:
        clock = replay_clock(speed, replay.urls["control"])
        db = folder / "outage.db"
        config = StreamerConfig(warm_start_minutes=0)  # the outage alone, not a day of warm start
        async with running(Streamer(db, replay.endpoints, config, clock)):
            await clock.sleep(150)
        await clock.sleep(300)  # five minutes without a socket
        restarted = clock.now_ms()
        async with running(Streamer(db, replay.endpoints, config, clock)) as streamer:
            while not (streamer.repaired and streamer.counters.repaired_minutes):
                await asyncio.sleep(0.02)
            took_ms = clock.now_ms() - restarted
    weights = [info_weight("metaAndAssetCtxs")] + [info_weight("candleSnapshot", 7)] * streamer.counters.repair_requests
    return took_ms, budget_floor_ms(weights), sum(weights), streamer


def budget_floor_ms(weights: list[int]) -> int:
    """When the last of these requests could be sent at the earliest under 1,200 weight per
    rolling minute, each sent the moment the budget admits it and answered at once."""
    sent: list[tuple[int, int]] = []
    now = 0
    for weight in weights:
        while sum(w for t, w in sent if t > now - MINUTE_MS) + weight > HYPERLIQUID_WEIGHT_PER_MINUTE:
            now = min(t for t, _ in sent if t > now - MINUTE_MS) + MINUTE_MS
        sent.append((now, weight))
    return now


def backfill() -> None:
    with tempfile.TemporaryDirectory() as folder:
        took_ms, floor_ms, weight, streamer = asyncio.run(outage(Path(folder)))
    counters = streamer.counters
    print(f"repair after a 5-minute outage of {len(streamer.universe.coins)} coins: "
          f"{counters.repair_requests} candleSnapshot requests, {counters.repaired_minutes} minutes confirmed "
          f"({counters.corrected_minutes} corrected), {weight} weight")
    print(f"  every owed minute back in   {took_ms / 1000:6.1f} s (simulated)")
    print(f"  weight-budget floor         {floor_ms / 1000:6.1f} s   (the last request's earliest slot under "
          f"1,200 weight per rolling minute; {weight / HYPERLIQUID_WEIGHT_PER_MINUTE * 60:.1f} s at the bare rate)")
    print(f"  ratio                       {took_ms / floor_ms:6.2f}x   (goal <= 1.1x)")
    report("stream_throughput", "repair after a 5-minute outage / weight-budget floor", took_ms / floor_ms, "x",
           goal="<= 1.1x", baseline=f"the budget's earliest last slot: {floor_ms / 1000:.0f} s", limit=1.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["throughput", "latency", "backfill"])
    parser.add_argument("--frames", type=int, default=600 * BENCH_COINS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hours", type=int, default=1, help="simulated hours of the latency/RSS run")
    parser.add_argument("--hour-s", type=float, default=60.0, help="real seconds one simulated hour takes")
    parser.add_argument("--replay-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--tick", type=float, default=5.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-weight-limit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay_worker:
        asyncio.run(replay_worker(args.speed, args.tick, not args.no_weight_limit))
        return
    if args.only in (None, "throughput"):
        throughput(args.frames, args.rounds)
    if args.only in (None, "latency"):
        latency(args.hours, args.hour_s)
    if args.only in (None, "backfill"):
        backfill()


if __name__ == "__main__":
    main()
