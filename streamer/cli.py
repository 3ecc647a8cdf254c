"""What the ``market`` CLI calls: ``market stream`` (:func:`run_stream`) and the probe
``market hyperliquid ohlcv --duration-ms 70000`` (:func:`run_probe`).

Both run the same streamer against ``settings.endpoints`` (real Hyperliquid, or the replay
servers in offline mode) into ``settings.db_path``, with the local profile's coin cap, and both
first take the memory's streamer lock (:mod:`streamer.lock`): a second streamer exits 1.

``market stream --shard I/N`` (or ``MARKET_STREAM_SHARD``) follows only shard I of N's coins and
takes that shard's lock: N streamers, one per host, each spend their own IP's allowance.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from market_assets.memory import MarketMemoryError, open_memory
from market_assets.memory.runs import RunStatus, get_run
from market_assets.memory.shards import Shard, ShardError
from market_assets.redact import RedactingFormatter
from market_assets.settings import Settings
from market_assets.sources.timing import AsyncClock, SystemClock
from streamer.config import StreamerConfig, shard_from_env
from streamer.lock import StreamerLock, StreamerLockError
from streamer.service import Endpoints, Streamer

EXIT_OK = 0
EXIT_MEMORY_UNUSABLE = 1
"""The memory cannot be used, or another streamer holds it (:mod:`streamer.lock`)."""
EXIT_BAD_SHARD = 2
"""``--shard`` (or ``MARKET_STREAM_SHARD``) is not ``I/N`` with 0 < I <= N: a usage error."""
EXIT_NOTHING_WRITTEN = 6
"""The probe streamed for its whole duration without committing a single row."""


def run_stream(
    settings: Settings,
    *,
    shard: str | None = None,
    config: StreamerConfig | None = None,
    clock: AsyncClock | None = None,
) -> int:
    """Stream until SIGINT or SIGTERM; then flush the queue, record the open window, close the
    sockets and return 0.

    ``shard``: ``I/N`` to follow only that shard's coins; ``None`` keeps ``config``'s shard, else
    reads ``MARKET_STREAM_SHARD`` (unset: every coin). Bad text exits 2 with one line, before
    anything is opened."""
    chosen: Shard | None
    try:
        if shard is not None:
            chosen = Shard.parse(shard)
        elif config is not None and config.shard is not None:
            chosen = config.shard
        else:
            chosen = shard_from_env()
    except ShardError as exc:
        print(f"market stream: {exc}", file=sys.stderr)
        return EXIT_BAD_SHARD
    config = replace(config or StreamerConfig.from_settings(settings), shard=chosen)
    return _locked(
        settings, chosen,
        lambda lock: asyncio.run(_stream(settings, config, clock, lock, duration_ms=None, out=sys.stdout)),
    )


def run_probe(
    settings: Settings,
    duration_ms: int,
    *,
    config: StreamerConfig | None = None,
    clock: AsyncClock | None = None,
    out: TextIO | None = None,
) -> int:
    """Stream for ``duration_ms`` (or until interrupted), writing real rows and ledger windows,
    then print a short summary. Exit code 0 when rows were committed."""
    shard = config.shard if config is not None else None
    return _locked(
        settings,
        shard,
        lambda lock: asyncio.run(_stream(settings, config, clock, lock, duration_ms=duration_ms, out=out or sys.stdout)),
    )


def _locked(settings: Settings, shard: Shard | None, run: Callable[[StreamerLock], int]) -> int:
    """``run(lock)`` holding the memory's (or the shard's) streamer lock, or exit 1 with one line
    while another streamer holds it; checked before logging is set up, so that line is all
    stderr gets."""
    try:
        lock = StreamerLock.acquire(settings.db_path, shard)
    except StreamerLockError as exc:
        print(f"market stream: {exc}", file=sys.stderr)
        return EXIT_MEMORY_UNUSABLE
    with lock:
        _log_to_stderr()
        return run(lock)


async def _stream(
    settings: Settings,
    config: StreamerConfig | None,
    clock: AsyncClock | None,
    lock: StreamerLock,
    *,
    duration_ms: int | None,
    out: TextIO,
) -> int:
    clock = clock or SystemClock()
    streamer = Streamer(
        settings.db_path,
        Endpoints(settings.endpoints.hyperliquid_api, settings.endpoints.hyperliquid_ws),
        config or StreamerConfig.from_settings(settings),
        clock,
        home=settings.home,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    timer = asyncio.create_task(_stop_after(clock, duration_ms, stop)) if duration_ms is not None else None
    lock.watch(lambda _: loop.call_soon_threadsafe(stop.set))  # another streamer took it: stop as SIGTERM stops
    started_ms = clock.now_ms()
    try:
        await streamer.run(stop)
    except MarketMemoryError as exc:
        print(f"market stream: {exc}", file=sys.stderr)
        return EXIT_MEMORY_UNUSABLE
    finally:
        if timer is not None:
            timer.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if lock.lost is not None:
        print(f"market stream: {lock.lost}", file=sys.stderr)
        return EXIT_MEMORY_UNUSABLE
    if duration_ms is None:
        return EXIT_OK
    _summary(streamer, settings, clock.now_ms() - started_ms, out)
    return EXIT_OK if streamer.counters.rows_written else EXIT_NOTHING_WRITTEN


async def _stop_after(clock: AsyncClock, duration_ms: int, stop: asyncio.Event) -> None:
    await clock.sleep(duration_ms / 1000)
    stop.set()


def _summary(streamer: Streamer, settings: Settings, elapsed_ms: int, out: TextIO) -> None:
    counters = streamer.counters
    statuses: dict[str, int] = {}
    with open_memory(settings.db_path) as conn:
        for run_id in streamer.windows.recorded:
            record = get_run(conn, run_id)
            status = record.status.value if record is not None else RunStatus.RUNNING.value
            statuses[status] = statuses.get(status, 0) + 1
    windows = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())) or "none"
    lines = [
        f"hyperliquid ohlcv probe: {elapsed_ms / 1000:.1f} s against {settings.endpoints.hyperliquid_ws}",
        f"  coins streamed      {len(streamer.pool.coins)} on {len(streamer.pool.connections)} socket(s)",
        f"  frames              {counters.candle_frames} candle, {counters.pongs} pong, "
        f"{counters.not_json_frames + counters.parse_errors + counters.error_frames} skipped",
        f"  rows written        {counters.rows_written} in {counters.flushes} flushes",
        f"  confirmed minutes   {counters.confirmed_minutes} by the stream, {counters.repaired_minutes} by REST "
        f"({counters.corrected_minutes} corrected); {counters.no_trade_minutes} without trades, "
        f"{counters.gaps_unfillable} beyond reach",
        f"  repair              {counters.minutes_owed} minutes owed, {counters.repair_requests} requests, "
        f"{counters.repair_failures} failed",
        f"  reconnects          {counters.reconnects} "
        f"(stale resubscribes {counters.stale_resubscribes})",
        f"  ledger windows      {windows}",
        f"  memory              {settings.db_path}",
    ]
    print("\n".join(lines), file=out)


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler])  # a source URL may carry a token
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per REST call drowns the rest
