"""peers.md §3: planner statistics after bulk changes; a WAL checkpoint that readers cannot stall."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from market_assets.ledger import Ledger
from market_assets.maintenance import MaintenanceSettings, run_maintenance
from market_assets.memory import connect
from market_assets.memory.connection import BUSY_TIMEOUT_SEC, close
from market_assets.memory.retention import WalBound, checkpoint
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import MAINTENANCE
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, random_walk, series, store


def test_maintenance_leaves_planner_statistics_for_the_time_window_queries(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    store(conn, series("BTC", DAY0_MS, random_walk(1, 1440)), clock())
    clock.now_ms = DAY0_MS + DAY_MS
    run_maintenance(conn, Ledger(conn, clock))
    analyzed = {row[0] for row in conn.execute("SELECT tbl FROM main.sqlite_stat1")}
    assert {"candles", "candle_rollups"} <= analyzed


def test_checkpoint_gives_up_waiting_on_a_reader_holding_a_snapshot_and_loses_nothing(
    conn: sqlite3.Connection, clock: FrozenClock, memory_path: Path
) -> None:
    store(conn, series("BTC", DAY0_MS, random_walk(2, 600)), clock())
    reader = connect(memory_path, clock=clock)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM candles").fetchone() == (600,)  # snapshot pinned
    store(conn, series("BTC", DAY0_MS + 600 * MINUTE_MS, random_walk(3, 840)), clock())
    clock.now_ms = DAY0_MS + DAY_MS

    started = time.monotonic()
    result = run_maintenance(conn, Ledger(conn, clock), settings=MaintenanceSettings(checkpoint_wait_ms=200))
    assert time.monotonic() - started < 3.0
    assert result.checkpoint is not None
    assert (result.checkpoint.mode, result.checkpoint.busy) == ("PASSIVE", True)
    assert result.checkpoint.wal_bytes_after > 0  # the reader's snapshot still lives in the WAL
    assert reader.execute("SELECT count(*) FROM candles").fetchone() == (600,)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_SEC * 1000  # restored for the next writer
    (run,) = runs_of(conn, MAINTENANCE.source, MAINTENANCE.name)
    assert run.status is RunStatus.SUCCEEDED and run.metadata["checkpoint_busy"] is True

    reader.execute("COMMIT")
    close(reader)
    after = checkpoint(conn, wait_ms=200)
    assert (after.mode, after.busy, after.wal_bytes_after) == ("TRUNCATE", False, 0)
    assert conn.execute("SELECT count(*) FROM candles").fetchone() == (1440,)
    assert conn.execute("SELECT minutes FROM candle_rollups WHERE interval = '1d'").fetchall() == [(1440,)]


def test_checkpoint_truncates_between_the_transactions_of_a_writer_that_takes_the_lock_back_at_once(
    conn: sqlite3.Connection, clock: FrozenClock, memory_path: Path
) -> None:
    """A streaming writer holds the write lock almost always (here 100 ms of every 101); the
    checkpoint must find one of its 1 ms gaps within its wait, not sleep through them."""
    store(conn, series("BTC", DAY0_MS, random_walk(4, 600)), clock())
    stop = threading.Event()
    commits: list[int] = []

    def stream() -> None:
        writer = connect(memory_path, clock=clock)
        minute = 600
        while not stop.is_set():
            writer.execute("BEGIN IMMEDIATE")
            writer.executemany(
                "INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, "
                "volume, trades, closed, ingested_at_ms) VALUES ('ETH', '1m', ?, ?, 1, 1, 1, 1, 1, 1, 1, 0)",
                [(DAY0_MS + m * MINUTE_MS, DAY0_MS + (m + 1) * MINUTE_MS - 1) for m in range(minute, minute + 50)],
            )
            time.sleep(0.1)
            writer.execute("COMMIT")
            commits.append(minute)
            minute += 50
            time.sleep(0.001)
        close(writer)

    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        time.sleep(0.2)
        streamed_before = len(commits)
        result = checkpoint(conn, wait_ms=2_000)
    finally:
        stop.set()
        streaming.join()
    assert streamed_before > 0  # the writer was streaming when the checkpoint began
    assert (result.mode, result.busy) == ("TRUNCATE", False)


def test_the_writers_wal_bound_waits_out_a_reader_once_per_bound_and_truncates_once_it_lets_go(
    conn: sqlite3.Connection, clock: FrozenClock, memory_path: Path
) -> None:
    """A reader holding a snapshot cannot make every commit of the writer wait: after one refused
    attempt the next comes only after another bound's worth of growth."""
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # only the bound truncates here
    bound = WalBound(memory_path, limit_bytes=64 * 1024, wait_ms=50)
    reader = connect(memory_path, clock=clock)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM candles").fetchone() == (0,)  # snapshot pinned

    minute = 0
    outcomes = []
    while len(outcomes) < 2:
        store(conn, series("BTC", DAY0_MS + minute * MINUTE_MS, random_walk(minute, 60)), clock())
        minute += 60
        if (result := bound(conn)) is not None:
            outcomes.append((result.busy, result.wal_bytes_after))
    (busy_first, wal_first), (busy_second, wal_second) = outcomes
    assert busy_first and busy_second and bound.held_back == 2 and bound.truncations == 0
    assert wal_second >= wal_first + 64 * 1024  # the second attempt waited for another bound of growth
    assert reader.execute("SELECT count(*) FROM candles").fetchone() == (0,)

    reader.execute("COMMIT")
    close(reader)
    while (result := bound(conn)) is None:
        store(conn, series("BTC", DAY0_MS + minute * MINUTE_MS, random_walk(minute, 60)), clock())
        minute += 60
    assert (result.mode, result.busy, result.wal_bytes_after) == ("TRUNCATE", False, 0)
    assert bound.truncations == 1 and not bound.due()
    assert conn.execute("SELECT count(*) FROM candles").fetchone() == (minute,)  # nothing lost
