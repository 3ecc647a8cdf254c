"""SPEC §3: every run is recorded running, then succeeded or failed, even across processes and crashes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from market_assets.health import Status, evaluate_channel, read_health
from market_assets.ingest.history import backfill_metadata
from market_assets.ledger import DATA_LATEST_LOOKBACK_MS, MAX_ERROR_CHARS, Ledger
from market_assets.memory import RunStatus, connect, open_memory
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.open_window import open_window_ms
from market_assets.memory.runs import (
    RunQuery,
    RunRecord,
    get_run,
    latest_run,
    latest_runs,
    latest_runs_of,
    newest_data_ms,
    runs_of,
)
from market_assets.memory.target import MemoryTarget
from market_assets.registry import CANDLES, DEFILLAMA_MACRO, FUNDING
from streamer.windows import WindowRecorder

from .conftest import T0_MS, FrozenClock, close_memory
from .market_data import DAY_MS, MINUTE_MS, candle, store

WORKER = Path(__file__).with_name("ledger_worker.py")


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """Every test of this module runs on SQLite and on PostgreSQL (``memory_conn``, ``memory_target``)."""
    return memory_conn


def test_a_run_is_running_while_it_works_then_succeeded_with_its_counts(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    ledger = Ledger(conn, clock)
    with ledger.run(FUNDING, metadata={"coins": 3}) as run:
        during = get_run(conn, run.run_id)
        run.add_rows(120)
        run.add_retries(2)
        run.add_throttles(1)
        run.metadata["pages"] = 4
        clock.advance(seconds=7)
    assert during is not None and during.status is RunStatus.RUNNING and during.finished_at_ms is None
    done = get_run(conn, run.run_id)
    assert done is not None
    assert done.status is RunStatus.SUCCEEDED
    assert (done.rows_written, done.retries, done.throttles) == (120, 2, 1)
    assert done.finished_at_ms - done.started_at_ms == 7_000
    assert done.metadata == {"coins": 3, "pages": 4}
    assert done.error is None


def test_a_failing_run_is_recorded_failed_and_the_exception_propagates(conn: MemoryConnection) -> None:
    ledger = Ledger(conn)
    with pytest.raises(ConnectionError, match="api.hyperliquid.xyz refused"):
        with ledger.run(FUNDING) as run:
            run.add_rows(10)
            raise ConnectionError("api.hyperliquid.xyz refused")
    failed = get_run(conn, run.run_id)
    assert failed is not None
    assert failed.status is RunStatus.FAILED
    assert failed.error == "ConnectionError: api.hyperliquid.xyz refused"
    assert failed.rows_written == 10  # what was written before the failure is still counted
    assert failed.finished_at_ms is not None


def test_long_error_text_is_truncated(conn: MemoryConnection) -> None:
    with pytest.raises(ValueError), Ledger(conn).run(FUNDING) as run:
        raise ValueError("x" * 10 * MAX_ERROR_CHARS)
    failed = get_run(conn, run.run_id)
    assert failed is not None and failed.error is not None and len(failed.error) == MAX_ERROR_CHARS


def test_a_run_cannot_be_finished_twice(conn: MemoryConnection) -> None:
    run = Ledger(conn).start(FUNDING)
    run.succeed()
    with pytest.raises(RuntimeError, match="cannot be finished twice"):
        run.fail("late failure")
    assert get_run(conn, run.run_id).status is RunStatus.SUCCEEDED


def test_the_streamer_records_one_run_per_minute_window(conn: MemoryConnection, clock: FrozenClock) -> None:
    ledger = Ledger(conn, clock)
    window_ms = CANDLES.expected_cadence_sec * 1000
    start = clock.now_ms - clock.now_ms % window_ms
    for minute, rows in enumerate((180, 0, 181)):
        window = ledger.start(CANDLES, started_at_ms=start + minute * window_ms)
        window.add_rows(rows)
        window.succeed(finished_at_ms=start + (minute + 1) * window_ms)
    recorded = runs_of(conn, CANDLES.source, CANDLES.name)
    assert [(r.started_at_ms - start, r.rows_written, r.status) for r in recorded] == [
        (0, 180, RunStatus.SUCCEEDED),
        (window_ms, 0, RunStatus.SUCCEEDED),
        (2 * window_ms, 181, RunStatus.SUCCEEDED),
    ]


def test_health_reads_the_latest_run_of_each_channel(conn: MemoryConnection, clock: FrozenClock) -> None:
    ledger = Ledger(conn, clock)
    with pytest.raises(RuntimeError), ledger.run(FUNDING):
        raise RuntimeError("first run fails")
    clock.advance(seconds=1)
    with ledger.run(FUNDING) as run:
        run.add_rows(5)
    report = read_health(conn, clock.now_ms)
    funding = next(c for c in report.channels if c.channel is FUNDING)
    assert (funding.status, funding.row().rows_written) == (Status.OK, 5)


def test_the_dashboard_s_batched_lookups_answer_as_one_lookup_each(conn: MemoryConnection, clock: FrozenClock) -> None:
    """``latest_runs_of`` (one statement on PostgreSQL) finds what ``latest_run`` finds for every
    query: statuses, a window's start, a run still going, backfills passed over, none at all."""
    ledger = Ledger(conn, clock)
    with pytest.raises(RuntimeError), ledger.run(FUNDING):
        raise RuntimeError("failed first")
    clock.advance(seconds=60)
    with ledger.run(FUNDING) as run:
        run.add_rows(3)
    clock.advance(seconds=60)
    with ledger.run(CANDLES):
        pass
    clock.advance(seconds=60)
    with ledger.run(CANDLES, metadata=backfill_metadata(clock() - DAY_MS, clock())):  # not the channel's own
        pass
    clock.advance(seconds=60)
    ledger.start(CANDLES)  # a window in flight
    now = clock()
    queries = [
        RunQuery(channel.source, channel.name, statuses, since)
        for channel in (FUNDING, CANDLES, DEFILLAMA_MACRO)
        for statuses in (tuple(RunStatus), (RunStatus.SUCCEEDED, RunStatus.FAILED), (RunStatus.SUCCEEDED,),
                         (RunStatus.FAILED,), (RunStatus.RUNNING,))
        for since in (None, now - 150_000, now + 1)
    ]
    expected = [latest_run(conn, q.source, q.channel, statuses=q.statuses, since_ms=q.since_ms) for q in queries]
    assert sum(run is not None for run in expected) >= 10  # the ledger above answers most of them
    assert latest_runs_of(conn, queries) == expected
    assert latest_runs_of(conn, []) == []
    channels = [(c.source, c.name) for c in (FUNDING, CANDLES, DEFILLAMA_MACRO)]
    assert latest_runs(conn, channels) == {
        key: run for key, run in zip(channels, latest_runs_of(conn, [RunQuery(*key) for key in channels]), strict=True)
        if run is not None
    }
    assert latest_runs(conn, channels)[(CANDLES.source, CANDLES.name)].status is RunStatus.RUNNING


