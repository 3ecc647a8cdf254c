"""``hyperliquid/features``: TA-Lib indicators over closed 1-minute candles, computed incrementally.

Definitions are TA-Lib's own (the ``ta-lib`` wheel, not a re-implementation; peers.md §2.1):
RSI with Wilder smoothing seeded by the mean of the first ``n`` gains and losses, and 0 when
both are 0; Bollinger Bands as SMA ± k·σ with the *population* σ; EMA seeded with the SMA of
its first ``n`` inputs; MACD whose fast and slow seed windows end on the same bar, signal
seeded with the mean of the first MACD values. The periods live in one place,
:data:`INDICATORS`; each maps to a column of the ``features`` table.

**Only closed candles enter** (``candles.closed = 1``). A forming bucket is invisible here; when
it closes, the schema's trigger queues it and the next run computes it.

**Incremental, exact.** A run reads, per coin, the earliest closed minute written or changed
since the last run (the ``pending_features`` queue) and recomputes from there over a bounded
tail of :attr:`IndicatorConfig.tail_bars` earlier closed bars. Each run keeps that many closes
per coin (``feature_tails``), so when only minutes after the last computed bar changed — every
run of a live stream — the tail is one blob, not thousands of rows, and the values are the
same bits as from the rows. An earlier minute changed (a gap filled, a closed minute revised)
or a history shorter than the tail reads the tail from the candles again. The tail is long enough that
every recursive indicator has forgotten where it started: an EMA seeded at the wrong value
carries that error times ``(1 - α)^k`` after ``k`` bars, and the seed error is at most the
price range, so once ``(1 - α)^k < 2^-53`` the tail's value equals the full-history value to
the last bit of the price. EMA200 (α = 2/201) needs 3,674 bars for that, plus its 199-bar
lookback: 3,873 bars, the longest of the set (measured: tails of 3,500 bars already give
bit-identical EMA200 at price levels 1e2 and 1e5; 3,000 bars leave 1.4e-13 and 5.8e-11).
SMA and Bollinger Bands need only their window; they differ from a full-history batch by the
rounding TA-Lib's own running sum accumulates over that history (≈1e-13 at price 100).
A run's cost is therefore (new bars + tail) per changed coin, whatever the history held.

**Gaps.** TA-Lib knows bars, not time: a missing minute is not a bar. The indicators run over
the closed candles that exist, so across a gap of ``g`` minutes the bars on both sides are
treated as adjacent and an ``n``-bar indicator spans ``n + g`` minutes — no NaN, no reset, no
invented candle. Those values are exactly TA-Lib's over the series as stored. When a backfill
later fills the gap, the filled minutes are queued like any new closed candle and the next run
recomputes every bar from the first filled minute on, so the stored features become TA-Lib's
over the completed series.

**Gated by the blocking candle check** (SPEC §12). Before computing a coin, the run tests the
closed candles it is about to read with the predicate of ``ohlc_invariants``
(``memory.quality_candles``): a coin with a broken candle there is skipped and named in the run's
``subject_errors`` (the dashboard's ``partial_run``), the others proceed. Its queue entries stay,
so once the candle is repaired (the repair's write queues the minute again) the next run
computes it from its earliest change on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import talib
from numpy.typing import NDArray

from market_assets.ingest.subjects import subject_details
from market_assets.ledger import Ledger
from market_assets.memory import features as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.quality_candles import first_broken_candle
from market_assets.quality.candles import describe_broken
from market_assets.quality.outcome import utc_minute
from market_assets.registry import CANDLES, FEATURES

FLOAT_BITS = 53
"""Mantissa bits of a double: a seed error shrunk by 2^-53 of the price no longer shows."""


@dataclass(frozen=True)
class IndicatorConfig:
    """The one declaration of the indicator periods; column names derive from it."""

    rsi_period: int = 14
    bbands_period: int = 20
    bbands_deviations: float = 2.0
    sma_periods: tuple[int, ...] = (20, 50, 200)
    ema_periods: tuple[int, ...] = (20, 50, 200)
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``features`` columns, in the order :func:`compute` returns them."""
        n = self.bbands_period
        return (
            f"rsi_{self.rsi_period}",
            f"bb_upper_{n}",
            f"bb_middle_{n}",
            f"bb_lower_{n}",
            *(f"sma_{p}" for p in self.sma_periods),
            *(f"ema_{p}" for p in self.ema_periods),
            "macd",
            "macd_signal",
            "macd_hist",
        )

    @property
    def tail_bars(self) -> int:
        """Closed bars read before the first bar to (re)compute, so every output is exact.

        For each recursion: its lookback plus the bars after which a seed error has shrunk below
        one part in 2^53 (module docstring). MACD's signal smooths the MACD line, so its
        convergence adds to the slow EMA's.
        """
        bars = [self.rsi_period + _forget(1 / self.rsi_period)]
        bars += [p - 1 + _forget(2 / (p + 1)) for p in self.ema_periods]
        bars.append(
            self.macd_slow + self.macd_signal - 2 + _forget(2 / (self.macd_slow + 1)) + _forget(2 / (self.macd_signal + 1))
        )
        bars += [p - 1 for p in (self.bbands_period, *self.sma_periods)]
        return max(bars)


