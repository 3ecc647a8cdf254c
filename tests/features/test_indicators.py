"""SPEC §9: TA-Lib's definitions, from closed 1-minute candles only, computed incrementally."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from market_assets.indicators import (
    INDICATORS,
    FeatureSchemaError,
    IndicatorConfig,
    compute,
    run_features,
)
from market_assets.ledger import Ledger
from market_assets.memory import features as features_sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import FEATURES
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, MINUTE_MS, candle, random_walk, series, store

TOLERANCE = 1e-9
RUNNING_SUM_RELATIVE = 1e-13
"""SMA and Bollinger Bands come from TA-Lib's running sums of x (and x²) kept from the first input
bar, so the batch reference carries rounding that depends on where its input starts: measured
1.5e-9 on the bands of a 9,000-bar series at 95,000 (1.6e-14 of the price). A bounded tail cannot
reproduce that noise; it is held to 1e-13 of the price, and to 1e-9 below a price of 10,000."""
COLUMNS = INDICATORS.columns
RUNNING_SUMS = {c for c in COLUMNS if c.startswith(("sma_", "bb_"))}


def stored_features(conn: MemoryConnection, coin: str) -> tuple[list[int], np.ndarray]:
    rows = features_sql.features_of(conn, coin, "1m", COLUMNS)
    values = np.array([[np.nan if v is None else v for v in row[1:]] for row in rows], dtype=np.float64)
    return [int(row[0]) for row in rows], values


def talib_batch(closes: list[float]) -> np.ndarray:
    """TA-Lib's own batch output over the whole series, written independently of ``compute``."""
    c = np.asarray(closes, dtype=np.float64)
    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    macd, signal, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    return np.column_stack([
        talib.RSI(c, timeperiod=14), upper, middle, lower,
        talib.SMA(c, timeperiod=20), talib.SMA(c, timeperiod=50), talib.SMA(c, timeperiod=200),
        talib.EMA(c, timeperiod=20), talib.EMA(c, timeperiod=50), talib.EMA(c, timeperiod=200),
        macd, signal, hist,
    ])


def assert_matches_batch(stored: np.ndarray, batch: np.ndarray, closes: list[float]) -> None:
    assert stored.shape == batch.shape
    price = max(abs(c) for c in closes)
    for j, column in enumerate(COLUMNS):
        assert np.array_equal(np.isnan(stored[:, j]), np.isnan(batch[:, j])), f"{column}: warm-up differs"
        worst = np.nanmax(np.abs(stored[:, j] - batch[:, j]))
        allowed = max(TOLERANCE, RUNNING_SUM_RELATIVE * price) if column in RUNNING_SUMS else TOLERANCE
        assert worst <= allowed, f"{column}: {worst:.2e} from TA-Lib batch"