def test_two_processes_writing_runs_at_once_lose_nothing(memory_target: MemoryTarget) -> None:
    close_memory(connect(memory_target))  # create the memory first, as a deploy does
    count = 150
    start_at = str(time.time() + 1.0)  # both workers begin their loops at the same instant
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(memory_target), "runs", str(count), "--start-at", start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [w.communicate(timeout=120) for w in workers]
    for worker, (_, stderr) in zip(workers, results):
        assert "database is locked" not in stderr
        assert worker.returncode == 0, stderr
    conn = connect(memory_target)
    recorded = runs_of(conn, FUNDING.source, FUNDING.name)
    close_memory(conn)
    assert len(recorded) == 2 * count
    assert {r.status for r in recorded} == {RunStatus.SUCCEEDED}
    assert sorted(r.rows_written for r in recorded) == sorted(list(range(count)) * 2)


def test_a_run_killed_with_sigkill_stays_running_and_turns_stale(memory_target: MemoryTarget) -> None:
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(memory_target), "hang"], stdout=subprocess.PIPE, text=True
    )
    try:
        run_id = int(worker.stdout.readline())
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert worker.returncode == -signal.SIGKILL
    conn = connect(memory_target)
    killed = get_run(conn, run_id)
    close_memory(conn)
    assert killed is not None and killed.status is RunStatus.RUNNING and killed.finished_at_ms is None
    threshold_ms = FUNDING.stale_after_sec * 1000
    assert evaluate_channel(FUNDING, killed, killed.started_at_ms + threshold_ms).status is Status.RUNNING
    assert evaluate_channel(FUNDING, killed, killed.started_at_ms + threshold_ms + 1000).status is Status.STALE


def test_a_finished_run_records_its_channels_newest_data_timestamp(conn: MemoryConnection, clock: FrozenClock) -> None:
    """The admin page draws each run's data lag from it: candles' 1m rows only (the registry's
    scope), the newest within the lookback; none there records none."""
    now = clock()
    store(conn, [candle("BTC", now - 5 * MINUTE_MS, 100.0), candle("ETH", now - 3 * MINUTE_MS, 50.0),
                 candle("ETH", now - MINUTE_MS, 50.0)._replace(interval="5m")], now)
    ledger = Ledger(conn, clock)
    with ledger.run(CANDLES, metadata=backfill_metadata(now - DAY_MS, now)) as candles_run:
        pass
    with ledger.run(FUNDING) as funding_run:
        pass
    assert _recorded(conn, candles_run.run_id).data_latest_ms == now - 3 * MINUTE_MS
    assert _recorded(conn, funding_run.run_id).data_latest_ms is None

    clock.advance(seconds=DATA_LATEST_LOOKBACK_MS / 1000 + 4 * 60)  # the newest minute is past the lookback
    with ledger.run(CANDLES) as late:
        pass
    assert _recorded(conn, late.run_id).data_latest_ms is None


