"""One ledger run per minute window: succeeded with the rows written in it and the counters the
dashboard reads, or failed when the streamer cannot stay connected."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from market_assets.memory import open_memory
from market_assets.memory.runs import RunRecord, RunStatus, runs_of
from market_assets.replay import HttpFault, HttpFaultKind, ReplayServers
from streamer.service import Endpoints, Streamer

from .conftest import MINUTE_MS, streamer_config, streaming, wait_simulated

pytestmark = pytest.mark.anyio

COUNTERS = {
    "reconnects",
    "parse_errors",
    "not_json_frames",
    "error_frames",
    "stale_resubscribes",
    "confirmed_minutes",
    "minutes_owed",
    "repair_requests",
    "corrected_minutes",
    "no_trade_minutes",
    "gaps_unfillable",
    "rejected_frames",
    "queue_depth",
    "queue_depth_max",
    "last_frame_ms",
    "rows_written",
}


async def test_each_minute_window_is_one_succeeded_run_with_the_rows_written_in_it(
    replay: ReplayServers, memory_path: Path
) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await wait_simulated(replay, 240)
    windows = windows_of(memory_path)
    starts = [w.started_at_ms for w in windows]
    assert len(windows) >= 4 and all(s % MINUTE_MS == 0 for s in starts)
    assert starts == sorted(set(starts))  # one run per window
    assert {w.status for w in windows} == {RunStatus.SUCCEEDED}
    assert all(w.finished_at_ms is not None and w.finished_at_ms >= w.started_at_ms for w in windows)
    assert sum(w.rows_written for w in windows) == streamer.counters.rows_written > 0
    full = windows[1]
    assert COUNTERS <= full.metadata.keys()
    assert full.metadata["rows_written"] == full.rows_written
    assert set(full.metadata["last_frame_ms"]) == set(streamer.universe.coins)


def launched(
    replay: ReplayServers, memory_path: Path, *, ws_url: str | None = None
) -> tuple[Streamer, asyncio.Event, asyncio.Task[None]]:
    """A streamer of two coins running against the replay (or ``ws_url``), without waiting for its
    start as ``streaming`` does: these tests look at the windows before it."""
    streamer = Streamer(
        memory_path,
        Endpoints(replay.endpoints.hyperliquid_api, ws_url or replay.endpoints.hyperliquid_ws),
        streamer_config(max_coins=2),
        replay.clock,
    )
    stop = asyncio.Event()
    return streamer, stop, asyncio.create_task(streamer.run(stop))


def windows_of(memory_path: Path) -> list[RunRecord]:
    with open_memory(memory_path) as conn:
        return runs_of(conn, "hyperliquid", "candles")


def dead_ws_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


async def test_a_window_with_its_socket_down_throughout_fails_and_the_streamer_keeps_trying(
    replay: ReplayServers, memory_path: Path
) -> None:
    streamer, stop, task = launched(replay, memory_path, ws_url=dead_ws_url())
    await wait_simulated(replay, 200)
    stop.set()
    await task
    windows = windows_of(memory_path)
    failed = [w for w in windows if w.status is RunStatus.FAILED]
    assert len(failed) >= 2
    assert all(w.error is not None and w.error.startswith("cannot stay connected") for w in failed)
    assert streamer.counters.reconnects >= 20 and streamer.counters.rows_written == 0  # never gave up


async def test_windows_fail_while_the_universe_cannot_be_read_and_nothing_is_stored_yet(
    replay: ReplayServers, memory_path: Path
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/hyperliquid/info", status=503, times=None))
    streamer, stop, task = launched(replay, memory_path)
    await wait_simulated(replay, 150)
    replay.plan.clear()
    await streamer.started.wait()  # REST is back: the universe is read and streaming starts
    stop.set()
    await task
    windows = windows_of(memory_path)
    failed = [w for w in windows if w.status is RunStatus.FAILED]
    assert len(failed) >= 2 and all("no perp universe" in (w.error or "") for w in failed)
    assert streamer.universe.coins


async def test_the_window_the_streamer_starts_in_is_not_failed_while_its_first_universe_read_is_in_flight(
    replay: ReplayServers, memory_path: Path
) -> None:
    # The first read takes 3 s (five simulated minutes at 100x), well inside the client's timeout.
    replay.plan.add_http(HttpFault(HttpFaultKind.SLOW, path="/hyperliquid/info", delay_s=3.0, times=1))
    streamer, stop, task = launched(replay, memory_path)
    await streamer.started.wait()
    started_ms = replay.clock.now_ms()
    await wait_simulated(replay, 150)
    stop.set()
    await task
    first, *later = windows_of(memory_path)
    assert (first.status, first.rows_written, first.error) == (RunStatus.SUCCEEDED, 0, None)
    waiting = [w for w in later if w.finished_at_ms <= started_ms]
    assert len(waiting) >= 3  # whole windows without a universe: those are failures
    assert {(w.status, w.error) for w in waiting} == {
        (RunStatus.FAILED, "cannot stream: no perp universe (the first read is still in flight)")
    }
    streaming_windows = [w for w in later if w.started_at_ms > started_ms]
    assert streaming_windows and {w.status for w in streaming_windows} == {RunStatus.SUCCEEDED}
    assert sum(w.rows_written for w in streaming_windows) > 0
