"""SPEC §12: the asset checks of hyperliquid/candles, each turned red by a seeded fault that it names."""

from __future__ import annotations

import math

import pytest

from market_assets.memory.candles import RepairReason, queue_repairs
from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.memory.repairs import apply_repair
from market_assets.quality.candles import (
    CHECKS,
    continuity,
    ohlc_invariants,
    unique_minutes,
    universe_coverage,
    verified_minutes,
)
from market_assets.quality.catalog import evaluate_all
from market_assets.registry import CANDLES
from tests.market_data import MINUTE_MS, candle, store
from tests.quality.conftest import SeedCandles

COINS = ("BTC", "ETH", "SOL")
LOWER = "CASE WHEN open < close THEN open ELSE close END"
UPPER = "CASE WHEN open > close THEN open ELSE close END"
"""min(open, close) and max(open, close), in the SQL both engines speak."""


def minute_before(now_ms: int, minutes: int) -> int:
    return now_ms - now_ms % MINUTE_MS - minutes * MINUTE_MS


def corrupt(conn: MemoryConnection, sql: str, *args: object) -> None:
    with write_transaction(conn):
        conn.execute(sql, args)


def test_clean_candles_pass_every_candle_check(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    seed_candles(COINS)
    outcomes = evaluate_all(conn, CHECKS, now_ms)
    assert {check.name: outcome.problems for check, outcome in outcomes.items()} == {
        name: () for name in ("ohlc_invariants", "unique_minutes", "continuity", "universe_coverage", "verified_minutes")
    }
    assert all(outcome.passed for outcome in outcomes.values())
    start = now_ms - CANDLES.quality.window_sec * 1000
    closed_in_window = (minute_before(now_ms, 1) - (start + -start % MINUTE_MS)) // MINUTE_MS + 1
    assert outcomes[CHECKS[0]].checked == 3 * closed_in_window  # closed minutes of the day, every coin
    assert outcomes[CHECKS[2]].checked == 3 * closed_in_window


def test_only_the_invariants_check_blocks_and_only_wrong_data_is_an_error() -> None:
    assert [check.name for check in CHECKS if check.blocking] == ["ohlc_invariants"]
    assert {check.name: check.severity.value for check in CHECKS} == {
        "ohlc_invariants": "ERROR", "unique_minutes": "ERROR", "continuity": "ERROR",
        "universe_coverage": "WARN", "verified_minutes": "WARN",
    }


def test_low_above_high_fails_the_invariants_naming_coin_minute_and_value(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    bad = minute_before(now_ms, 100)
    corrupt(conn, "UPDATE candles SET low = high + 1 WHERE coin = 'ETH' AND open_time_ms = ?", bad)
    (low, high) = conn.execute("SELECT low, high FROM candles WHERE coin = 'ETH' AND open_time_ms = ?", (bad,)).fetchone()
    outcome = ohlc_invariants(conn, now_ms)
    assert not outcome.passed and outcome.failing == 1
    [problem] = outcome.problems
    assert (problem.subject, problem.at_ms, problem.value) == ("ETH", bad, low)
    assert problem.what == f"low {low!r} above high {high!r}"


def test_a_nan_cannot_be_stored_and_an_infinity_fails_the_invariants(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    # A NaN is bound as NULL (sqlite3, and the PostgreSQL connection): the candles' NOT NULL refuses it
    # and the writer queues the minute.
    nan_minute = now_ms - now_ms % MINUTE_MS + MINUTE_MS
    written = store(conn, [candle("SOL", nan_minute, math.nan)], now_ms)
    assert written == 0
    assert conn.execute("SELECT count(*) FROM candles WHERE open_time_ms = ?", (nan_minute,)).fetchone()[0] == 0
    # What can be stored is an infinity (a source's 1e999 parsed as a double).
    bad = minute_before(now_ms, 5)
    corrupt(conn, "UPDATE candles SET high = ? WHERE coin = 'SOL' AND open_time_ms = ?", math.inf, bad)
    [problem] = ohlc_invariants(conn, now_ms).problems
    assert (problem.subject, problem.at_ms, problem.value) == ("SOL", bad, "inf")
    assert problem.what == "high inf is not a finite number"


@pytest.mark.parametrize(
    ("assignment", "field"),
    [("volume = -2.5", "volume"), (f"low = {LOWER} + 0.5, high = {UPPER} + 1", "low"),
     (f"high = {UPPER} - 0.01", "high"), ("trades = -1", "trades")],
)
def test_each_invariant_is_checked(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int, assignment: str, field: str
) -> None:
    seed_candles(COINS)
    bad = minute_before(now_ms, 700)
    corrupt(conn, f"UPDATE candles SET {assignment} WHERE coin = 'BTC' AND open_time_ms = ?", bad)
    stored = conn.execute(f"SELECT {field} FROM candles WHERE coin = 'BTC' AND open_time_ms = ?", (bad,)).fetchone()[0]
    [problem] = ohlc_invariants(conn, now_ms).problems
    assert (problem.subject, problem.at_ms, problem.value) == ("BTC", bad, stored)
    assert problem.what.startswith(field)


def test_the_invariants_look_only_at_the_window(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    seed_candles(COINS)
    old = minute_before(now_ms, CANDLES.quality.window_sec // 60 + 10)
    corrupt(conn, "UPDATE candles SET low = high + 1 WHERE coin = 'BTC' AND open_time_ms = ?", old)
    assert ohlc_invariants(conn, now_ms).passed


def test_a_row_a_millisecond_off_its_minute_is_a_duplicate(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    minute = minute_before(now_ms, 42)
    corrupt(
        conn,
        "INSERT INTO candles SELECT coin, interval, open_time_ms + 1, close_time_ms + 1, open, high, low, close, volume, "
        "trades, closed, ingested_at_ms, confirmed FROM candles WHERE coin = 'ETH' AND open_time_ms = ?",
        minute,
    )
    outcome = unique_minutes(conn, now_ms)
    assert outcome.failing == 1
    [problem] = outcome.problems
    assert (problem.subject, problem.at_ms, problem.value) == ("ETH", minute + 1, 1)
    assert "a second row of that minute" in problem.what
    assert ohlc_invariants(conn, now_ms).passed and continuity(conn, now_ms).passed  # the real minute is intact


def test_a_close_time_off_the_minute_fails_unique_minutes(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    seed_candles(COINS)
    minute = minute_before(now_ms, 3)
    corrupt(conn, "UPDATE candles SET close_time_ms = open_time_ms + 60000 WHERE coin = 'SOL' AND open_time_ms = ?", minute)
    [problem] = unique_minutes(conn, now_ms).problems
    assert (problem.subject, problem.at_ms, problem.value) == ("SOL", minute, minute + MINUTE_MS)


def test_missing_minutes_fail_continuity_as_one_run(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    seed_candles(COINS)
    first = minute_before(now_ms, 300)
    corrupt(conn, "DELETE FROM candles WHERE coin = 'BTC' AND open_time_ms >= ? AND open_time_ms < ?", first, first + 4 * MINUTE_MS)
    lone = minute_before(now_ms, 20)
    corrupt(conn, "DELETE FROM candles WHERE coin = 'SOL' AND open_time_ms = ?", lone)
    outcome = continuity(conn, now_ms)
    assert outcome.failing == 5
    assert [(p.subject, p.at_ms, p.value) for p in outcome.problems] == [("BTC", first, 4), ("SOL", lone, 1)]
    assert outcome.problems[0].what.endswith("neither repaired nor recorded no_trades/unfillable")


def test_no_trades_and_unfillable_minutes_are_not_missing(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    seed_candles(COINS)
    quiet = minute_before(now_ms, 300)
    lost = minute_before(now_ms, 900)
    corrupt(conn, "DELETE FROM candles WHERE coin = 'BTC' AND open_time_ms IN (?, ?, ?)", quiet, quiet + MINUTE_MS, lost)
    apply_repair(
        conn, "BTC", "1m", MINUTE_MS, [], minutes=[quiet, quiet + MINUTE_MS, lost],
        no_trades=[quiet, quiet + MINUTE_MS], unfillable=[lost], now_ms=now_ms,
    )
    assert conn.execute("SELECT count(*) FROM candle_gaps").fetchone()[0] == 2
    assert continuity(conn, now_ms).passed


def test_a_missing_minute_queued_for_repair_is_excused_until_the_unverified_threshold(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    gone = minute_before(now_ms, 2)
    corrupt(conn, "DELETE FROM candles WHERE coin = 'ETH' AND open_time_ms = ?", gone)
    after = int(CANDLES.warnings.unverified_after_sec or 0) * 1000
    queued_at = now_ms - after
    with write_transaction(conn):
        queue_repairs(conn, "1m", [("ETH", gone, RepairReason.MISSING)], queued_at)
    assert continuity(conn, now_ms).passed
    [problem] = continuity(conn, now_ms + 1).problems
    assert (problem.subject, problem.at_ms, problem.value) == ("ETH", gone, 1)
    assert "queued for repair since" in problem.what


def test_a_coin_with_older_history_is_judged_from_the_window_start(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    start = now_ms - CANDLES.quality.window_sec * 1000
    first_in_window = start - start % MINUTE_MS + MINUTE_MS
    corrupt(conn, "DELETE FROM candles WHERE coin = 'SOL' AND open_time_ms >= ? AND open_time_ms < ?", start, first_in_window + 2 * MINUTE_MS)
    [problem] = continuity(conn, now_ms).problems
    assert (problem.subject, problem.at_ms, problem.value) == ("SOL", first_in_window, 2)


def test_coverage_fails_below_the_minimum_naming_the_silent_coins(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    listed = [UniverseRow(f"C{i:02}", "", 10 + i, 2, 20, False) for i in range(7)]
    upsert_universe(conn, [*listed, UniverseRow("GONE", "", 99, 2, 20, True)], now_ms)  # 3 of 10 seen, delisted not expected
    outcome = universe_coverage(conn, now_ms)
    assert not outcome.passed and outcome.checked == 10 and outcome.failing == 7
    assert [(p.subject, p.at_ms) for p in outcome.problems] == [(row.coin, None) for row in listed]
    assert outcome.details["coverage"] == 0.3


def test_coverage_at_the_minimum_passes_and_says_who_is_missing(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    coins = [f"C{i:02}" for i in range(10)]
    seed_candles(coins, minutes=120)
    corrupt(conn, "DELETE FROM candles WHERE coin = 'C07' AND open_time_ms >= ?", now_ms - 3_600_000)
    outcome = universe_coverage(conn, now_ms)
    assert outcome.passed and outcome.details["missing"] == "C07" and outcome.details["coverage"] == 0.9
    corrupt(conn, "DELETE FROM candles WHERE coin = 'C03' AND open_time_ms >= ?", now_ms - 3_600_000)
    outcome = universe_coverage(conn, now_ms)
    assert [(p.subject, p.at_ms) for p in outcome.problems] == [
        ("C03", minute_before(now_ms, 60)), ("C07", minute_before(now_ms, 60))
    ]


def test_an_unverified_minute_fails_once_it_closed_longer_ago_than_the_threshold(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    seed_candles(COINS)
    after = int(CANDLES.warnings.unverified_after_sec or 0) * 1000
    fresh = minute_before(now_ms, 1)
    corrupt(conn, "UPDATE candles SET confirmed = 0 WHERE coin = 'BTC' AND open_time_ms = ?", fresh)
    assert verified_minutes(conn, now_ms).passed
    stale_at = fresh + MINUTE_MS + after
    outcome = verified_minutes(conn, stale_at)
    assert outcome.passed
    outcome = verified_minutes(conn, stale_at + 1)
    [problem] = outcome.problems
    assert (problem.subject, problem.at_ms) == ("BTC", fresh)