def test_each_indicator_matches_talib_batch_after_incremental_runs_of_random_sizes(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    rng = np.random.default_rng(2026)
    coins = {"BTC": random_walk(1, 9_000, 95_000.0), "ETH": random_walk(2, 9_000, 3_000.0), "kPEPE": random_walk(3, 9_000, 0.012)}
    coins["kPEPE"][:40] = [coins["kPEPE"][0]] * 40  # a flat start: gains and losses both 0, TA-Lib's RSI is 0
    ledger = Ledger(conn, clock)
    written = {coin: 0 for coin in coins}
    runs = 0
    while min(written.values()) < 9_000:
        for coin, closes in coins.items():
            size = int(rng.choice([1, 7, 60, 333, 1_500, 2_900]))
            batch = series(coin, DAY0_MS + written[coin] * MINUTE_MS, closes[written[coin]:written[coin] + size])
            store(conn, batch, clock())
            written[coin] += len(batch)
        clock.advance(seconds=300)
        run_features(conn, ledger)
        runs += 1
    assert runs >= 5
    for coin, closes in coins.items():
        times, stored = stored_features(conn, coin)
        assert times == [DAY0_MS + i * MINUTE_MS for i in range(9_000)]
        assert_matches_batch(stored, talib_batch(closes), closes)
    _, pepe = stored_features(conn, "kPEPE")
    assert (pepe[14:40, COLUMNS.index("rsi_14")] == 0.0).all()


def test_the_tail_is_long_enough_for_bit_identical_values_at_any_price_level() -> None:
    tail = INDICATORS.tail_bars
    for start in (0.012, 100.0, 95_000.0):
        closes = np.asarray(random_walk(7, 3 * tail, start), dtype=np.float64)
        full = np.column_stack(compute(closes))[-100:]
        from_tail = np.column_stack(compute(closes[-(tail + 100):]))[-100:]
        recursive = [COLUMNS.index(c) for c in ("rsi_14", "ema_20", "ema_50", "ema_200", "macd", "macd_signal", "macd_hist")]
        assert np.array_equal(from_tail[:, recursive], full[:, recursive])
        assert np.allclose(from_tail, full, rtol=1e-13, atol=0)  # SMA/BB: TA-Lib's running-sum rounding


def test_a_new_minute_reads_only_itself_whatever_the_history_the_tail_is_kept(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    closes = random_walk(4, 12_000)
    store(conn, series("SOL", DAY0_MS, closes[:11_999]), clock())
    ledger = Ledger(conn, clock)
    first = run_features(conn, ledger)
    assert (first.rows_written, first.candles_read) == (11_999, 11_999)
    store(conn, series("SOL", DAY0_MS + 11_999 * MINUTE_MS, closes[11_999:]), clock())
    second = run_features(conn, ledger)
    assert (second.coins, second.rows_written, second.candles_read) == (1, 1, 1)
    assert_matches_batch(stored_features(conn, "SOL")[1], talib_batch(closes), closes)


def test_a_closed_minute_revised_inside_the_kept_tail_recomputes_from_the_candles(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    closes = random_walk(11, 6_000)
    rows = series("SOL", DAY0_MS, closes)
    store(conn, rows, clock())
    ledger = Ledger(conn, clock)
    run_features(conn, ledger)
    closes[5_990] *= 1.05  # the exchange corrects a closed minute the kept tail already holds
    store(conn, series("SOL", DAY0_MS, closes)[5_990:5_991], clock())
    revised = run_features(conn, ledger)
    assert (revised.rows_written, revised.candles_read) == (10, INDICATORS.tail_bars + 10)
    assert_matches_batch(stored_features(conn, "SOL")[1], talib_batch(closes), closes)
    store(conn, series("SOL", DAY0_MS + 6_000 * MINUTE_MS, [closes[-1]]), clock())
    closes.append(closes[-1])
    run_features(conn, ledger)  # appended to the tail kept by the revision's run
    assert_matches_batch(stored_features(conn, "SOL")[1], talib_batch(closes), closes)


def test_forming_bucket_is_ignored_until_closed(conn: MemoryConnection, clock: FrozenClock) -> None:
    closes = random_walk(5, 300)
    store(conn, series("BTC", DAY0_MS, closes[:299]), clock())
    forming_at = DAY0_MS + 299 * MINUTE_MS
    store(conn, [candle("BTC", forming_at, closes[299] * 1.01, closed=False)], clock())
    ledger = Ledger(conn, clock)
    run_features(conn, ledger)
    times, stored = stored_features(conn, "BTC")
    assert times[-1] == forming_at - MINUTE_MS
    assert_matches_batch(stored, talib_batch(closes[:299]), closes[:299])

    store(conn, [candle("BTC", forming_at, closes[299] * 1.02, closed=False)], clock())  # revised, still forming
    assert run_features(conn, ledger).rows_written == 0

    store(conn, [candle("BTC", forming_at, closes[299], closed=True)], clock())
    assert run_features(conn, ledger).rows_written == 1
    times, stored = stored_features(conn, "BTC")
    assert times[-1] == forming_at
    assert_matches_batch(stored, talib_batch(closes), closes)


def test_a_gap_joins_the_bars_on_both_sides_until_a_backfill_fills_it(conn: MemoryConnection, clock: FrozenClock) -> None:
    closes = random_walk(6, 400)
    missing = range(150, 160)
    rows = series("ETH", DAY0_MS, closes)
    store(conn, [row for i, row in enumerate(rows) if i not in missing], clock())
    ledger = Ledger(conn, clock)
    run_features(conn, ledger)
    times, stored = stored_features(conn, "ETH")
    assert len(times) == 390 and DAY0_MS + 150 * MINUTE_MS not in times
    present = [c for i, c in enumerate(closes) if i not in missing]
    assert_matches_batch(stored, talib_batch(present), present)
    after_gap = times.index(DAY0_MS + 160 * MINUTE_MS)
    sma20 = stored[after_gap, COLUMNS.index("sma_20")]
    assert sma20 == pytest.approx(np.mean(present[after_gap - 19:after_gap + 1]), abs=TOLERANCE)  # spans 30 minutes

    store(conn, [rows[i] for i in missing], clock())  # the REST backfill
    refill = run_features(conn, ledger)
    assert refill.rows_written == 400 - 150
    times, stored = stored_features(conn, "ETH")
    assert times == [DAY0_MS + i * MINUTE_MS for i in range(400)]
    assert_matches_batch(stored, talib_batch(closes), closes)


def test_a_run_with_nothing_new_writes_nothing_and_says_so_in_the_ledger(conn: MemoryConnection, clock: FrozenClock) -> None:
    store(conn, series("BTC", DAY0_MS, random_walk(8, 50)), clock())
    ledger = Ledger(conn, clock)
    run_features(conn, ledger)
    before = features_sql.features_of(conn, "BTC", "1m", COLUMNS)
    clock.advance(seconds=300)
    again = run_features(conn, ledger)
    assert (again.coins, again.rows_written, again.candles_read) == (0, 0, 0)
    assert features_sql.features_of(conn, "BTC", "1m", COLUMNS) == before
    runs = runs_of(conn, FEATURES.source, FEATURES.name)
    assert [(r.status, r.rows_written) for r in runs] == [(RunStatus.SUCCEEDED, 50), (RunStatus.SUCCEEDED, 0)]
    assert runs[0].metadata == {"coins": 1, "rows_written": 50, "candles_read": 50, "tail_bars": INDICATORS.tail_bars}


def test_warm_up_bars_are_stored_as_null_not_as_numbers(conn: MemoryConnection, clock: FrozenClock) -> None:
    store(conn, series("BTC", DAY0_MS, random_walk(9, 30)), clock())
    run_features(conn, Ledger(conn, clock))
    rows = features_sql.features_of(conn, "BTC", "1m", ("rsi_14", "sma_20", "ema_200", "macd"))
    assert rows[0][1:] == (None, None, None, None)
    assert rows[14][1] is not None and rows[13][1] is None  # TA-Lib's RSI lookback is the period
    assert all(row[3] is None and row[4] is None for row in rows)  # 30 bars: no EMA200, no MACD yet


def test_a_period_without_a_column_is_refused_before_anything_is_written(conn: MemoryConnection, clock: FrozenClock) -> None:
    store(conn, series("BTC", DAY0_MS, random_walk(10, 40)), clock())
    with pytest.raises(FeatureSchemaError, match="no column sma_100; a new period needs a migration"):
        run_features(conn, Ledger(conn, clock), config=IndicatorConfig(sma_periods=(20, 100)))
    assert features_sql.features_of(conn, "BTC", "1m", COLUMNS) == []
    assert [p.coin for p in features_sql.pending_coins(conn)] == ["BTC"]  # still queued for a fixed run
    (failed,) = runs_of(conn, FEATURES.source, FEATURES.name)
    assert failed.status is RunStatus.FAILED and "sma_100" in (failed.error or "")
