"""The streaming writer's own WAL bound (``memory.retention.WalBound``), on real SQLite files.

Readers that never stop keep SQLite's automatic checkpoint from ever restarting the WAL; the
writer truncates it between two of its transactions, never inside one, and retries soon after a
refusal so a brief one (another writer's transaction) does not let the file run away.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from market_assets.memory import connect
from market_assets.memory.candles import upsert_candles
from market_assets.memory.connection import close, write_transaction
from market_assets.memory.retention import WalBound
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, MINUTE_MS, series, store

COINS = [f"C{i:02d}" for i in range(20)]


def wal_size(memory_path: Path) -> int:
    try:
        return Path(f"{memory_path}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def minute_of_every_coin(minute: int) -> list:
    """One closed candle per coin for ``minute``: the streamer's time-major order."""
    return [row for i, coin in enumerate(COINS) for row in series(coin, DAY0_MS + minute * MINUTE_MS, [100.0 + i], seed=minute)]


def test_the_bound_called_inside_the_writers_transaction_neither_checkpoints_nor_splits_it(
    conn: sqlite3.Connection, clock: FrozenClock, memory_path: Path
) -> None:
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # only the bound resets the WAL here
    bound = WalBound(memory_path, limit_bytes=32 * 1024, wait_ms=50)
    minute = 0
    while not bound.due():
        store(conn, minute_of_every_coin(minute), clock())
        minute += 1
    committed = minute * len(COINS)
    other = connect(memory_path, clock=clock)

    conn.execute("BEGIN IMMEDIATE")
    upsert_candles(conn, minute_of_every_coin(minute), clock())
    wal_inside = wal_size(memory_path)
    assert bound(conn) is None
    assert conn.in_transaction  # not committed and begun again behind the caller's back
    assert wal_size(memory_path) == wal_inside and bound.due()
    assert (bound.truncations, bound.held_back) == (0, 0)
    assert other.execute("SELECT count(*) FROM candles").fetchone() == (committed,)
    conn.execute("ROLLBACK")  # the minute written before the call goes with the rest
    assert conn.execute("SELECT count(*) FROM candles").fetchone() == (committed,)

    result = bound(conn)  # after the transaction: due still, and now it truncates
    assert result is not None and (result.mode, result.busy, result.wal_bytes_after) == ("TRUNCATE", False, 0)
    assert other.execute("SELECT count(*) FROM candles").fetchone() == (committed,)
    close(other)


def test_a_refused_truncation_is_retried_after_a_quarter_bound_not_a_whole_one(
    conn: sqlite3.Connection, clock: FrozenClock, memory_path: Path
) -> None:
    """Another writer's transaction refuses the truncation for a moment; the WAL must be reset
    well before it grows another whole bound."""
    limit = 128 * 1024
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    bound = WalBound(memory_path, limit_bytes=limit, wait_ms=30, retry_wait_ms=30)
    other = connect(memory_path, clock=clock)
    minute = 0
    while not bound.due():
        store(conn, minute_of_every_coin(minute), clock())
        minute += 1
    other.execute("BEGIN IMMEDIATE")  # maintenance's rollup transaction holds the write lock
    refused = bound(conn)
    other.execute("COMMIT")
    assert refused is not None and refused.busy and bound.held_back == 1
    refused_at = refused.wal_bytes_after

    grown_to = refused_at
    while (result := bound(conn)) is None:
        store(conn, minute_of_every_coin(minute), clock())
        minute += 1
        grown_to = max(grown_to, wal_size(memory_path))
    assert (result.mode, result.busy, result.wal_bytes_after) == ("TRUNCATE", False, 0)
    assert grown_to < refused_at + limit // 2
    assert (bound.truncations, bound.held_back, bound.retries_refused) == (1, 1, 0)
    assert other.execute("SELECT count(*) FROM candles").fetchone() == (minute * len(COINS),)
    close(other)


def test_the_wal_stays_bounded_under_a_writer_readers_holding_snapshots_and_a_second_writer(
    conn: sqlite3.Connection, clock: FrozenClock, memory_path: Path
) -> None:
    """bench/wal.py in small: the writer commits back to back, two readers loop short read
    transactions (one holds each snapshot 10 ms, as a descheduled dashboard query does) and
    another writer takes the write lock for 100 ms every 300 ms, as maintenance's rollups do."""
    limit = 512 * 1024
    bound = WalBound(memory_path, limit_bytes=limit, wait_ms=100, retry_wait_ms=20)
    stop = threading.Event()
    reads = [0, 0]

    def read(which: int, hold_s: float) -> None:
        reader = connect(memory_path, clock=clock)
        while not stop.is_set():
            reader.execute("BEGIN")
            reader.execute("SELECT count(*), max(close) FROM candles WHERE coin = ?", (COINS[reads[which] % len(COINS)],)).fetchone()
            time.sleep(hold_s)
            reader.execute("COMMIT")
            reads[which] += 1
        close(reader)

    def maintain() -> None:
        other = connect(memory_path, clock=clock)
        while not stop.wait(0.2):
            with write_transaction(other):
                other.execute("INSERT INTO memory_info (key, value) VALUES ('bench', 'x') "
                              "ON CONFLICT (key) DO UPDATE SET value = value || 'x'")
                time.sleep(0.1)
        close(other)

    threads = [threading.Thread(target=read, args=(0, 0.0)), threading.Thread(target=read, args=(1, 0.01)),
               threading.Thread(target=maintain)]
    for thread in threads:
        thread.start()
    highest = 0
    minute = 0
    deadline = time.monotonic() + 3.0
    try:
        while time.monotonic() < deadline:
            store(conn, minute_of_every_coin(minute), clock())
            minute += 1
            highest = max(highest, wal_size(memory_path))
            bound(conn)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert highest < 4 * limit  # without the bound these 3 s left 50 MB
    assert min(reads) > 10 and bound.truncations >= 3
    assert conn.execute("SELECT count(*) FROM candles").fetchone() == (minute * len(COINS),)
    assert conn.execute("SELECT close FROM candles WHERE coin = 'C07' ORDER BY open_time_ms DESC LIMIT 1").fetchone() == (107.0,)
