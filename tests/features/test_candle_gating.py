"""SPEC §12: features run only over coins whose candles pass the blocking invariant check; a
failing coin is named, the others proceed, and it is computed once its candle is repaired."""

from __future__ import annotations

from market_assets.dashboard import partial_run_warning
from market_assets.indicators import run_features
from market_assets.ledger import Ledger
from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import FEATURES
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, MINUTE_MS, random_walk, series, store

COINS = {"BTC": 95_000.0, "ETH": 3_000.0, "SOL": 150.0}
BARS = 400


def seed(conn: MemoryConnection, clock: FrozenClock, start_ms: int, bars: int) -> None:
    for i, (coin, price) in enumerate(COINS.items()):
        closes = random_walk(i + 1, (start_ms - DAY0_MS) // MINUTE_MS + bars, price)[-bars:]
        store(conn, series(coin, start_ms, closes, seed=i), clock())


def feature_rows(conn: MemoryConnection) -> dict[str, int]:
    counted = dict(conn.execute("SELECT coin, count(*) FROM features GROUP BY coin").fetchall())
    return {coin: counted.get(coin, 0) for coin in COINS}


def test_a_coin_with_low_above_high_is_held_back_and_named_while_the_others_proceed(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    seed(conn, clock, DAY0_MS, BARS)
    bad_minute = DAY0_MS + 123 * MINUTE_MS
    low, high = conn.execute(
        "SELECT low, high FROM candles WHERE coin = 'ETH' AND open_time_ms = ?", (bad_minute,)
    ).fetchone()
    with write_transaction(conn):
        conn.execute("UPDATE candles SET low = high + 1 WHERE coin = 'ETH' AND open_time_ms = ?", (bad_minute,))
    ledger = Ledger(conn, clock)

    result = run_features(conn, ledger)

    assert feature_rows(conn) == {"BTC": BARS, "ETH": 0, "SOL": BARS}
    assert result.coins == 2 and list(result.blocked) == ["ETH"]
    [run] = runs_of(conn, FEATURES.source, FEATURES.name)
    assert run.status is RunStatus.SUCCEEDED and list(run.metadata["subject_errors"]) == ["ETH"]
    reason = run.metadata["subject_errors"]["ETH"]
    assert reason == (
        f"held back by ohlc_invariants: minute 2026-11-18 02:03 UTC ({bad_minute}): low {high + 1!r} above high {high!r}"
    )
    warning = partial_run_warning(run)
    assert warning is not None and "ETH: held back by ohlc_invariants" in warning.message
    assert conn.execute("SELECT count(*) FROM pending_features WHERE coin = 'ETH'").fetchone()[0] > 0

    clock.advance(seconds=300)
    assert run_features(conn, ledger).blocked == {"ETH": reason}  # still broken: still held back
    with write_transaction(conn):
        conn.execute("UPDATE candles SET low = ? WHERE coin = 'ETH' AND open_time_ms = ?", (low, bad_minute))
    clock.advance(seconds=300)

    repaired = run_features(conn, ledger)

    assert repaired.blocked == {} and repaired.coins == 1
    assert feature_rows(conn) == {"BTC": BARS, "ETH": BARS, "SOL": BARS}
    assert "subject_errors" not in runs_of(conn, FEATURES.source, FEATURES.name)[-1].metadata

