"""A ``kill -9`` shows in the ledger: the next start records the window the dead streamer had open
as failed, and health reads ``failed`` until the restarted streamer completes a window of its own.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from market_assets.health import Status, explain, read_health
from market_assets.memory import MarketMemoryError, open_memory
from market_assets.memory.open_window import open_window_ms
from market_assets.memory.runs import RunRecord, RunStatus, runs_of
from market_assets.registry import CANDLES
from market_assets.replay import ReplayServers
from streamer.windows import ENDED_UNCLOSED

from .conftest import MINUTE_MS, streamer_config, streaming, wait_simulated
from .processes import poll, replay_now, standalone_replay, start_streamer, stop

PROCESS_SPEED = 10
"""A simulated minute per six real seconds: room for a restarted process to come up and be seen
failed before its first window ends, on a loaded machine."""


@pytest.fixture
def replay_process() -> Iterator[dict[str, Any]]:
    with standalone_replay(PROCESS_SPEED) as replay:
        yield replay


def reading(memory_path: Path, reader: Callable[[sqlite3.Connection], Any]) -> Any:
    with open_memory(memory_path, readonly=True) as conn:
        return reader(conn)


def windows(memory_path: Path) -> list[RunRecord]:
    try:
        return reading(memory_path, lambda conn: runs_of(conn, CANDLES.source, CANDLES.name))
    except MarketMemoryError:
        return []  # not created or not migrated yet


def test_the_window_a_killed_streamer_left_open_is_recorded_failed_and_health_shows_it_until_the_next_window(
    replay_process: dict[str, Any], tmp_path: Path
) -> None:
    memory_path = tmp_path / "market.db"
    log = tmp_path / "streamer.log"
    first = start_streamer(replay_process, memory_path, log)
    try:
        poll(lambda: len(windows(memory_path)) >= 2, 60, "two windows recorded")
        # Killed just after a window was recorded, seconds before the next one ends.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first)
    killed_at = replay_now(replay_process)
    before = windows(memory_path)
    assert {w.status for w in before} == {RunStatus.SUCCEEDED}, log.read_text()[-2000:]
    left_open = before[-1].started_at_ms + MINUTE_MS
    assert left_open <= killed_at < left_open + MINUTE_MS

    # Restart early in the minute after the next: the window after the crashed one has no streamer.
    restart_window = left_open + 2 * MINUTE_MS
    poll(lambda: replay_now(replay_process) >= restart_window, 60, "a whole window without a streamer")
    second = start_streamer(replay_process, memory_path, log)
    try:
        poll(lambda: any(w.status is RunStatus.FAILED for w in windows(memory_path)), 20, "the crash recorded")
        failed_reads = 0
        deadline = time.monotonic() + 30
        while True:
            health = reading(memory_path, lambda conn: read_health(conn, replay_now(replay_process)))
            candles = next(c for c in health.channels if c.channel == CANDLES)
            assert candles.run is not None
            if candles.run.status is RunStatus.SUCCEEDED:
                break
            if candles.run.status is RunStatus.FAILED:  # not the instant a window is being recorded
                assert candles.status is Status.FAILED and not health.ok
                assert (candles.run.started_at_ms, candles.run.error) == (left_open, ENDED_UNCLOSED)
                assert explain(candles, 0).endswith(f": {ENDED_UNCLOSED}")
                failed_reads += 1
            assert time.monotonic() < deadline, "the restarted streamer completed no window"
            time.sleep(0.1)
        assert failed_reads >= 1, "the restarted streamer's first window ended before health was read"
        assert candles.status is Status.OK
        assert (candles.run.status, candles.run.started_at_ms) == (RunStatus.SUCCEEDED, restart_window)
    finally:
        code = stop(second)
    assert code == 0, log.read_text()[-2000:]

    after = windows(memory_path)
    failed = [w for w in after if w.status is not RunStatus.SUCCEEDED]
    assert [(w.status, w.started_at_ms, w.finished_at_ms, w.error) for w in failed] == [
        (RunStatus.FAILED, left_open, left_open + MINUTE_MS, ENDED_UNCLOSED)
    ]
    starts = [w.started_at_ms for w in after]
    assert starts == sorted(set(starts))  # one run per window: the restart recorded nothing twice
    assert left_open + MINUTE_MS not in starts  # nor a window no streamer had open
    assert reading(memory_path, open_window_ms) is None  # the clean stop left no window open


@pytest.mark.anyio
async def test_a_clean_stop_leaves_no_window_for_the_next_start_to_record_failed(
    replay: ReplayServers, memory_path: Path
) -> None:
    for _ in range(2):
        async with streaming(replay, memory_path, streamer_config(max_coins=2)):
            await wait_simulated(replay, 90)
    recorded = windows(memory_path)
    assert len(recorded) >= 4 and {w.status for w in recorded} == {RunStatus.SUCCEEDED}
    assert reading(memory_path, open_window_ms) is None
