"""SQL of the candle checks (``market_assets.quality.candles``) and of the features job's gate.

Every window query walks the candles coin by coin (a loose index scan of the primary key's
leading column, :data:`~market_assets.memory.rollups.SUBJECTS_OF`), then each coin's range of
the window: a seek per coin whether or not ``ANALYZE`` statistics exist, so the cost follows the
window's rows, not the 30 days the table keeps. A healthy window costs one pass per check; the
listing of the failing rows runs only when the pass found some.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import ORDERED_JOIN, Dialect, dialect_of
from market_assets.memory.rollups import SUBJECTS_OF

_LARGEST = sys.float_info.max
"""``x BETWEEN -max AND max`` is true only for a finite REAL: false for ±Inf and for text (text
sorts above every number), NULL for NULL (hence ``IS NOT TRUE``). A NaN never reaches a column:
SQLite binds it as NULL and the candles' ``NOT NULL`` refuses it (the streamer queues the minute
``rejected``); PostgreSQL's connection sends it as NULL too, and a CHECK refuses it otherwise
(where PostgreSQL sorts NaN above every number, so the bounds would fail it as well)."""
_INT64 = 2**63 - 1
"""The largest INTEGER: ``trades BETWEEN 0 AND`` it refuses a negative count and text alike."""

_KEPT = f"""(c.low >= -{_LARGEST!r} AND c.high <= {_LARGEST!r}
        AND c.low <= c.open AND c.low <= c.close AND c.high >= c.open AND c.high >= c.close
        AND c.volume >= 0 AND c.volume <= {_LARGEST!r} AND c.trades BETWEEN 0 AND {_INT64}) IS TRUE"""
"""Whether a candle ``c`` keeps every invariant. ``low <= open, close <= high`` with ``low`` and
``high`` finite makes all four finite and ``low <= high``; a NULL makes the whole NULL, so ``IS
TRUE``; text compares above every number, so text in ``high``, ``open`` or ``close`` fails a bound
and text in ``low`` fails ``low <= open``. Plain comparisons, no function calls: the pass costs
about three scans of the window, where a CASE naming the fault costs nine."""

_FAULT = {
    dialect: f"""CASE
        WHEN (c.open BETWEEN -{_LARGEST!r} AND {_LARGEST!r}) IS NOT TRUE THEN 'open'
        WHEN (c.high BETWEEN -{_LARGEST!r} AND {_LARGEST!r}) IS NOT TRUE THEN 'high'
        WHEN (c.low BETWEEN -{_LARGEST!r} AND {_LARGEST!r}) IS NOT TRUE THEN 'low'
        WHEN (c.close BETWEEN -{_LARGEST!r} AND {_LARGEST!r}) IS NOT TRUE THEN 'close'
        WHEN (c.volume BETWEEN -{_LARGEST!r} AND {_LARGEST!r}) IS NOT TRUE THEN 'volume'
        WHEN c.volume < 0 THEN 'volume<0'
        WHEN (c.trades BETWEEN 0 AND {_INT64}) IS NOT TRUE THEN 'trades<0'
        WHEN c.low > c.high THEN 'low>high'
        WHEN c.low > {least}(c.open, c.close) THEN 'low>open/close'
        ELSE 'high<open/close'
    END"""
    for dialect, least in ((Dialect.SQLITE, "min"), (Dialect.POSTGRES, "LEAST"))
}
"""Which invariant a candle that fails :data:`_KEPT` breaks first, by name. The check and the
features job's gate both select through these two expressions, so they cannot disagree."""

_COINS = SUBJECTS_OF.format(table="candles", column="coin") + """, coins (coin) AS (
        SELECT subject FROM subjects WHERE subject IS NOT NULL)"""

_WINDOW = {
    dialect: f"""FROM coins {join} candles AS c ON c.coin = coins.coin AND c.interval = :interval
        AND c.open_time_ms >= :start AND c.open_time_ms < :end"""
    for dialect, join in ORDERED_JOIN.items()
}
"""Every stored bucket of ``interval`` in ``[start, end)``, coin by coin."""


class BrokenCandle(NamedTuple):
    coin: str
    open_time_ms: int
    fault: str
    """Which invariant: a field name (not finite), ``volume<0``, ``trades<0``, ``low>high``,
    ``low>open/close`` or ``high<open/close``."""
    open: object
    high: object
    low: object
    close: object
    volume: object
    trades: object


class Tally(NamedTuple):
    checked: int
    failing: int


def invariant_tally(conn: MemoryConnection, interval: str, start_ms: int, end_ms: int) -> Tally:
    """Closed buckets in ``[start_ms, end_ms)`` and how many break an OHLC invariant: one pass."""
    row = conn.execute(
        f"{_COINS} SELECT count(*), count(NOT {_KEPT} OR NULL) {_WINDOW[dialect_of(conn)]} WHERE c.closed = 1",
        {"interval": interval, "start": start_ms, "end": end_ms},
    ).fetchone()
    return Tally(row[0], row[1])


