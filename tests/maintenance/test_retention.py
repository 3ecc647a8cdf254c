"""SPEC §10: roll up before pruning; each channel pruned on its registry retention; faults leave whole days."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect, retention
from market_assets.memory.connection import MemoryConnection, close
from market_assets.memory.rollups import rollups_of
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import (
    CANDLES,
    FEATURES,
    FUNDING,
    LEDGER_RETENTION,
    MAINTENANCE,
)
from tests.archive import archive_finished_days
from tests.conftest import FrozenClock
from tests.maintenance import maintenance_worker
from tests.market_data import (
    DAY0_MS,
    DAY_MS,
    random_walk,
    series,
    store,
)
from tests.postgres.reuse import SQLITE_ONLY, memory_target, reused_postgres

__all__ = ["memory_target", "reused_postgres"]  # the PostgreSQL memory reused, emptied per test


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The root conftest's ``memory_conn``: each test once per engine."""
    return memory_conn

RETENTION_DAYS = CANDLES.retention.days if CANDLES.retention else 0
AFTER_RETENTION_MS = DAY0_MS + (RETENTION_DAYS + 3) * DAY_MS
"""A clock at which days 0, 1 and 2 from DAY0 have passed the candles' retention, day 3 not."""


def minutes_per_coin_day(conn: MemoryConnection) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        "SELECT coin, (open_time_ms - ?) / ?, count(*) FROM candles WHERE interval = '1m' GROUP BY 1, 2", (DAY0_MS, DAY_MS)
    ).fetchall()
    return {(coin, day): count for coin, day, count in rows}


def four_days(conn: MemoryConnection, clock: FrozenClock, coins: tuple[str, ...] = ("BTC", "ETH")) -> None:
    for i, coin in enumerate(coins):
        store(conn, series(coin, DAY0_MS, random_walk(i, 4 * 1440), seed=i), clock())


def test_minutes_past_retention_are_pruned_whole_days_after_their_rollups(conn: MemoryConnection, clock: FrozenClock) -> None:
    four_days(conn, clock)
    clock.now_ms = AFTER_RETENTION_MS
    archive_finished_days(conn, clock())  # the gate: only archived days are pruned
    result = run_maintenance(conn, Ledger(conn, clock))
    assert result.candle_rows_pruned == 2 * 3 * 1440 and result.candle_rows_held_back == 0
    assert minutes_per_coin_day(conn) == {("BTC", 3): 1440, ("ETH", 3): 1440}
    for coin in ("BTC", "ETH"):
        assert [(r[0], r[7]) for r in rollups_of(conn, coin, "1d")] == [(DAY0_MS + d * DAY_MS, 1440) for d in range(4)]
        assert len(rollups_of(conn, coin, "5m")) == 4 * 288


def test_a_prune_never_removes_a_minute_whose_rollups_are_missing(conn: MemoryConnection, clock: FrozenClock) -> None:
    four_days(conn, clock, ("BTC", "ETH"))
    sol = series("SOL", DAY0_MS, random_walk(3, 4 * 1440))
    sol[1440 + 7] = sol[1440 + 7]._replace(closed=False)  # day 1: a minute the streamer never closed
    store(conn, sol, clock())
    clock.now_ms = DAY0_MS + 4 * DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)  # rolls everything it can, prunes nothing yet
    archive_finished_days(conn, clock())
    conn.execute("DELETE FROM candle_rollups WHERE coin = 'ETH' AND interval = '5m' AND open_time_ms = ?", (DAY0_MS + 300_000,))
    clock.now_ms = AFTER_RETENTION_MS
    result = run_maintenance(conn, ledger)
    kept = minutes_per_coin_day(conn)
    assert kept[("ETH", 0)] == 1440  # one of its 5m rollups is gone: the whole day stays
    assert kept[("SOL", 1)] == 1440  # a minute never closed, so that day never rolled up
    assert ("ETH", 1) not in kept and ("SOL", 0) not in kept and ("BTC", 0) not in kept
    assert result.candle_rows_held_back == 2 * 1440
    assert result.candle_rows_pruned == 9 * 1440 - 2 * 1440


def test_features_funding_and_old_ledger_runs_are_pruned_on_their_own_policies(conn: MemoryConnection, clock: FrozenClock) -> None:
    four_days(conn, clock, ("BTC",))
    ledger = Ledger(conn, clock)
    run_features(conn, ledger)  # one run, started at DAY0 + 0.46 d (the conftest clock)
    conn.executemany(
        "INSERT INTO funding (coin, hour_ms, funding_rate, premium, settled, source_time_ms, ingested_at_ms) VALUES (?, ?, 0.0001, NULL, 1, ?, ?)",
        [("BTC", DAY0_MS, DAY0_MS, DAY0_MS), ("BTC", DAY0_MS + 400 * DAY_MS, DAY0_MS, DAY0_MS)],
    )
    with ledger.run(MAINTENANCE):
        pass
    clock.now_ms = DAY0_MS + 400 * DAY_MS
    archive_finished_days(conn, clock())
    assert FUNDING.retention is not None and FUNDING.retention.days < 400 and LEDGER_RETENTION.days < 400
    result = run_maintenance(conn, ledger)
    assert result.rows_pruned == {
        FUNDING.key: 1, FEATURES.key: 4 * 1440,
        # 400 days on, the 5m rollups are past their retention too; the 1h and 1d are kept
        "candle_rollups/5m": 4 * 288, "candle_gaps": 0, "candle_repairs": 0, "polymarket_markets": 0,
        "funding_revisions": 0,
    }
    assert conn.execute("SELECT hour_ms FROM funding").fetchall() == [(DAY0_MS + 400 * DAY_MS,)]
    assert conn.execute("SELECT count(*) FROM features").fetchone() == (0,)
    # Both earlier runs are past the ledger's retention; the features run is its channel's latest, so it stays.
    kept = [(r.source, r.channel, r.status) for r in runs_of(conn, "hyperliquid", "features") + runs_of(conn, "hyperliquid", "maintenance")]
    assert kept == [("hyperliquid", "features", RunStatus.SUCCEEDED), ("hyperliquid", "maintenance", RunStatus.SUCCEEDED)]
    assert result.ledger_runs_pruned == 1