def test_a_run_keeps_the_newest_data_timestamp_its_writer_knows(conn: MemoryConnection, clock: FrozenClock) -> None:
    now = clock()
    store(conn, [candle("BTC", now - 5 * MINUTE_MS, 100.0)], now)
    run = Ledger(conn, clock).start(CANDLES, started_at_ms=now - MINUTE_MS)
    run.data_latest_ms = now - 2 * MINUTE_MS
    run.fail("cannot write: database is locked")
    assert _recorded(conn, run.run_id).data_latest_ms == now - 2 * MINUTE_MS


def test_each_streamer_window_records_the_newest_minute_written_when_it_closed(memory_target: MemoryTarget) -> None:
    """Kept from the flushes, no query: a window with no write keeps the newest before it; the
    first window, before any write, leaves it to the ledger's read."""
    start = T0_MS - T0_MS % MINUTE_MS
    recorder = WindowRecorder(MINUTE_MS, lambda: start)
    with open_memory(memory_target) as conn:
        store(conn, [candle("BTC", start - 9 * MINUTE_MS, 100.0)], start)
        recorder.roll(conn, start, {}, None)
        recorder.roll(conn, start + MINUTE_MS, {}, None)  # closes a window with no write
        recorder.written(3, start)
        recorder.written(2, start - MINUTE_MS)
        recorder.roll(conn, start + 2 * MINUTE_MS, {}, None)
        recorder.written(0, None)
        recorder.roll(conn, start + 3 * MINUTE_MS, {}, None)
        windows = runs_of(conn, "hyperliquid", "candles")
    assert [w.data_latest_ms for w in windows] == [start - 9 * MINUTE_MS, start, start]


_REFUSE_FINISHES = {
    "sqlite": ["""CREATE TRIGGER refuse_finish BEFORE UPDATE ON ingestion_runs
        BEGIN SELECT RAISE(ABORT, 'the disk is gone'); END"""],
    "postgres": [
        """CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN RAISE EXCEPTION 'the disk is gone'; END $$""",
        "CREATE TRIGGER refuse_finish BEFORE UPDATE ON ingestion_runs FOR EACH ROW EXECUTE FUNCTION refuse_finish()",
    ],
}


def test_a_window_roll_that_fails_midway_leaves_neither_a_started_window_nor_a_moved_marker(
    memory_target: MemoryTarget,
) -> None:
    """What a kill amid a roll leaves: the closed window started in the ledger but not finished
    would be reaped as abandoned, and the marker already naming the next window would have the
    restart record that one failed too. The roll is one transaction: all of it, or nothing."""
    start = T0_MS - T0_MS % MINUTE_MS
    recorder = WindowRecorder(MINUTE_MS, lambda: start)
    engine = "sqlite" if isinstance(memory_target, Path) else "postgres"
    with open_memory(memory_target) as conn:
        recorder.roll(conn, start, {}, None)
        for statement in _REFUSE_FINISHES[engine]:
            conn.execute(statement)
        with pytest.raises(Exception, match="the disk is gone"):
            recorder.roll(conn, start + MINUTE_MS, {}, None)
        assert runs_of(conn, "hyperliquid", "candles") == []
        assert open_window_ms(conn) == start
        conn.execute("DROP TRIGGER refuse_finish" + ("" if engine == "sqlite" else " ON ingestion_runs"))
        recorder.roll(conn, start + 2 * MINUTE_MS, {}, None)  # the next roll records what the failed one held
        windows = runs_of(conn, "hyperliquid", "candles")
        marked = open_window_ms(conn)
    assert [(w.started_at_ms, w.status) for w in windows] == [
        (start, RunStatus.SUCCEEDED), (start + MINUTE_MS, RunStatus.SUCCEEDED)]
    assert marked == start + 2 * MINUTE_MS


def _recorded(conn: MemoryConnection, run_id: int) -> RunRecord:
    record = get_run(conn, run_id)
    assert record is not None
    return record


def test_the_newest_data_timestamp_is_the_same_walked_by_subject_or_read_over_the_range(conn: MemoryConnection) -> None:
    """Funding is walked coin by coin (its key leads with the coin), DefiLlama read over the range
    (its key leads with the series): both give the newest timestamp at or after the bound."""
    hour = 3_600_000
    conn.executemany(
        "INSERT INTO funding (coin, hour_ms, funding_rate, premium, settled, source_time_ms, ingested_at_ms) VALUES (?, ?, 0.0001, NULL, 1, 0, 0)",
        [("BTC", 10 * hour), ("ETH", 12 * hour), ("SOL", 3 * hour)],
    )
    conn.executemany(
        "INSERT INTO defillama_series (series, subject, ts_ms, value, updated_at_ms) VALUES (?, ?, ?, 1.0, 0)",
        [("tvl", "Ethereum", 5 * DAY_MS), ("fees", "total", 7 * DAY_MS), ("tvl", "Solana", 2 * DAY_MS)],
    )
    assert newest_data_ms(conn, FUNDING.data, 11 * hour) == 12 * hour
    assert newest_data_ms(conn, FUNDING.data, 13 * hour) is None
    assert newest_data_ms(conn, DEFILLAMA_MACRO.data, 3 * DAY_MS) == 7 * DAY_MS
