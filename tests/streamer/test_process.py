"""``python -m streamer`` as an operator runs it, against a standalone replay: killed with SIGKILL
while writing, restarted, stopped with SIGTERM. End-to-end process tests: they poll with a
deadline instead of injecting time."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from market_assets.memory import MarketMemoryError, connect, open_memory
from market_assets.memory.candles import candles_of
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.gaps import GapStatus, gaps_of
from market_assets.memory.runs import RunRecord, RunStatus, runs_of
from market_assets.memory.target import MemoryTarget, PostgresUrl
from market_assets.replay.catalog import Catalog

from .conftest import MINUTE_MS, assert_complete_and_exact, on_both_engines
from .processes import poll, replay_now, standalone_replay, start_streamer, stop

SPEED = 60
"""A simulated minute per real second."""


@pytest.fixture
def replay_process() -> Iterator[dict[str, Any]]:
    with standalone_replay(SPEED) as replay:
        yield replay


def read(memory_path: MemoryTarget, sql_reader: Callable[[MemoryConnection], Any]) -> Any:
    """What ``sql_reader`` reads from the memory a streamer process writes; ``None`` before it exists."""
    if isinstance(memory_path, PostgresUrl):
        try:
            reader = connect(memory_path, readonly=True)
        except MarketMemoryError:
            return None  # not migrated yet
        try:
            return sql_reader(reader)
        finally:
            reader.close()
    if not memory_path.exists():
        return None
    conn = sqlite3.connect(f"file:{memory_path}?mode=ro", uri=True, timeout=5)
    try:
        return sql_reader(conn)
    except sqlite3.OperationalError:
        return None  # not migrated yet
    finally:
        conn.close()


def closed_per_coin(conn: MemoryConnection) -> dict[str, int]:
    coins = {row[0] for row in conn.execute("SELECT DISTINCT coin FROM candles")}
    return {coin: sum(1 for row in candles_of(conn, coin, "1m") if row.closed) for coin in coins}


def queued_repairs(conn: MemoryConnection) -> int:
    return int(conn.execute("SELECT count(*) FROM candle_repairs").fetchone()[0])


def candle_windows(conn: MemoryConnection) -> list[RunRecord]:
    return runs_of(conn, "hyperliquid", "candles")


@on_both_engines
def test_sigkill_mid_batch_leaves_no_partial_minute_and_the_restart_backfills_the_gap(
    replay_process: dict[str, Any], tmp_path: Path, memory_path: MemoryTarget
) -> None:
    log = tmp_path / "streamer.log"
    first = start_streamer(replay_process, memory_path, log)
    poll(lambda: len(read(memory_path, closed_per_coin) or {}) == 5 and min(read(memory_path, closed_per_coin).values()) >= 2,
         30, "two closed minutes of the five local coins")
    # The warm start's REST minutes can be stored before the stream's first flush: wait for the
    # stream itself to have written a window, so the kill lands on a streamer with one open.
    poll(lambda: bool(read(memory_path, lambda conn: runs_of(conn, "hyperliquid", "candles"))), 30, "a window recorded")
    alive_at = replay_now(replay_process)  # the kill lands between these two readings of the clock
    first.send_signal(signal.SIGKILL)  # rows are flushed every 100 ms: the kill lands amid writes
    first.wait(timeout=10)
    killed_at = replay_now(replay_process)
    poll(lambda: replay_now(replay_process) >= killed_at + 3 * MINUTE_MS, 30, "three minutes of downtime")

    second = start_streamer(replay_process, memory_path, log)
    try:
        poll(lambda: any(g.status is GapStatus.FILLED for g in read(memory_path, gaps_of) or []), 30, "a filled gap")
        # The first process's warm start filled gaps too: wait for the second to be streaming
        # (a window of its own), so the stop below meets a running streamer, not one starting.
        poll(lambda: any(w.started_at_ms > killed_at for w in read(memory_path, candle_windows) or []), 30, "a window after the restart")
        poll(lambda: read(memory_path, queued_repairs) == 0, 60, "the repair queue to empty")
        poll(lambda: replay_now(replay_process) >= killed_at + 5 * MINUTE_MS, 30, "two minutes after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        code = second.wait(timeout=10)
    assert code == 0 and time.monotonic() - stopping < 5, log.read_text()[-2000:]
    end_ms = replay_now(replay_process)

    series = Catalog.load().series
    with open_memory(memory_path) as conn:
        coins = sorted(closed_per_coin(conn))
        gaps = gaps_of(conn)
        windows = runs_of(conn, "hyperliquid", "candles")
    assert len(coins) == 5
    # Every closed minute before, across and after the kill equals the replay's: the kill left no
    # partial minute closed, and the restart fetched the minutes it missed.
    minutes = assert_complete_and_exact(memory_path, series, coins, through_ms=end_ms)
    assert min(minutes.values()) >= 7
    down = range(killed_at - killed_at % MINUTE_MS + MINUTE_MS, killed_at + 3 * MINUTE_MS - MINUTE_MS, MINUTE_MS)
    for coin in coins:
        filled = [g for g in gaps if g.coin == coin and g.status is GapStatus.FILLED]
        assert all(any(g.start_ms <= t < g.end_ms for g in filled) for t in down), coin
    assert not [g for g in gaps if g.status is not GapStatus.FILLED]
    crashed = [w for w in windows if w.status is not RunStatus.SUCCEEDED]
    assert [(w.status, w.error) for w in crashed] == [(RunStatus.FAILED, "the streamer ended without closing this window")]
    # The window open when the kill landed (at 60x, a loaded machine's second between the clock
    # readings is a simulated minute, so the kill is placed between them, not at either).
    assert crashed[0].started_at_ms <= killed_at and alive_at < crashed[0].started_at_ms + MINUTE_MS
    # Both processes recorded theirs (how many depends on how fast a loaded machine restarts it).
    assert [w for w in windows if w.finished_at_ms <= killed_at] and [w for w in windows if w.started_at_ms > killed_at]
    # Minutes with no streamer have no window (health turns stale after six of them).
    assert not [w for w in windows if killed_at < w.started_at_ms < killed_at + 2 * MINUTE_MS]
    assert [w.started_at_ms % MINUTE_MS for w in windows] == [0] * len(windows)


def test_a_kill_while_repairs_are_queued_resumes_them_on_restart_until_the_queue_is_empty(
    replay_process: dict[str, Any], tmp_path: Path
) -> None:
    memory_path = tmp_path / "market.db"
    log = tmp_path / "streamer.log"
    control = replay_process["control"]
    # REST refuses candleSnapshot while the first process runs: its warm start stays queued.
    httpx.post(f"{control}/faults", json={"kind": "status", "info_type": "candleSnapshot", "status": 500, "times": None})
    first = start_streamer(replay_process, memory_path, log)
    try:
        poll(lambda: (read(memory_path, queued_repairs) or 0) >= 5 * 1440, 30, "the warm start queued")
        poll(lambda: len(read(memory_path, closed_per_coin) or {}) == 5, 30, "a closed minute of each coin")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed_at = replay_now(replay_process)
    queued_at_kill = read(memory_path, queued_repairs)
    httpx.delete(f"{control}/faults")

    second = start_streamer(replay_process, memory_path, log)
    try:
        poll(lambda: read(memory_path, queued_repairs) == 0, 60, "the repair queue to empty")
        poll(lambda: replay_now(replay_process) >= killed_at + 3 * MINUTE_MS, 30, "three minutes after the kill")
    finally:
        code = stop(second)
    assert code == 0, log.read_text()[-2000:]
    end_ms = replay_now(replay_process)
    with open_memory(memory_path) as conn:
        coins = sorted(closed_per_coin(conn))
        windows = runs_of(conn, "hyperliquid", "candles")
    assert queued_at_kill >= 5 * 1440
    # The day the first process could not fetch, its minutes and the second's: all confirmed, exact.
    minutes = assert_complete_and_exact(memory_path, Catalog.load().series, coins, through_ms=end_ms)
    assert len(coins) == 5 and min(minutes.values()) >= 1440
    crashed = [w for w in windows if w.status is RunStatus.FAILED]
    assert [w.error for w in crashed] == ["the streamer ended without closing this window"]
