"""Each dashboard warning at its registry threshold: quiet at it, raised one step past it."""

from __future__ import annotations

import sqlite3

from market_assets.dashboard import DashboardRow, WarningCode, read_dashboard
from market_assets.ledger import Ledger
from market_assets.memory.candles import RepairReason
from market_assets.memory.repairs import apply_repair
from market_assets.registry import CANDLES, FUNDING, Channel
from tests.conftest import FrozenClock
from tests.market_data import candle

from .seeding import candles, finished_run, listed, no_trades, queued

MIN = 60_000
DAY = 86_400_000


def row(conn: sqlite3.Connection, clock: FrozenClock, channel: Channel = CANDLES) -> DashboardRow:
    document = read_dashboard(conn, clock.now_ms)
    return next(r for r in document.rows if (r.source, r.channel) == (channel.source, channel.name))


def codes(conn: sqlite3.Connection, clock: FrozenClock, channel: Channel = CANDLES) -> list[str]:
    return [code.value for code in row(conn, clock, channel).warnings]


def test_stale_warns_past_the_stale_threshold(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    finished_run(conn, clock, FUNDING, started_at_ms=clock.now_ms - 5000, finished_at_ms=clock.now_ms, rows=1)
    clock.advance(seconds=FUNDING.stale_after_sec)
    assert "stale" not in codes(conn, clock, FUNDING)
    clock.advance(seconds=1)
    assert "stale" in codes(conn, clock, FUNDING)
    assert row(conn, clock, FUNDING).status == "stale"


def test_data_lag_warns_when_the_newest_data_is_older_than_its_threshold(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    candles(conn, "BTC", clock.now_ms)
    clock.advance(seconds=CANDLES.warnings.data_lag_sec)
    assert (row(conn, clock).data_lag_sec, codes(conn, clock)) == (360, [])
    clock.advance(seconds=1)
    assert codes(conn, clock) == ["data_lag"]


def test_data_lag_reads_the_newest_row_even_beyond_the_last_day(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    candles(conn, "BTC", clock.now_ms - 3 * 86_400_000)
    assert row(conn, clock).data_lag_sec == 3 * 86_400
    assert "data_lag" in codes(conn, clock)


def test_zero_rows_last_run_warns_for_a_success_that_wrote_nothing(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    t0 = clock.now_ms
    finished_run(conn, clock, FUNDING, started_at_ms=t0 - 3000, finished_at_ms=t0 - 2000, rows=1)
    assert "zero_rows_last_run" not in codes(conn, clock, FUNDING)
    finished_run(conn, clock, FUNDING, started_at_ms=t0 - 1000, finished_at_ms=t0, rows=0)
    assert "zero_rows_last_run" in codes(conn, clock, FUNDING)


def test_a_failed_run_counts_as_a_failure_not_as_zero_rows(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    finished_run(conn, clock, FUNDING, started_at_ms=clock.now_ms - 1000, finished_at_ms=clock.now_ms, error="HTTP 500")
    assert codes(conn, clock, FUNDING) == ["recent_failures"]


def test_low_coverage_warns_below_its_threshold(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    coins = [f"C{i}" for i in range(10)]
    listed(conn, coins, clock.now_ms)
    for coin in coins[:9]:
        candles(conn, coin, clock.now_ms - MIN)
    assert (row(conn, clock).coverage, codes(conn, clock)) == (0.9, [])
    listed(conn, [*coins, "C10"], clock.now_ms + 1)
    assert row(conn, clock).coverage == round(9 / 11, 4)
    assert codes(conn, clock) == ["low_coverage"]


def test_coverage_counts_only_subjects_seen_in_the_last_hour(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    listed(conn, ["BTC"], clock.now_ms)
    candles(conn, "BTC", clock.now_ms - 60 * MIN)
    assert row(conn, clock).coverage == 1.0
    clock.advance(seconds=0.001)
    assert row(conn, clock).coverage == 0.0


def test_recent_failures_warn_at_their_count_inside_the_window(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    window_ms = CANDLES.warnings.recent_window_sec * 1000
    t0 = clock.now_ms
    finished_run(conn, clock, CANDLES, started_at_ms=t0 - window_ms - 1, finished_at_ms=t0 - window_ms, error="socket down")
    assert (row(conn, clock).recent_failures, codes(conn, clock)) == (0, [])
    finished_run(conn, clock, CANDLES, started_at_ms=t0 - window_ms, finished_at_ms=t0 - window_ms + 1, error="socket down")
    assert row(conn, clock).recent_failures == CANDLES.warnings.recent_failures
    assert codes(conn, clock) == ["recent_failures"]


def test_throttled_warns_at_its_count_of_429s_in_the_window(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    t0 = clock.now_ms
    finished_run(conn, clock, FUNDING, started_at_ms=t0 - 2000, finished_at_ms=t0 - 1000, rows=4, retries=3)
    assert "throttled" not in codes(conn, clock, FUNDING)
    finished_run(conn, clock, FUNDING, started_at_ms=t0 - 1000, finished_at_ms=t0, rows=4, throttles=FUNDING.warnings.throttles)
    assert "throttled" in codes(conn, clock, FUNDING)
    assert (row(conn, clock, FUNDING).recent_retries, row(conn, clock, FUNDING).recent_throttles) == (3, 1)


def test_unverified_candles_warns_once_an_unverified_minute_closed_past_its_threshold(
    conn: sqlite3.Connection, clock: FrozenClock
) -> None:
    clock.advance(seconds=(MIN - clock.now_ms % MIN) / 1000)
    opened = clock.now_ms - MIN
    candles(conn, "BTC", opened, confirmed=False)
    queued(conn, "BTC", RepairReason.UNVERIFIED, opened, now_ms=clock.now_ms)
    limit = CANDLES.warnings.unverified_after_sec
    assert limit is not None
    clock.advance(seconds=limit)
    candles(conn, "ETH", clock.now_ms - MIN)  # the stream went on: no data lag
    assert (row(conn, clock).unverified_minutes, codes(conn, clock)) == (1, [])
    clock.advance(seconds=1)
    assert codes(conn, clock) == ["unverified_candles"]
    assert row(conn, clock).warning_details == {"unverified_candles": (
        "1 unverified minute in the last 24 h; the oldest, opened 2026-11-18 11:06:00 UTC, closed 601s ago, over 600s")}
    # candleSnapshot returns the minute closed: confirmed, dequeued, and the warning is gone.
    apply_repair(conn, "BTC", "1m", MIN, [candle("BTC", opened, 100.0)], minutes=[opened], no_trades=(), unfillable=(),
                 now_ms=clock.now_ms)
    assert (row(conn, clock).unverified_minutes, row(conn, clock).repair_queue, codes(conn, clock)) == (0, 0, [])


def test_a_memory_without_unverified_minutes_has_no_unverified_warning(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    t0 = clock.now_ms - clock.now_ms % MIN
    candles(conn, "BTC", t0 - 120 * MIN, t0 - MIN)
    queued(conn, "BTC", RepairReason.MISSING, t0 - 60 * MIN, now_ms=t0 - 59 * MIN)  # owed, never stored
    no_trades(conn, "BTC", t0 - 90 * MIN, now_ms=t0)
    candles_row = row(conn, clock)
    assert (candles_row.unverified_minutes, candles_row.oldest_unverified_ms, candles_row.repair_queue,
            candles_row.no_trade_minutes) == (0, None, 1, 1)
    assert codes(conn, clock) == []


def test_an_unverified_minute_older_than_the_day_is_queued_but_not_counted(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    opened = clock.now_ms - clock.now_ms % MIN - DAY - MIN
    candles(conn, "BTC", opened, confirmed=False)
    queued(conn, "BTC", RepairReason.UNVERIFIED, opened, now_ms=clock.now_ms)
    assert (row(conn, clock).unverified_minutes, row(conn, clock).repair_queue) == (0, 1)
    assert "unverified_candles" not in codes(conn, clock)


def subjects_run(conn: sqlite3.Connection, clock: FrozenClock, subject_errors: dict[str, str], *, rows: int = 40,
                 fail: str | None = None) -> None:
    """A funding run through the real Ledger that records its failed subjects in its metadata."""
    run = Ledger(conn, clock).start(FUNDING)
    run.add_rows(rows)
    run.metadata["subject_errors"] = subject_errors
    if fail is None:
        run.succeed()
    else:
        run.fail(fail)


def test_partial_run_warns_when_the_last_run_kept_some_subjects_and_names_the_failed_ones(
    conn: sqlite3.Connection, clock: FrozenClock
) -> None:
    subjects_run(conn, clock, {})
    assert "partial_run" not in codes(conn, clock, FUNDING)
    errors = {"SOL": "HTTP 500 from info", "BTC": "timed out after 10 s", "ETH": "HTTP 429", "DOGE": "HTTP 502"}
    subjects_run(conn, clock, errors)
    funding = row(conn, clock, FUNDING)
    assert funding.last_run is not None
    assert (funding.status, [c.value for c in funding.warnings]) == ("ok", ["partial_run"])
    assert funding.warning_details == {"partial_run": (
        f"run {funding.last_run.run_id} wrote 40 rows but 4 subjects failed: "
        "BTC: timed out after 10 s; DOGE: HTTP 502; ETH: HTTP 429 (and 1 more)")}
    subjects_run(conn, clock, {"ETH": "HTTP 500"})
    assert row(conn, clock, FUNDING).warning_details[WarningCode.PARTIAL_RUN].endswith("wrote 40 rows but 1 subject failed: ETH: HTTP 500")
    subjects_run(conn, clock, {})  # the next run kept every subject: the warning is gone
    assert "partial_run" not in codes(conn, clock, FUNDING)


def test_a_run_where_every_subject_failed_is_a_failure_not_a_partial_run(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    subjects_run(conn, clock, {"BTC": "HTTP 500", "ETH": "HTTP 500"}, rows=0, fail="every coin failed: BTC, ETH")
    assert codes(conn, clock, FUNDING) == ["recent_failures"]
