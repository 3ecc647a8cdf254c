"""SPEC §12: stored features equal TA-Lib recomputed over the stored closes, for a sample of coins."""

from __future__ import annotations

import numpy as np

from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.rollups import HOUR_MS
from market_assets.quality.features import features_match_talib, sampled_coins
from market_assets.registry import FEATURES
from tests.conftest import FrozenClock
from tests.market_data import MINUTE_MS, random_walk, series, store
from tests.postgres.reuse import SQLITE_ONLY
from tests.quality.conftest import SeedCandles

COINS = ("ADA", "BTC", "ETH", "SOL")


def computed(conn: MemoryConnection, clock: FrozenClock, seed_candles: SeedCandles) -> None:
    seed_candles(COINS)
    run_features(conn, Ledger(conn, clock))


def test_features_of_clean_candles_match_talib(
    conn: MemoryConnection, clock: FrozenClock, seed_candles: SeedCandles, now_ms: int
) -> None:
    computed(conn, clock, seed_candles)
    outcome = features_match_talib(conn, now_ms)
    assert outcome.passed, outcome.problems
    sampled = sampled_coins(list(COINS), FEATURES.quality.sample, now_ms)
    assert outcome.details["coins"] == ", ".join(sampled) and len(sampled) == FEATURES.quality.sample
    in_window = conn.execute(
        "SELECT count(*) FROM features WHERE coin IN (?, ?, ?) AND open_time_ms >= ?",
        (*sampled, now_ms - FEATURES.quality.window_sec * 1000),
    ).fetchone()[0]
    assert outcome.checked == in_window > 0


def test_the_sample_moves_with_the_hour_and_covers_every_coin() -> None:
    hours = [sampled_coins(list(COINS), 3, h * HOUR_MS) for h in range(4)]
    assert len({tuple(h) for h in hours}) == 4
    assert set().union(*map(set, hours)) == set(COINS)


def test_a_feature_off_by_a_millionth_fails_naming_coin_minute_column_and_values(
    conn: MemoryConnection, clock: FrozenClock, seed_candles: SeedCandles, now_ms: int
) -> None:
    computed(conn, clock, seed_candles)
    coin = sampled_coins(list(COINS), FEATURES.quality.sample, now_ms)[1]
    minute = now_ms - now_ms % MINUTE_MS - 77 * MINUTE_MS
    (right,) = conn.execute("SELECT ema_20 FROM features WHERE coin = ? AND open_time_ms = ?", (coin, minute)).fetchone()
    with write_transaction(conn):
        conn.execute("UPDATE features SET ema_20 = ema_20 + 1e-6 WHERE coin = ? AND open_time_ms = ?", (coin, minute))
    (wrong,) = conn.execute("SELECT ema_20 FROM features WHERE coin = ? AND open_time_ms = ?", (coin, minute)).fetchone()
    outcome = features_match_talib(conn, now_ms)
    assert outcome.failing == 1
    [problem] = outcome.problems
    assert (problem.subject, problem.at_ms, problem.value) == (coin, minute, wrong)
    assert problem.what.startswith("ema_20 at ") and problem.what.endswith(f"stored {wrong!r}, TA-Lib {right!r}")


def test_a_value_missing_outside_the_warm_up_fails(
    conn: MemoryConnection, clock: FrozenClock, seed_candles: SeedCandles, now_ms: int
) -> None:
    computed(conn, clock, seed_candles)
    coin = sampled_coins(list(COINS), FEATURES.quality.sample, now_ms)[0]
    minute = now_ms - now_ms % MINUTE_MS - 5 * MINUTE_MS
    with write_transaction(conn):
        conn.execute("UPDATE features SET macd_hist = NULL WHERE coin = ? AND open_time_ms = ?", (coin, minute))
    [problem] = features_match_talib(conn, now_ms).problems
    assert (problem.subject, problem.at_ms, problem.value) == (coin, minute, None)
    assert problem.what.startswith("macd_hist at ")


def test_rows_queued_for_recomputation_are_not_compared(
    conn: MemoryConnection, clock: FrozenClock, seed_candles: SeedCandles, now_ms: int
) -> None:
    computed(conn, clock, seed_candles)
    coin = sampled_coins(list(COINS), FEATURES.quality.sample, now_ms)[2]
    minute = now_ms - now_ms % MINUTE_MS - 30 * MINUTE_MS
    with write_transaction(conn):  # a REST repair revised a close: the trigger queues the minute
        conn.execute("UPDATE candles SET close = close * 1.001, high = high * 1.002 WHERE coin = ? AND open_time_ms = ?", (coin, minute))
    assert features_match_talib(conn, now_ms).passed
    run_features(conn, Ledger(conn, clock))
    assert features_match_talib(conn, now_ms).passed


@SQLITE_ONLY  # TA-Lib's arithmetic at any run size; the features' writes and queue on PostgreSQL: tests/features
def test_features_at_bitcoin_prices_computed_in_runs_of_random_sizes_pass(
    conn: MemoryConnection, clock: FrozenClock, now_ms: int
) -> None:
    """The SMAs and bands carry running-sum rounding that depends on where each run started
    (5e-10 at 95,000): float noise, not a failure."""
    rng = np.random.default_rng(16)
    bars = 6_000
    first = now_ms - now_ms % MINUTE_MS - bars * MINUTE_MS
    walks = {"BTC": random_walk(1, bars, 95_000.0), "ETH": random_walk(2, bars, 3_000.0), "kPEPE": random_walk(3, bars, 0.012)}
    written = 0
    ledger = Ledger(conn, clock)
    while written < bars:
        size = min(bars - written, int(rng.choice([1, 7, 60, 333, 1_500])))
        for coin, closes in walks.items():
            store(conn, series(coin, first + written * MINUTE_MS, closes[written:written + size]), now_ms)
        written += size
        run_features(conn, ledger)
    outcome = features_match_talib(conn, now_ms)
    assert outcome.passed, outcome.problems
    assert outcome.checked == 3 * (FEATURES.quality.window_sec // 60 - 1)  # the window opens 20 s into a minute
