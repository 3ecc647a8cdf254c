"""The candles sensor reports each streamer window once, as a runless materialization."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from market_assets.clock import wall_clock_ms
from market_assets.defs.hyperliquid.candles import (
    candles_windows_sensor,
    windows_to_report,
)
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.history import backfill_metadata
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.memory.runs import RunRecord, RunStatus
from market_assets.registry import CANDLES, FUNDING

WINDOW_MS = CANDLES.expected_cadence_sec * 1000


def record_windows(db: Path, rows: list[int], *, first_start_ms: int) -> None:
    with open_memory(db) as conn:
        ledger = Ledger(conn)
        for i, count in enumerate(rows):
            window = ledger.start(CANDLES, started_at_ms=first_start_ms + i * WINDOW_MS)
            window.add_rows(count)
            window.succeed(finished_at_ms=first_start_ms + (i + 1) * WINDOW_MS)


def tick(db: Path, cursor: str | None) -> dg.SensorExecutionData:
    context = dg.build_sensor_context(cursor=cursor, resources={"memory": MarketMemory(db_path=str(db))})
    return candles_windows_sensor.evaluate_tick(context)


def test_one_materialization_per_new_window_and_none_when_nothing_changed(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    start = wall_clock_ms() - 10 * WINDOW_MS
    record_windows(db, [180, 181, 179], first_start_ms=start)
    with open_memory(db) as conn:  # another channel's runs interleave in the ledger
        with Ledger(conn).run(FUNDING):
            pass

    first = tick(db, None)
    assert [e.metadata["rows_written"].value for e in first.asset_events] == [180, 181, 179]
    assert {e.asset_key for e in first.asset_events} == {dg.AssetKey(["hyperliquid", "candles"])}
    assert first.asset_events[0].metadata["dagster/row_count"].value == 180

    unchanged = tick(db, first.cursor)
    assert unchanged.asset_events == [] and unchanged.cursor == first.cursor
    assert "no finished candle window" in unchanged.skip_message

    record_windows(db, [200], first_start_ms=start + 3 * WINDOW_MS)
    after_one_more = tick(db, first.cursor)
    assert [e.metadata["rows_written"].value for e in after_one_more.asset_events] == [200]


def test_a_running_window_holds_the_cursor_until_it_finishes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    now = wall_clock_ms()
    record_windows(db, [10], first_start_ms=now - 2 * WINDOW_MS)
    with open_memory(db) as streamer_conn:
        in_flight = Ledger(streamer_conn).start(CANDLES, started_at_ms=now - WINDOW_MS // 2)
        first = tick(db, None)
        assert [e.metadata["rows_written"].value for e in first.asset_events] == [10]
        assert tick(db, first.cursor).asset_events == []
        in_flight.add_rows(42)
        in_flight.succeed()
    second = tick(db, first.cursor)
    assert [e.metadata["rows_written"].value for e in second.asset_events] == [42]


def test_a_window_abandoned_by_a_killed_streamer_does_not_block_reports() -> None:
    now = 1_795_000_000_000
    stale_ms = CANDLES.stale_after_sec * 1000

    def window(run_id: int, status: RunStatus, started: int) -> RunRecord:
        return RunRecord(run_id, "hyperliquid", "candles", started, None, status, 5, None, 0, 0)

    abandoned = window(1, RunStatus.RUNNING, now - stale_ms - 1_000)
    later = window(2, RunStatus.SUCCEEDED, now - 1_000)
    failed = window(3, RunStatus.FAILED, now - 500)
    fresh = window(4, RunStatus.RUNNING, now - 100)
    reported, cursor = windows_to_report([abandoned, later, failed, fresh], now)
    assert [w.run_id for w in reported] == [2]
    assert cursor == 3


def test_a_history_backfill_run_is_not_a_window_and_does_not_hold_the_cursor(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    now = wall_clock_ms()
    record_windows(db, [10], first_start_ms=now - 3 * WINDOW_MS)
    with open_memory(db) as conn:  # a backfill of today, still running in a Dagster run worker
        Ledger(conn).start(CANDLES, started_at_ms=now - 2 * WINDOW_MS, metadata=backfill_metadata(now - WINDOW_MS, now))
    record_windows(db, [20], first_start_ms=now - 2 * WINDOW_MS)
    first = tick(db, None)
    assert [e.metadata["rows_written"].value for e in first.asset_events] == [10, 20]
    with open_memory(db) as conn:
        finished = Ledger(conn).start(CANDLES, metadata=backfill_metadata(now - WINDOW_MS, now))
        finished.add_rows(7_200)
        finished.succeed()
    assert tick(db, first.cursor).asset_events == []


def test_before_the_streamer_made_a_memory_the_sensor_skips_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "not-yet" / "market.db"
    result = tick(db, None)
    assert result.asset_events == [] and result.cursor is None
    assert f"no market memory at {db}" in result.skip_message
    assert list(tmp_path.iterdir()) == []
