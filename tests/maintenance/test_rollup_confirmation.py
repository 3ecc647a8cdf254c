"""Schema V8: rollups count their confirmed minutes, and follow a confirmation that changes no value;
a change to an archived day removes its archive stamp."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.hyperliquid import FundingRow, upsert_funding
from market_assets.memory.rollups import roll_pending
from market_assets.memory.schema import MIGRATIONS
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, random_walk, series, store

HOUR_MS = 3_600_000


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The tests that take ``conn`` run on SQLite and on PostgreSQL (``memory_conn``)."""
    return memory_conn


def confirmed_rollups(conn: MemoryConnection, interval: str) -> list[tuple[int, int, int]]:
    return conn.execute(
        "SELECT open_time_ms - ?, minutes, confirmed_minutes FROM candle_rollups WHERE coin = 'ETH' AND interval = ? "
        "ORDER BY open_time_ms",
        (DAY0_MS, interval),
    ).fetchall()


def test_rollups_count_confirmed_minutes_and_follow_a_confirmation_alone(conn: MemoryConnection, clock: FrozenClock) -> None:
    rows = series("ETH", DAY0_MS, random_walk(3, 120))
    # Minutes 7, 8 and 61 closed but unverified: the stream never saw the next bucket after them.
    unverified = {7, 8, 61}
    store(conn, [r._replace(confirmed=i not in unverified) for i, r in enumerate(rows)], clock())
    roll_pending(conn, DAY0_MS + 2 * HOUR_MS)
    assert confirmed_rollups(conn, "5m")[:2] == [(0, 5, 5), (5 * MINUTE_MS, 5, 3)]
    assert confirmed_rollups(conn, "1h") == [(0, 60, 58), (HOUR_MS, 60, 59)]
    features_queued = conn.execute("SELECT count(*) FROM pending_features").fetchone()[0]

    # REST confirms minute 8 with the very values stored: only its hour is queued again.
    store(conn, [rows[8]._replace(confirmed=True)], clock())
    assert conn.execute("SELECT coin, bucket_ms - ?, from_ms - ?, to_ms - ? FROM pending_rollups WHERE interval = '1h'",
                        (DAY0_MS,) * 3).fetchall() == [("ETH", 0, 5 * MINUTE_MS, 10 * MINUTE_MS)]
    assert conn.execute("SELECT count(*) FROM pending_features").fetchone()[0] == features_queued
    roll_pending(conn, DAY0_MS + 2 * HOUR_MS)
    assert confirmed_rollups(conn, "5m")[1] == (5 * MINUTE_MS, 5, 4)
    assert confirmed_rollups(conn, "1h") == [(0, 60, 59), (HOUR_MS, 60, 59)]


def test_a_v7_memory_counts_the_confirmed_minutes_of_its_rollups_on_migrating(tmp_path, clock: FrozenClock) -> None:
    clock.now_ms = DAY0_MS + 3 * DAY_MS
    current = connect(tmp_path / "v8.db", clock=clock)
    rows = series("ETH", DAY0_MS, random_walk(5, 2 * 1440))
    store(current, [r._replace(confirmed=i % 7 != 0) for i, r in enumerate(rows)], clock())
    run_maintenance(current, Ledger(current, clock))
    expected = {interval: confirmed_rollups(current, interval) for interval in ("5m", "1h", "1d")}
    current.close()

    # The same memory as schema V7 stored it, its first day's minutes already pruned: those
    # rollups keep their minutes but cannot know how many were confirmed.
    path = tmp_path / "v7.db"
    old = sqlite3.connect(path, isolation_level=None)
    for statements in MIGRATIONS[:7]:
        for statement in statements:
            old.execute(statement)
    old.execute("PRAGMA user_version = 7")
    old.execute("ATTACH ? AS v8", (str(tmp_path / "v8.db"),))
    old.execute("INSERT INTO candles SELECT * FROM v8.candles WHERE open_time_ms >= ?", (DAY0_MS + DAY_MS,))
    old.execute("INSERT INTO candle_rollups SELECT coin, interval, open_time_ms, open, high, low, close, volume, trades, "
                "minutes, complete, rolled_up_at_ms FROM v8.candle_rollups")
    old.execute("DELETE FROM pending_rollups")
    old.execute("DETACH v8")
    old.close()

    migrated = connect(path, clock=clock)
    for interval, rollups in expected.items():
        assert confirmed_rollups(migrated, interval) == [
            (t, minutes, confirmed if t >= DAY_MS else 0) for t, minutes, confirmed in rollups
        ]
    assert expected["1d"] == [(0, 1440, 1440 - 206), (DAY_MS, 1440, 1440 - 206)]
    migrated.close()