_BROKEN_COLUMNS = {
    dialect: f"c.coin, c.open_time_ms, {fault} AS fault, c.open, c.high, c.low, c.close, c.volume, c.trades"
    for dialect, fault in _FAULT.items()
}


def broken_candles(conn: MemoryConnection, interval: str, start_ms: int, end_ms: int, limit: int) -> list[BrokenCandle]:
    """The first ``limit`` closed buckets of the window breaking an invariant, oldest first."""
    rows = conn.execute(
        f"{_COINS} SELECT {_BROKEN_COLUMNS[dialect_of(conn)]} {_WINDOW[dialect_of(conn)]} "
        f"WHERE c.closed = 1 AND NOT {_KEPT} "
        "ORDER BY c.open_time_ms, c.coin LIMIT :limit",
        {"interval": interval, "start": start_ms, "end": end_ms, "limit": limit},
    ).fetchall()
    return [BrokenCandle(*row) for row in rows]


def first_broken_candle(conn: MemoryConnection, coin: str, interval: str, from_ms: int | None) -> BrokenCandle | None:
    """The oldest closed bucket of ``coin`` from ``from_ms`` (all when ``None``) that breaks an
    invariant: the features job's gate over the rows it is about to read (a primary-key range)."""
    row = conn.execute(
        f"SELECT {_BROKEN_COLUMNS[dialect_of(conn)]} FROM candles AS c WHERE c.coin = :coin AND c.interval = :interval "
        f"AND c.open_time_ms >= :start AND c.closed = 1 AND NOT {_KEPT} ORDER BY c.open_time_ms LIMIT 1",
        {"coin": coin, "interval": interval, "start": -1 if from_ms is None else from_ms},
    ).fetchone()
    return None if row is None else BrokenCandle(*row)


# unique_minutes ------------------------------------------------------------------------------

_MISALIGNED = "(c.open_time_ms % :step <> 0 OR c.close_time_ms <> c.open_time_ms + :step - 1)"
"""A bucket off its grid: its open time is not on a bucket boundary (a second row of the
bucket it falls in, which the primary key cannot refuse), or its close time is not the last
millisecond of its bucket (how both the stream and candleSnapshot give ``T``)."""


class MisalignedCandle(NamedTuple):
    coin: str
    open_time_ms: int
    close_time_ms: int


def alignment_tally(conn: MemoryConnection, interval: str, step_ms: int, start_ms: int, end_ms: int) -> Tally:
    """Buckets in ``[start_ms, end_ms)`` (forming ones too) and how many are off their grid: one pass."""
    row = conn.execute(
        f"{_COINS} SELECT count(*), count({_MISALIGNED} OR NULL) {_WINDOW[dialect_of(conn)]}",
        {"interval": interval, "step": step_ms, "start": start_ms, "end": end_ms},
    ).fetchone()
    return Tally(row[0], row[1])


def misaligned_candles(
    conn: MemoryConnection, interval: str, step_ms: int, start_ms: int, end_ms: int, limit: int
) -> list[MisalignedCandle]:
    rows = conn.execute(
        f"{_COINS} SELECT c.coin, c.open_time_ms, c.close_time_ms {_WINDOW[dialect_of(conn)]} WHERE {_MISALIGNED} "
        "ORDER BY c.open_time_ms, c.coin LIMIT :limit",
        {"interval": interval, "step": step_ms, "start": start_ms, "end": end_ms, "limit": limit},
    ).fetchall()
    return [MisalignedCandle(*row) for row in rows]


# continuity ----------------------------------------------------------------------------------


class CoinSpan(NamedTuple):
    """A coin's closed on-grid buckets of a window."""

    coin: str
    minutes: int
    first_ms: int
    newest_ms: int
    earlier: bool
    """Whether the coin has buckets before the window."""


def coin_spans(conn: MemoryConnection, interval: str, step_ms: int, start_ms: int, end_ms: int) -> list[CoinSpan]:
    """Per coin with buckets in ``[start_ms, end_ms)``: how many closed on-grid ones, the first
    and the newest. A coin whose count spans its first to newest bucket has no hole: one count per
    coin (a range of its key) and two seeks, no sort of the window's rows."""
    rows = conn.execute(
        f"""{_COINS}, spans AS (SELECT coins.coin,
            (SELECT c.open_time_ms FROM candles AS c WHERE c.coin = coins.coin AND c.interval = :interval
                AND c.open_time_ms >= :start AND c.open_time_ms < :end AND c.closed = 1 AND c.open_time_ms % :step = 0
                ORDER BY c.open_time_ms LIMIT 1) AS first_ms,
            (SELECT c.open_time_ms FROM candles AS c WHERE c.coin = coins.coin AND c.interval = :interval
                AND c.open_time_ms >= :start AND c.open_time_ms < :end AND c.closed = 1 AND c.open_time_ms % :step = 0
                ORDER BY c.open_time_ms DESC LIMIT 1) AS newest_ms
            FROM coins)
        SELECT s.coin, (SELECT count(*) FROM candles AS c WHERE c.coin = s.coin AND c.interval = :interval
                AND c.open_time_ms >= s.first_ms AND c.open_time_ms <= s.newest_ms AND c.closed = 1
                AND c.open_time_ms % :step = 0),
            s.first_ms, s.newest_ms,
            EXISTS (SELECT 1 FROM candles AS b WHERE b.coin = s.coin AND b.interval = :interval AND b.open_time_ms < :start)
        FROM spans AS s WHERE s.first_ms IS NOT NULL""",
        {"interval": interval, "step": step_ms, "start": start_ms, "end": end_ms},
    ).fetchall()
    return [CoinSpan(coin, minutes, first, newest, bool(earlier)) for coin, minutes, first, newest, earlier in rows]


