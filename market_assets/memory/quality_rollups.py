"""SQL of the rollup check (``market_assets.quality.rollups``): candidate buckets and their minutes.

A bucket is a candidate when it is *current* (nothing of it waits in ``pending_rollups``: a
changed minute queues its hour, a rolled hour queues its day, so a queued entry means the
stored row is about to be replaced) and its 1-minute rows still exist (retention prunes whole
days of minutes once rolled; a pruned bucket has nothing to be compared with).
"""

from __future__ import annotations

from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import ORDERED_JOIN, dialect_of
from market_assets.memory.rollups import DAY_MS, HOUR_MS, SUBJECTS_OF

_COINS = SUBJECTS_OF.format(table="candle_rollups", column="coin") + """, coins (coin) AS (
        SELECT subject FROM subjects WHERE subject IS NOT NULL)"""

_QUEUED = {
    "5m": f"""EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1h' AND p.coin = r.coin
        AND p.bucket_ms = r.open_time_ms - r.open_time_ms % {HOUR_MS} AND p.from_ms <= r.open_time_ms AND r.open_time_ms < p.to_ms)""",
    "1h": """EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1h' AND p.coin = r.coin AND p.bucket_ms = r.open_time_ms)""",
    "1d": f"""(EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1d' AND p.coin = r.coin AND p.bucket_ms = r.open_time_ms)
        OR EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1h' AND p.coin = r.coin
            AND p.bucket_ms >= r.open_time_ms AND p.bucket_ms < r.open_time_ms + {DAY_MS}))""",
}
"""Whether a rollup ``r`` of the level waits to be rolled again: a 5m bucket while its hour's
queued span holds it, an hour while it is queued, a day while it or one of its hours is."""


class StoredRollup(NamedTuple):
    coin: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    minutes: int
    complete: int
    confirmed_minutes: int


def current_rollups(conn: MemoryConnection, interval: str, width_ms: int, per_coin: int) -> list[StoredRollup]:
    """Per coin, its newest ``per_coin`` rollups of ``interval`` that are current and still have
    minutes, newest first: a seek per coin (the loose index scan of the rollups' coins)."""
    if interval not in _QUEUED:
        raise ValueError(f"no rollup level {interval!r}")
    rows = conn.execute(
        f"""{_COINS} SELECT r.coin, r.open_time_ms, r.open, r.high, r.low, r.close, r.volume, r.trades, r.minutes,
            r.complete, r.confirmed_minutes
        FROM coins {ORDERED_JOIN[dialect_of(conn)]} candle_rollups AS r ON r.coin = coins.coin AND r.interval = :interval
            AND r.open_time_ms >= coalesce((SELECT n.open_time_ms FROM candle_rollups AS n WHERE n.coin = coins.coin
                AND n.interval = :interval ORDER BY n.open_time_ms DESC LIMIT 1 OFFSET :per_coin - 1), -1)
        WHERE NOT {_QUEUED[interval]}
            AND EXISTS (SELECT 1 FROM candles AS m WHERE m.coin = r.coin AND m.interval = '1m'
                AND m.open_time_ms >= r.open_time_ms AND m.open_time_ms < r.open_time_ms + :width)
        ORDER BY r.coin, r.open_time_ms DESC""",
        {"interval": interval, "width": width_ms, "per_coin": per_coin},
    ).fetchall()
    return [StoredRollup(*row) for row in rows]


class MinuteAggregate(NamedTuple):
    """A bucket computed straight from its closed 1-minute rows."""

    minutes: int
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None
    trades: int | None
    confirmed_minutes: int | None


def minute_aggregate(conn: MemoryConnection, coin: str, start_ms: int, end_ms: int) -> MinuteAggregate:
    """The closed 1-minute rows of ``coin`` in ``[start_ms, end_ms)`` aggregated as a rollup is:
    the first one's open, the last one's close, the extremes, the sums and the count."""
    row = conn.execute(
        """SELECT count(*),
            (SELECT f.open FROM candles AS f WHERE f.coin = :coin AND f.interval = '1m' AND f.closed = 1
                AND f.open_time_ms >= :start AND f.open_time_ms < :end ORDER BY f.open_time_ms LIMIT 1),
            max(m.high), min(m.low),
            (SELECT z.close FROM candles AS z WHERE z.coin = :coin AND z.interval = '1m' AND z.closed = 1
                AND z.open_time_ms >= :start AND z.open_time_ms < :end ORDER BY z.open_time_ms DESC LIMIT 1),
            sum(m.volume), sum(m.trades), sum(m.confirmed)
        FROM candles AS m WHERE m.coin = :coin AND m.interval = '1m' AND m.closed = 1
            AND m.open_time_ms >= :start AND m.open_time_ms < :end""",
        {"coin": coin, "start": start_ms, "end": end_ms},
    ).fetchone()
    return MinuteAggregate(*row)