def stamps(conn: MemoryConnection) -> list[tuple[str, int]]:
    return conn.execute("SELECT dataset, day_ms - ? FROM archived_days ORDER BY 1, 2", (DAY0_MS,)).fetchall()


def test_a_change_to_an_archived_day_removes_its_stamp_and_nothing_else(conn: MemoryConnection, clock: FrozenClock) -> None:
    rows = series("ETH", DAY0_MS, random_walk(9, 3 * 1440))
    store(conn, [r._replace(confirmed=i != 1500) for i, r in enumerate(rows)], clock())
    upsert_funding(conn, [FundingRow("ETH", DAY0_MS + h * HOUR_MS, Decimal("0.0001"), None, True, DAY0_MS + h * HOUR_MS + 7)
                          for h in range(72)], clock())
    conn.executemany(
        "INSERT INTO archived_days (dataset, day_ms, rows, checksum, archived_at_ms) VALUES (?, ?, 1, 'x', 0)",
        [(dataset, DAY0_MS + d * DAY_MS) for dataset in ("candles", "funding") for d in range(3)],
    )

    store(conn, [rows[1500]._replace(confirmed=True)], clock())  # day 1: confirmed, same values
    assert stamps(conn) == [("candles", 0), ("candles", 2 * DAY_MS), *(("funding", d * DAY_MS) for d in range(3))]
    store(conn, [rows[5]._replace(close=rows[5].close * 1.01, confirmed=True)], clock())  # day 0: revised
    assert stamps(conn) == [("candles", 2 * DAY_MS), *(("funding", d * DAY_MS) for d in range(3))]
    store(conn, [rows[2 * 1440]._replace(confirmed=True)], clock())  # day 2: re-sent byte for byte, nothing changes
    upsert_funding(conn, [FundingRow("ETH", DAY0_MS + 50 * HOUR_MS, Decimal("0.0001"), None, True, DAY0_MS + 50 * HOUR_MS + 7)],
                   clock())  # day 2's hour re-read as it was
    assert stamps(conn) == [("candles", 2 * DAY_MS), *(("funding", d * DAY_MS) for d in range(3))]
    upsert_funding(conn, [FundingRow("ETH", DAY0_MS + 30 * HOUR_MS, Decimal("0.0002"), None, True, DAY0_MS + 30 * HOUR_MS + 7)],
                   clock())  # day 1's hour 6 corrected
    assert stamps(conn) == [("candles", 2 * DAY_MS), ("funding", 0), ("funding", 2 * DAY_MS)]


def test_a_minute_written_into_a_pruned_day_leaves_its_rollups_whole(conn: MemoryConnection, clock: FrozenClock) -> None:
    """Only retention removes minutes; a bucket rolled again from what retention left would lose
    the pruned ones from every interval above it (a manual backfill of an old day)."""
    clock.now_ms = DAY0_MS + 3 * DAY_MS
    rows = series("ETH", DAY0_MS, random_walk(4, 2 * 1440))
    store(conn, [r._replace(confirmed=True) for r in rows], clock())
    roll_pending(conn, clock())
    before = {interval: confirmed_rollups(conn, interval) for interval in ("5m", "1h", "1d")}
    conn.execute("DELETE FROM candles WHERE open_time_ms < ?", (DAY0_MS + DAY_MS,))  # day 0 pruned

    store(conn, [rows[62]._replace(close=rows[62].close * 1.5, confirmed=True)], clock())
    assert conn.execute("SELECT count(*) FROM pending_rollups WHERE interval = '1h'").fetchone()[0] == 1
    roll_pending(conn, clock())
    assert {interval: confirmed_rollups(conn, interval) for interval in ("5m", "1h", "1d")} == before
    assert conn.execute("SELECT count(*) FROM pending_rollups").fetchone()[0] == 0
    # A minute of a day still held is rolled as ever.
    store(conn, [rows[1504]._replace(close=rows[1504].close * 1.5, confirmed=True)], clock())
    roll_pending(conn, clock())
    assert conn.execute("SELECT close FROM candle_rollups WHERE coin = 'ETH' AND interval = '5m' AND open_time_ms = ?",
                        (DAY0_MS + 1500 * MINUTE_MS,)).fetchone()[0] == rows[1504].close * 1.5
