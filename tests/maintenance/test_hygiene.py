"""peers.md §3: planner statistics after bulk changes; a WAL checkpoint that readers cannot stall."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from market_assets.ledger import Ledger
from market_assets.maintenance import MaintenanceSettings, run_maintenance
from market_assets.memory import connect
from market_assets.memory.connection import BUSY_TIMEOUT_SEC, close
from market_assets.memory.retention import checkpoint
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