def closed_minutes(conn: MemoryConnection, coin: str, interval: str, step_ms: int, start_ms: int, end_ms: int) -> list[int]:
    """Open times of one coin's closed on-grid buckets in ``[start_ms, end_ms]``, ascending."""
    return [row[0] for row in conn.execute(
        "SELECT open_time_ms FROM candles WHERE coin = ? AND interval = ? AND open_time_ms >= ? AND open_time_ms <= ? "
        "AND closed = 1 AND open_time_ms % ? = 0 ORDER BY open_time_ms",
        (coin, interval, start_ms, end_ms, step_ms),
    )]


class Excused(NamedTuple):
    """Runs of buckets known to have no candle, and buckets queued for REST repair."""

    quiet: list[tuple[str, int, int, str]]
    """``(coin, start_ms, end_ms, status)`` of ``no_trades`` and ``unfillable`` runs."""
    queued: dict[tuple[str, int], int]
    """``(coin, open_time_ms) -> queued_at_ms`` of the repair queue."""


def excused(conn: MemoryConnection, interval: str, start_ms: int, end_ms: int) -> Excused:
    """What explains missing buckets of ``[start_ms, end_ms)``: recorded runs and the repair queue."""
    quiet = conn.execute(
        "SELECT coin, start_ms, end_ms, status FROM candle_gaps WHERE interval = ? "
        "AND status IN ('no_trades', 'unfillable') AND end_ms > ? AND start_ms < ?",
        (interval, start_ms, end_ms),
    ).fetchall()
    queued = conn.execute(
        "SELECT coin, open_time_ms, queued_at_ms FROM candle_repairs WHERE interval = ? "
        "AND open_time_ms >= ? AND open_time_ms < ?",
        (interval, start_ms, end_ms),
    ).fetchall()
    return Excused(quiet, {(coin, open_ms): at for coin, open_ms, at in queued})


# universe_coverage ---------------------------------------------------------------------------


def newest_of_listed(conn: MemoryConnection, interval: str) -> list[tuple[str, int | None]]:
    """Each listed (not delisted) coin of the stored perp universe and the open time of its newest
    bucket of ``interval`` (``None``: none stored), one primary-key seek per coin, by coin.

    The stored universe holds only the followed perps (a capped profile stores its ``max_coins``
    most traded ones, and every delisted one, flagged), so it is the expectation as it is.
    """
    return conn.execute(
        "SELECT u.coin, (SELECT max(c.open_time_ms) FROM candles AS c WHERE c.coin = u.coin AND c.interval = ?) "
        "FROM hyperliquid_universe AS u WHERE u.is_delisted = 0 ORDER BY u.coin",
        (interval,),
    ).fetchall()


# verified_minutes ----------------------------------------------------------------------------

_UNVERIFIED = {Dialect.SQLITE: "INDEXED BY candles_unverified", Dialect.POSTGRES: ""}
"""The partial index of the closed unconfirmed minutes: named to SQLite, chosen by PostgreSQL's planner."""


def unverified_tally(conn: MemoryConnection, interval: str, start_ms: int, closed_before_ms: int, step_ms: int) -> Tally:
    """Closed unconfirmed buckets opened at or after ``start_ms``, and how many of them closed
    before ``closed_before_ms``: a range of the partial index of unconfirmed minutes."""
    row = conn.execute(
        f"SELECT count(*), count(open_time_ms + ? < ? OR NULL) FROM candles {_UNVERIFIED[dialect_of(conn)]} "
        "WHERE closed = 1 AND confirmed = 0 AND open_time_ms >= ? AND interval = ?",
        (step_ms, closed_before_ms, start_ms, interval),
    ).fetchone()
    return Tally(row[0], row[1])


def overdue_unverified(
    conn: MemoryConnection, interval: str, start_ms: int, closed_before_ms: int, step_ms: int, limit: int
) -> list[tuple[str, int]]:
    """``(coin, open_time_ms)`` of the oldest ``limit`` of them that closed before ``closed_before_ms``."""
    return conn.execute(
        f"SELECT coin, open_time_ms FROM candles {_UNVERIFIED[dialect_of(conn)]} "
        "WHERE closed = 1 AND confirmed = 0 AND open_time_ms >= ? AND open_time_ms + ? < ? AND interval = ? "
        "ORDER BY open_time_ms, coin LIMIT ?",
        (start_ms, step_ms, closed_before_ms, interval, limit),
    ).fetchall()
