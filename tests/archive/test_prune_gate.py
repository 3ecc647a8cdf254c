"""Maintenance prunes a 1-minute day only once its archive partition exists and matches (SPEC §10-11)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from market_assets import archive
from market_assets.ledger import Ledger
from market_assets.maintenance import MaintenanceSettings, run_maintenance
from market_assets.memory import archive as stamps
from market_assets.memory import connect
from market_assets.memory.candles import CandleRow
from market_assets.memory.connection import MemoryConnection, close
from market_assets.memory.runs import runs_of
from market_assets.memory.target import MemoryTarget
from market_assets.registry import CANDLES, MAINTENANCE
from tests.archive import archive_finished_days, realistic_day
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, store
from tests.postgres.reuse import SQLITE_ONLY

AFTER_RETENTION_MS = DAY0_MS + (CANDLES.retention.days + 3) * DAY_MS if CANDLES.retention else 0
"""Days 0, 1 and 2 from DAY0 are past the 1-minute retention, day 3 not."""


def three_archived_days(conn: MemoryConnection, clock: FrozenClock, root: Path) -> list[CandleRow]:
    rows = [row for day in range(4) for row in realistic_day(2, DAY0_MS + day * DAY_MS, seed=day)]
    store(conn, rows, clock())
    clock.now_ms = AFTER_RETENTION_MS
    archive_finished_days(conn, clock(), root)
    return rows


def stored(conn: MemoryConnection, day: int) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT coin, open_time_ms, open, high, low, close, volume, trades, confirmed FROM candles "
        "WHERE interval = '1m' AND open_time_ms >= ? AND open_time_ms < ? ORDER BY coin, open_time_ms",
        (DAY0_MS + day * DAY_MS, DAY0_MS + (day + 1) * DAY_MS),
    ).fetchall()


def source_of(rows: list[CandleRow], day: int) -> list[tuple[object, ...]]:
    day_rows = [r for r in rows if DAY0_MS + day * DAY_MS <= r.open_time_ms < DAY0_MS + (day + 1) * DAY_MS]
    return [
        (r.coin, r.open_time_ms, r.open, r.high, r.low, r.close, r.volume, r.trades, int(r.confirmed))
        for r in sorted(day_rows, key=lambda r: (r.coin, r.open_time_ms))
    ]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("flipped", "partition (unreadable|corrupted): {path}"),
        ("truncated", "partition unreadable: {path}"),
        ("missing", "partition missing: {path}"),
    ],
)
def test_a_damaged_or_missing_partition_blocks_its_days_prune_and_says_so(
    conn: MemoryConnection, clock: FrozenClock, tmp_path: Path, damage: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "archive"
    rows = three_archived_days(conn, clock, root)
    path = archive.partition_path(root, "candles", DAY0_MS + DAY_MS)
    data = path.read_bytes()
    if damage == "flipped":  # bytes flipped inside the column data, the footer intact
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.unlink()

    with caplog.at_level(logging.WARNING, logger="market_assets.maintenance"):
        result = run_maintenance(conn, Ledger(conn, clock), settings=MaintenanceSettings(archive_root=root))

    assert stored(conn, 1) == source_of(rows, 1)  # the damaged day is whole, every value as the source gave it
    assert stored(conn, 0) == [] and stored(conn, 2) == []  # its neighbours, archived intact, are pruned
    assert result.candle_rows_pruned == 2 * 2 * 1440
    blocked = result.archive_blocked["candles"]
    assert list(blocked) == ["2026-11-19"]
    assert re.match(reason.format(path=re.escape(str(path))), blocked["2026-11-19"])
    (run,) = runs_of(conn, MAINTENANCE.source, MAINTENANCE.name)
    assert run.metadata["archive_blocked:candles"] == {"2026-11-19": blocked["2026-11-19"]}
    assert f"candles of 2026-11-19 kept past retention: {blocked['2026-11-19']}" in caplog.text


def test_a_partition_repaired_by_archiving_the_day_again_unblocks_it(conn: MemoryConnection, clock: FrozenClock, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    rows = three_archived_days(conn, clock, root)
    path = archive.partition_path(root, "candles", DAY0_MS)
    path.write_bytes(path.read_bytes()[:-10])
    blocked = run_maintenance(conn, Ledger(conn, clock), settings=MaintenanceSettings(archive_root=root))
    assert list(blocked.archive_blocked["candles"]) == ["2026-11-18"] and stored(conn, 0) == source_of(rows, 0)

    again = archive.write_day(conn, root, "candles", DAY0_MS, clock())  # the memory still holds it whole
    assert again.outcome is archive.Outcome.WRITTEN and "moved aside" in again.message
    assert list(path.parent.glob("_part-0.parquet.corrupt-*"))  # never thrown away,
    assert pq.read_table(root / "candles").num_rows == 4 * 2 * 1440  # nor read with the folder
    retry = run_maintenance(conn, Ledger(conn, clock), settings=MaintenanceSettings(archive_root=root))
    assert retry.archive_blocked["candles"] == {} and retry.candle_rows_pruned == 2 * 1440
    assert [tuple(v.values()) for v in archive.read_candles(root, [DAY0_MS], None, DAY0_MS, DAY0_MS + DAY_MS).to_pylist()] == [
        (*row[:8], bool(row[8])) for row in source_of(rows, 0)
    ]


@SQLITE_ONLY
def test_a_change_between_the_verification_and_the_prune_keeps_the_day(
    conn: MemoryConnection, clock: FrozenClock, tmp_path: Path, memory_target: MemoryTarget
) -> None:
    """The stamp verified is re-checked inside the prune's own transaction: a minute confirmed in
    between deletes it (trigger), and the day stays whole rather than losing the confirmation."""
    root = tmp_path / "archive"
    rows = three_archived_days(conn, clock, root)
    unverified = next(r for r in rows if r.open_time_ms < DAY0_MS + DAY_MS and not r.confirmed)
    streamer = connect(memory_target, clock=clock)
    verified_day0 = False

    def confirm_after_verifying(statement: str) -> None:
        """Day 0's stamp is read just before its partition is verified; the next write transaction is its prune."""
        nonlocal verified_day0
        if "FROM archived_days" in statement and not verified_day0:
            verified_day0 = True
        elif statement == "BEGIN IMMEDIATE" and verified_day0:
            conn.set_trace_callback(None)
            store(streamer, [unverified._replace(confirmed=True)], clock())  # a REST repair confirms one minute

    conn.set_trace_callback(confirm_after_verifying)
    try:
        result = run_maintenance(conn, Ledger(conn, clock), settings=MaintenanceSettings(archive_root=root))
    finally:
        conn.set_trace_callback(None)
        close(streamer)
    confirmed = [r._replace(confirmed=True) if r == unverified else r for r in rows]
    assert stored(conn, 0) == source_of(confirmed, 0)
    assert result.candle_rows_pruned == 2 * 2 * 1440  # days 1 and 2
    assert stamps.stamp_of(conn, "candles", DAY0_MS) is None


def test_without_any_archive_nothing_is_pruned(conn: MemoryConnection, clock: FrozenClock, tmp_path: Path) -> None:
    rows = [row for day in range(4) for row in realistic_day(1, DAY0_MS + day * DAY_MS, seed=day)]
    store(conn, rows, clock())
    clock.now_ms = AFTER_RETENTION_MS
    result = run_maintenance(conn, Ledger(conn, clock), settings=MaintenanceSettings(archive_root=tmp_path / "none"))
    assert result.candle_rows_pruned == 0 and sorted(result.archive_blocked["candles"]) == ["2026-11-18", "2026-11-19", "2026-11-20"]
    assert all(stored(conn, day) == source_of(rows, day) for day in range(4))
