"""Asset check of ``hyperliquid/features``: stored features equal TA-Lib over the stored closes.

``FEATURES.quality.sample`` coins a run, chosen deterministically: the coins with feature rows
in the window (``FEATURES.quality.window_sec``), by name, taken in turn from an offset that moves
by the sample size every hour, so hourly evaluations walk the whole universe. For each, every
stored feature row of the window is compared with TA-Lib run once over the coin's closed closes,
from :attr:`~market_assets.indicators.IndicatorConfig.tail_bars` bars before the window's first
row (the bars the job itself reads before a bar: every recursion has forgotten its seed).
Rows at or after the coin's earliest minute still queued for the job are about to be
recomputed and are not compared.

**Tolerance.** ``FEATURES.quality.tolerance`` (1e-9) absolute, or, when larger, the rounding
TA-Lib's running sums may carry: ``bars * eps * |expected|``, one rounding of the price per bar
summed (``eps`` = 2^-52, ``bars`` = the closes recomputed, ~5,300). The SMAs and Bollinger Bands
come from running sums whose rounding depends on where the input starts, and the job's runs
start where their queue did: measured 5.2e-10 (6.6e-15 of the price) at 95,000 over a day, and
1.5e-9 over 9,000 bars in ``tests/features``, so a plain 1e-9 would fail BTC on float noise
alone. The bound is ~1e-7 at 95,000 (180 times the measured noise) and is the plain 1e-9 below a
price of ~850; RSI, EMAs and MACD are recursions the tail makes exact (measured: 0 difference).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
from numpy.typing import NDArray

from market_assets.indicators import INDICATORS, compute
from market_assets.memory import features as job_sql
from market_assets.memory import quality_features as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.rollups import HOUR_MS
from market_assets.quality.outcome import (
    CheckOutcome,
    JsonScalar,
    Problem,
    QualityCheck,
    utc_minute,
)
from market_assets.registry import CANDLES, FEATURES

INTERVAL = CANDLES.data.scope["interval"]


def sampled_coins(coins: list[str], size: int, now_ms: int) -> list[str]:
    """``size`` of ``coins`` (sorted), from an offset that moves by ``size`` every hour."""
    if len(coins) <= size:
        return coins
    offset = (now_ms // HOUR_MS * size) % len(coins)
    return (coins[offset:] + coins[:offset])[:size]


def allowed(expected: float, bars: int) -> float:
    """How far a stored value may lie from TA-Lib's over ``bars`` closes (module docstring)."""
    return max(FEATURES.quality.tolerance, bars * sys.float_info.epsilon * abs(expected))


def features_match_talib(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    start = now_ms - FEATURES.quality.window_sec * 1000
    columns = INDICATORS.columns
    coins = sampled_coins(sql.coins_with_features(conn, INTERVAL, start), FEATURES.quality.sample, now_ms)
    problems: list[Problem] = []
    checked = failing = 0
    for coin in coins:
        stale_from = sql.first_pending_ms(conn, coin)
        rows = [
            row for row in sql.features_since(conn, coin, INTERVAL, columns, start)
            if stale_from is None or int(row[0]) < stale_from
        ]
        if not rows:
            continue
        first_ms = int(rows[0][0])
        tail_start = job_sql.tail_start_ms(conn, coin, INTERVAL, first_ms, INDICATORS.tail_bars)
        bars = job_sql.closed_closes(conn, coin, INTERVAL, tail_start)
        times = np.fromiter((open_ms for open_ms, _ in bars), dtype=np.int64, count=len(bars))
        closes = np.fromiter((close for _, close in bars), dtype=np.float64, count=len(bars))
        expected = np.column_stack(compute(closes)) if bars else np.empty((0, len(columns)))
        for row in rows:
            open_ms = int(row[0])
            checked += 1
            at = int(np.searchsorted(times, open_ms))
            if at == len(times) or times[at] != open_ms:
                failing += 1
                problems.append(Problem(coin, open_ms, f"feature row at {utc_minute(open_ms)} has no closed candle"))
                continue
            wrong = _first_wrong(columns, row[1:], expected[at], len(bars))
            if wrong is not None:
                failing += 1
                column, stored, want = wrong
                problems.append(Problem(
                    coin, open_ms, f"{column} at {utc_minute(open_ms)}: stored {stored!r}, TA-Lib {want!r}",
                    _json(stored),
                ))
    problems.sort(key=lambda p: (p.at_ms or 0, p.subject))
    details: dict[str, JsonScalar] = {"coins": ", ".join(coins), "window_start_ms": start, "tolerance": FEATURES.quality.tolerance}
    return CheckOutcome(checked, problems, failing, details)


def _first_wrong(
    columns: tuple[str, ...], stored: tuple[Any, ...], expected: NDArray[np.float64], bars: int
) -> tuple[str, float | None, float | None] | None:
    """The first column whose stored value differs from TA-Lib's beyond the tolerance."""
    for column, have, want in zip(columns, stored, expected.tolist()):
        want_value = None if math.isnan(want) else float(want)
        if have is None or want_value is None:
            if have is None and want_value is None:
                continue  # both in the indicator's warm-up
            return column, None if have is None else float(have), want_value
        value = float(have)
        if not abs(value - want_value) <= allowed(want_value, bars):
            return column, value, want_value
    return None


def _json(value: float | None) -> JsonScalar:
    return None if value is None else value if math.isfinite(value) else str(value)


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck(
        FEATURES, "features_match_talib",
        "For a sample of coins (rotated hourly), every stored feature row of the last day equals TA-Lib "
        "recomputed over the coin's stored closed 1-minute closes, within the registry's tolerance "
        "(or the float rounding of TA-Lib's running sums at high prices, when larger). Rows still queued for recomputation are not compared. On "
        "failure the problems name coin, minute, column, stored and expected values: run `market "
        "hyperliquid features` after re-queueing the coin (a rewrite of its candles queues it), and "
        "if the mismatch persists the incremental computation has a bug.",
        features_match_talib,
    ),
)
