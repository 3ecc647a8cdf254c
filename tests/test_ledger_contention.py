"""SPEC §3 under contention: another process holding the write lock cannot leave a failed run
``running`` or hide its error; a run whose process is gone is reaped as ``failed`` ("abandoned");
a busy memory is one line and exit 75 from the CLI. Every other process here is real."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from market_assets.cli import EXIT_MEMORY_BUSY
from market_assets.ledger import Ledger, reap_abandoned_runs
from market_assets.memory import RunStatus, connect
from market_assets.memory.connection import BUSY_TIMEOUT_SEC, MemoryConnection
from market_assets.memory.dialect import pick
from market_assets.memory.runs import ABANDONED, get_run, reap_abandoned
from market_assets.memory.target import MemoryTarget
from market_assets.registry import FUNDING, REGISTRY

from .conftest import MARKET, FrozenClock, close_memory

WORKER = Path(__file__).with_name("ledger_worker.py")
SHORT_BUSY_TIMEOUT_MS = 200
"""The test's own connection gives up on the lock this fast, so a lock held for a couple of
seconds outlasts its busy timeout as a lock held for minutes outlasts the production one."""


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL after a deadline: no worker outlives its test."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def worker(db: MemoryTarget, *args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, str(WORKER), str(db), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        stop(process)


@contextmanager
def write_lock_held(db: MemoryTarget, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the write lock of ``db`` (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
    advisory lock) for ``seconds`` from when this returns."""
    with worker(db, "lock", str(seconds)) as locker:
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked", locker.stderr.read() if locker.stderr else ""
        yield locker


@pytest.fixture
def db(memory_target: MemoryTarget) -> MemoryTarget:
    """A memory made before the test, as a deploy does; on SQLite and on PostgreSQL."""
    close_memory(connect(memory_target))
    return memory_target


@pytest.fixture
def impatient(db: MemoryTarget) -> Iterator[MemoryConnection]:
    conn = connect(db)
    conn.execute(pick(conn, sqlite=f"PRAGMA busy_timeout = {SHORT_BUSY_TIMEOUT_MS}",
                      postgres=f"SET lock_timeout = {SHORT_BUSY_TIMEOUT_MS}"))
    try:
        yield conn
    finally:
        close_memory(conn)


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    return memory_conn


def test_a_run_failing_while_another_process_holds_the_write_lock_is_recorded_failed_with_its_own_error(
    db: MemoryTarget, impatient
) -> None:
    ledger = Ledger(impatient)
    with ExitStack() as lock:
        with pytest.raises(ConnectionError, match="api.hyperliquid.xyz refused"):
            with ledger.run(FUNDING) as run:
                run.add_rows(3)
                lock.enter_context(write_lock_held(db, seconds=2.0))
                raise ConnectionError("api.hyperliquid.xyz refused")
    failed = get_run(impatient, run.run_id)
    assert failed is not None
    assert (failed.status, failed.error, failed.rows_written) == (
        RunStatus.FAILED, "ConnectionError: api.hyperliquid.xyz refused", 3)
    assert failed.finished_at_ms is not None


def test_a_failure_the_lock_outlasts_is_logged_once_and_the_run_s_own_error_goes_on(
    db: MemoryTarget, impatient, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(impatient, finish_patience_sec=0.5)
    with ExitStack() as lock, caplog.at_level(logging.ERROR, logger="market_assets.ledger"):
        with pytest.raises(ConnectionError, match="api.hyperliquid.xyz refused"):
            with ledger.run(FUNDING) as run:
                lock.enter_context(write_lock_held(db, seconds=3.0))
                raise ConnectionError("api.hyperliquid.xyz refused")
    [line] = [r.getMessage() for r in caplog.records]
    assert f"ledger run {run.run_id} of hyperliquid/funding stays running" in line
    assert "locked by another process" in line and "ConnectionError: api.hyperliquid.xyz refused" in line
    assert get_run(impatient, run.run_id).status is RunStatus.RUNNING  # reaped once its process is gone


def test_the_next_run_of_a_channel_reaps_a_run_whose_process_is_gone_but_not_a_live_one(db: MemoryTarget) -> None:
    conn = connect(db)
    try:
        with worker(db, "hang") as hung:
            left_id = int(hung.stdout.readline())
            Ledger(conn).start(FUNDING).succeed()  # the owner is alive: its run is still its own
            assert get_run(conn, left_id).status is RunStatus.RUNNING
            hung.send_signal(signal.SIGKILL)
            hung.wait(timeout=10)
        next_run = Ledger(conn).start(FUNDING)
        left = get_run(conn, left_id)
    finally:
        close_memory(conn)
    assert left is not None and left.status is RunStatus.FAILED
    assert left.error is not None and left.error.startswith(f"{ABANDONED}: its process (pid {hung.pid} on ")
    assert left.finished_at_ms is not None and left.finished_at_ms >= left.started_at_ms
    assert next_run.run_id > left_id


def test_the_maintenance_sweep_reaps_a_killed_process_s_run_in_every_channel(db: MemoryTarget) -> None:
    with worker(db, "hang") as hung:
        left_id = int(hung.stdout.readline())
        hung.send_signal(signal.SIGKILL)
        hung.wait(timeout=10)
    conn = connect(db)
    try:
        assert reap_abandoned_runs(conn, REGISTRY, int(time.time() * 1000)) == [left_id]
        left = get_run(conn, left_id)
    finally:
        close_memory(conn)
    assert left.status is RunStatus.FAILED and left.error.startswith(ABANDONED)


def test_maintenance_reaps_a_run_nobody_can_vouch_for_once_past_its_stale_window(
    conn, clock: FrozenClock
) -> None:
    """A run recorded on another host (or before runs named their process): only its age tells."""
    old = Ledger(conn, clock).start(FUNDING)
    clock.advance(seconds=FUNDING.stale_after_sec - 60)
    young = Ledger(conn, clock).start(FUNDING)
    clock.advance(seconds=61)
    windows = {(c.source, c.name): c.stale_after_sec * 1000 for c in REGISTRY}
    unknown_owner = lambda owner: None
    assert reap_abandoned(conn, windows, clock.now_ms, gone=unknown_owner) == [old.run_id]
    assert get_run(conn, old.run_id).error.startswith(f"{ABANDONED}: still running {FUNDING.stale_after_sec + 1}s")
    assert get_run(conn, young.run_id).status is RunStatus.RUNNING


def test_a_busy_memory_is_one_line_and_its_own_exit_code(memory_path: Path) -> None:
    """On SQLite only: the CLI waits a whole busy timeout here, the same code on either engine
    (``connection.is_busy``; PostgreSQL's lock timeout is tested as busy above)."""
    db = memory_path
    close_memory(connect(db))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}
    with write_lock_held(db, seconds=BUSY_TIMEOUT_SEC + 15):
        started = time.monotonic()
        result = subprocess.run(
            [str(MARKET), "--db", str(db), "hyperliquid", "features"], capture_output=True, text=True, env=env,
            timeout=BUSY_TIMEOUT_SEC + 30,
        )
        waited = time.monotonic() - started
    assert result.returncode == EXIT_MEMORY_BUSY == 75
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"market: the market memory {db} is busy: another process has held its write lock for over "
        f"{BUSY_TIMEOUT_SEC:g} s; try again"
    ]
    assert waited >= BUSY_TIMEOUT_SEC  # it waited the lock out as long as any writer would