@SQLITE_ONLY
def test_a_fault_inside_a_day_prune_keeps_that_day_whole_and_fails_the_run(conn: MemoryConnection, clock: FrozenClock) -> None:
    four_days(conn, clock)
    conn.execute(  # the disk "fails" on the first deletion of day 1
        f"""CREATE TRIGGER fail_day_1 BEFORE DELETE ON candles WHEN OLD.open_time_ms >= {DAY0_MS + DAY_MS}
            BEGIN SELECT RAISE(ABORT, 'disk I/O error while pruning'); END"""
    )
    clock.now_ms = AFTER_RETENTION_MS
    archive_finished_days(conn, clock())
    with pytest.raises(sqlite3.IntegrityError, match="disk I/O error while pruning"):
        run_maintenance(conn, Ledger(conn, clock))
    assert minutes_per_coin_day(conn) == {(c, d): 1440 for c in ("BTC", "ETH") for d in (1, 2, 3)}
    assert len(rollups_of(conn, "BTC", "1d")) == 4  # the rollups committed before the prune began
    (failed,) = runs_of(conn, MAINTENANCE.source, MAINTENANCE.name)
    assert failed.status is RunStatus.FAILED and "disk I/O error while pruning" in (failed.error or "")

    conn.execute("DROP TRIGGER fail_day_1")
    retry = run_maintenance(conn, Ledger(conn, clock))
    assert retry.candle_rows_pruned == 2 * 2 * 1440
    assert minutes_per_coin_day(conn) == {("BTC", 3): 1440, ("ETH", 3): 1440}


@SQLITE_ONLY
def test_a_run_killed_mid_prune_leaves_no_half_pruned_day_and_the_ledger_shows_it_running(
    conn: MemoryConnection, clock: FrozenClock, memory_path: Path
) -> None:
    four_days(conn, clock)
    archive_finished_days(conn, AFTER_RETENTION_MS)
    worker = subprocess.run(
        [sys.executable, maintenance_worker.__file__, str(memory_path), str(AFTER_RETENTION_MS)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    assert minutes_per_coin_day(conn) == {(c, d): 1440 for c in ("BTC", "ETH") for d in (1, 2, 3)}  # day 0 done, day 1 whole
    (killed,) = runs_of(conn, MAINTENANCE.source, MAINTENANCE.name)
    assert killed.status is RunStatus.RUNNING and killed.finished_at_ms is None  # turns stale past the threshold

    clock.now_ms = AFTER_RETENTION_MS + 60_000
    resumed = run_maintenance(conn, Ledger(conn, clock))
    assert resumed.candle_rows_pruned == 2 * 2 * 1440
    assert minutes_per_coin_day(conn) == {("BTC", 3): 1440, ("ETH", 3): 1440}


@SQLITE_ONLY
def test_planner_statistics_are_refreshed_though_the_streamer_commits_while_they_are(
    conn: MemoryConnection, clock: FrozenClock, memory_path: Path
) -> None:
    """``PRAGMA optimize`` reads before its ANALYZE writes; a commit in between used to fail the
    maintenance run with ``database is locked`` at once (bench/wal.py)."""
    four_days(conn, clock)
    conn.execute("SELECT count(*) FROM candles WHERE coin = 'BTC' AND interval = '1m'").fetchone()  # marks candles for optimize
    streamer = connect(memory_path, clock=clock)
    streamer.execute("PRAGMA busy_timeout = 0")
    optimizing = False
    streamer_tried: list[str] = []

    def trace(statement: str) -> None:
        nonlocal optimizing
        optimizing = optimizing or statement == "PRAGMA optimize"

    def commit_meanwhile() -> int:
        if optimizing and not streamer_tried:
            try:
                store(streamer, series("ETH", DAY0_MS + 4 * DAY_MS, random_walk(9, 5)), clock())
                streamer_tried.append("committed")
            except sqlite3.OperationalError:
                streamer_tried.append("waited for the lock")
        return 0

    conn.set_trace_callback(trace)
    conn.set_progress_handler(commit_meanwhile, 1)
    try:
        retention.optimize(conn)
    finally:
        conn.set_progress_handler(None, 0)
        conn.set_trace_callback(None)
    assert streamer_tried == ["waited for the lock"]
    assert "candles" in {row[0] for row in conn.execute("SELECT tbl FROM main.sqlite_stat1")}
    close(streamer)
