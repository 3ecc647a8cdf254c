"""SPEC §12: rollups equal the aggregate of their 1-minute rows, for a sample of current buckets."""

from __future__ import annotations

from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.rollups import roll_pending
from market_assets.quality.rollups import rollups_match_minutes
from market_assets.registry import MAINTENANCE
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, candle, store
from tests.quality.conftest import SeedCandles

COINS = ("BTC", "ETH", "SOL")
SEEDED_MINUTES = 2 * 24 * 60 + 30
"""From DAY0 to the conftest's now: two whole days and the half hour of the third."""


def rolled(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    seed_candles(COINS, minutes=SEEDED_MINUTES)
    roll_pending(conn, now_ms)


def newest_current_five(conn: MemoryConnection, coin: str) -> int:
    """The newest 5m bucket of ``coin`` that is rolled and not queued again: the sample's first."""
    return int(conn.execute(
        "SELECT max(open_time_ms) FROM candle_rollups WHERE coin = ? AND interval = '5m'", (coin,)
    ).fetchone()[0])


def test_rollups_of_clean_minutes_match_their_sample(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    rolled(conn, seed_candles, now_ms)
    outcome = rollups_match_minutes(conn, now_ms)
    assert outcome.passed, outcome.problems
    size = MAINTENANCE.quality.sample
    assert (outcome.details["compared_5m"], outcome.details["compared_1h"], outcome.details["compared_1d"]) == (size, size, 6)
    assert outcome.checked == 2 * size + 6


def test_a_close_off_by_one_tick_fails_naming_coin_bucket_and_field(
    conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int
) -> None:
    rolled(conn, seed_candles, now_ms)
    bucket = newest_current_five(conn, "ETH")
    with write_transaction(conn):
        conn.execute("UPDATE candle_rollups SET close = close + 0.01 WHERE coin = 'ETH' AND interval = '5m' AND open_time_ms = ?", (bucket,))
    (close,) = conn.execute("SELECT close FROM candle_rollups WHERE coin = 'ETH' AND interval = '5m' AND open_time_ms = ?", (bucket,)).fetchone()
    outcome = rollups_match_minutes(conn, now_ms)
    assert outcome.failing == 1
    [problem] = outcome.problems
    assert (problem.subject, problem.at_ms, problem.value) == ("ETH", bucket, close)
    assert problem.what.startswith("5m ") and f": close {close!r} stored, " in problem.what


def test_a_day_whose_volume_drifts_by_a_billionth_fails(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    rolled(conn, seed_candles, now_ms)
    day = DAY0_MS + DAY_MS
    with write_transaction(conn):
        conn.execute("UPDATE candle_rollups SET volume = volume * (1 + 1e-9) WHERE coin = 'SOL' AND interval = '1d' AND open_time_ms = ?", (day,))
    [problem] = rollups_match_minutes(conn, now_ms).problems
    assert (problem.subject, problem.at_ms) == ("SOL", day)
    assert problem.what.startswith("1d 2026-11-19 00:00 UTC: volume ")


def test_an_hour_missing_a_minute_fails_on_its_count(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    rolled(conn, seed_candles, now_ms)
    hour = int(conn.execute("SELECT max(open_time_ms) FROM candle_rollups WHERE coin = 'BTC' AND interval = '1h'").fetchone()[0])
    with write_transaction(conn):
        conn.execute("UPDATE candle_rollups SET minutes = 59, complete = 0 WHERE coin = 'BTC' AND interval = '1h' AND open_time_ms = ?", (hour,))
    [problem] = rollups_match_minutes(conn, now_ms).problems
    assert (problem.subject, problem.at_ms, problem.value) == ("BTC", hour, 59)
    assert "minutes 59 stored, 60 from its minutes; complete 0 stored, 1 from its minutes" in problem.what


def test_a_bucket_queued_for_rolling_again_is_not_compared(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    rolled(conn, seed_candles, now_ms)
    bucket = newest_current_five(conn, "BTC")
    with write_transaction(conn):  # a REST repair revised a minute: its trigger queues the hour
        conn.execute("UPDATE candles SET close = close * 1.01, high = high * 1.01 WHERE coin = 'BTC' AND open_time_ms = ?", (bucket,))
    outcome = rollups_match_minutes(conn, now_ms)
    assert outcome.passed
    roll_pending(conn, now_ms)
    assert rollups_match_minutes(conn, now_ms).passed


def test_a_partly_pruned_day_is_skipped_not_failed(conn: MemoryConnection, seed_candles: SeedCandles, now_ms: int) -> None:
    rolled(conn, seed_candles, now_ms)
    with write_transaction(conn):  # retention pruned the first day's minutes (its rollups hold them)
        conn.execute("DELETE FROM candles WHERE coin = 'ETH' AND open_time_ms < ?", (DAY0_MS + DAY_MS,))
    store(conn, [candle("ETH", DAY0_MS + i * MINUTE_MS, 200.0) for i in range(10)], now_ms)  # then a manual backfill
    roll_pending(conn, now_ms)
    day = "SELECT minutes FROM candle_rollups WHERE coin = 'ETH' AND interval = '1d' AND open_time_ms = ?"
    assert conn.execute(day, (DAY0_MS,)).fetchone() == (1440,)  # the day still holds every pruned minute
    outcome = rollups_match_minutes(conn, now_ms)
    assert outcome.passed and outcome.details["skipped_partly_pruned"] == 1