def _forget(alpha: float) -> int:
    """Bars after which an error carried by a recursion of smoothing ``alpha`` is below 2^-53 of itself."""
    return math.ceil(FLOAT_BITS * math.log(2) / -math.log1p(-alpha))


INDICATORS = IndicatorConfig()


def compute(closes: NDArray[np.float64], config: IndicatorConfig = INDICATORS) -> list[NDArray[np.float64]]:
    """TA-Lib over ``closes``: one array per column of ``config.columns`` (NaN during warm-up)."""
    upper, middle, lower = talib.BBANDS(
        closes,
        timeperiod=config.bbands_period,
        nbdevup=config.bbands_deviations,
        nbdevdn=config.bbands_deviations,
        matype=talib.MA_Type.SMA,
    )
    macd, signal, hist = talib.MACD(
        closes, fastperiod=config.macd_fast, slowperiod=config.macd_slow, signalperiod=config.macd_signal
    )
    return [
        talib.RSI(closes, timeperiod=config.rsi_period),
        upper,
        middle,
        lower,
        *(talib.SMA(closes, timeperiod=p) for p in config.sma_periods),
        *(talib.EMA(closes, timeperiod=p) for p in config.ema_periods),
        macd,
        signal,
        hist,
    ]


@dataclass(frozen=True)
class FeaturesResult:
    run_id: int
    coins: int
    """Coins with closed candles written or changed since the last run."""
    rows_written: int
    """Feature rows upserted: one per closed candle from each coin's earliest change on."""
    candles_read: int
    """Closed candles read from the candles table (a kept tail is not re-read): what the run's cost follows."""
    tail_bars: int
    blocked: dict[str, str] = field(default_factory=dict)
    """Coins skipped because a candle the run would read breaks ``ohlc_invariants``: where and how."""

    def metadata(self) -> dict[str, Any]:
        return {
            "coins": self.coins,
            "rows_written": self.rows_written,
            "candles_read": self.candles_read,
            "tail_bars": self.tail_bars,
            **subject_details(self.blocked),
        }


class FeatureSchemaError(RuntimeError):
    """The indicator configuration names a column the features table does not have."""


def run_features(conn: MemoryConnection, ledger: Ledger, *, config: IndicatorConfig = INDICATORS) -> FeaturesResult:
    """One run of ``hyperliquid/features``, recorded in the ledger; computes every queued coin.

    Each coin is written in its own transaction together with the consumption of its queue
    entries, so a run killed mid-way keeps the coins it finished and the rest stay queued. A coin
    whose candles to read break an OHLC invariant is skipped, left queued and named (``blocked``).
    """
    interval = CANDLES.data.scope["interval"]
    coins = rows_written = candles_read = 0
    blocked: dict[str, str] = {}
    with ledger.run(FEATURES) as run:
        missing = set(config.columns) - sql.feature_columns(conn)
        if missing:
            raise FeatureSchemaError(
                f"the features table has no column {', '.join(sorted(missing))}; a new period needs a migration"
            )
        tail_bars = config.tail_bars
        for pending in sql.pending_coins(conn):
            kept = sql.kept_tail(conn, pending.coin, interval)
            if kept is not None and pending.from_ms > kept.through_ms and len(kept.closes) >= tail_bars:
                head = kept.closes[-tail_bars:]  # only minutes after the kept tail changed: append to it
                start: int | None = kept.through_ms + 1
            else:
                head = np.empty(0, dtype=np.float64)
                start = sql.tail_start_ms(conn, pending.coin, interval, pending.from_ms, tail_bars)
            broken = first_broken_candle(conn, pending.coin, interval, start)
            if broken is not None:
                blocked[pending.coin] = (
                    f"held back by ohlc_invariants: minute {utc_minute(broken.open_time_ms)} ({broken.open_time_ms}): "
                    f"{describe_broken(broken)[0]}"
                )
                continue
            bars = sql.closed_closes(conn, pending.coin, interval, start)
            times = np.fromiter((open_ms for open_ms, _ in bars), dtype=np.int64, count=len(bars))
            closes = np.concatenate((head, np.fromiter((close for _, close in bars), dtype=np.float64, count=len(bars))))
            first = len(head) + int(np.searchsorted(times, pending.from_ms))
            values = np.column_stack([v[first:] for v in compute(closes, config)]).tolist() if bars else []
            rows = [(open_ms, *row) for open_ms, row in zip(times[first - len(head):].tolist(), values)]
            tail = sql.KeptTail(int(times[-1]), closes[-tail_bars:]) if bars else None
            rows_written += sql.write_features(conn, pending, interval, config.columns, rows, ledger.clock(), tail)
            candles_read += len(bars)
            coins += 1
        result = FeaturesResult(run.run_id, coins, rows_written, candles_read, tail_bars, blocked)
        run.add_rows(rows_written)
        run.metadata.update(result.metadata())
    return result
