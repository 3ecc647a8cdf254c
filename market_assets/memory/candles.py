"""SQL of the candles table: the streamer's batched upserts, bucket closing and gap queries.

A bucket is *forming* (``closed = 0``) until a later bucket arrives for its coin or its close
time has passed; forming rows are re-sent with growing volume and simply upserted. Once closed,
a row is only replaced by another closed row (a REST backfill), never by a late forming frame.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import NamedTuple

from market_assets.memory.connection import write_transaction


Price = Decimal | float
"""A candle value: ``Decimal`` as a source payload gives it, ``float`` as the memory stores it (REAL)."""


class CandleRow(NamedTuple):
    coin: str
    interval: str
    open_time_ms: int
    close_time_ms: int
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Price
    trades: int
    closed: bool


_UPSERT = (
    "INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, "
    "volume, trades, closed, ingested_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (coin, interval, open_time_ms) DO UPDATE SET close_time_ms = excluded.close_time_ms, "
    "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, trades = excluded.trades, closed = excluded.closed, "
    "ingested_at_ms = excluded.ingested_at_ms "
    "WHERE candles.closed = 0 OR excluded.closed = 1"
)


def write_candles(
    conn: sqlite3.Connection,
    rows: Sequence[CandleRow],
    *,
    newest_open_by_coin: Mapping[str, int],
    interval: str,
    close_ended_before_ms: int,
    now_ms: int,
) -> int:
    """One flush of the streamer, in one transaction: upsert ``rows``, then close every forming
    bucket older than its coin's newest bucket and every one whose close time is before
    ``close_ended_before_ms``. Returns the rows upserted. All or nothing.
    """
    params = [(*row[:4], *map(float, row[4:9]), row.trades, int(row.closed), now_ms) for row in rows]
    with write_transaction(conn):
        conn.executemany(_UPSERT, params)
        # A bucket ended before its coin's newest one began is older than it. Through the
        # forming index this visits only the few forming rows; the primary key would walk every
        # stored minute of the coin (100 ms per 171-coin flush at 5,000 minutes of history).
        conn.executemany(
            "UPDATE candles INDEXED BY candles_forming SET closed = 1 "
            "WHERE closed = 0 AND close_time_ms < ? AND coin = ? AND interval = ?",
            [(open_ms, coin, interval) for coin, open_ms in newest_open_by_coin.items()],
        )
        _close_ended(conn, interval, close_ended_before_ms)
    return len(params)


def close_ended_candles(conn: sqlite3.Connection, interval: str, before_ms: int) -> None:
    """Close every forming bucket whose close time is before ``before_ms``: what a flush does
    besides its rows, for a writer stopping with no rows left to flush."""
    with write_transaction(conn):
        _close_ended(conn, interval, before_ms)


def _close_ended(conn: sqlite3.Connection, interval: str, before_ms: int) -> None:
    conn.execute(
        "UPDATE candles SET closed = 1 WHERE closed = 0 AND close_time_ms < ? AND interval = ?",
        (before_ms, interval),
    )


def last_closed_open_times(conn: sqlite3.Connection, interval: str, coins: Iterable[str]) -> dict[str, int]:
    """Per coin, the open time of its newest closed bucket (where a gap backfill starts)."""
    found: dict[str, int] = {}
    for coin in coins:
        # Walks back from the newest bucket and stops at the first closed one (the 1st or 2nd row).
        row = conn.execute(
            "SELECT open_time_ms FROM candles WHERE coin = ? AND interval = ? AND closed = 1 "
            "ORDER BY open_time_ms DESC LIMIT 1",
            (coin, interval),
        ).fetchone()
        if row is not None:
            found[coin] = row[0]
    return found


def closed_open_times(
    conn: sqlite3.Connection, coin: str, interval: str, start_ms: int, end_ms: int
) -> list[int]:
    """Open times of the closed buckets of one coin in ``[start_ms, end_ms)``, ascending."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT open_time_ms FROM candles WHERE coin = ? AND interval = ? AND open_time_ms >= ? "
            "AND open_time_ms < ? AND closed = 1 ORDER BY open_time_ms",
            (coin, interval, start_ms, end_ms),
        )
    ]


def candles_of(conn: sqlite3.Connection, coin: str, interval: str) -> list[CandleRow]:
    """Every stored bucket of one coin, oldest first (values as stored, REAL)."""
    rows = conn.execute(
        "SELECT coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume, trades, closed "
        "FROM candles WHERE coin = ? AND interval = ? ORDER BY open_time_ms",
        (coin, interval),
    ).fetchall()
    return [CandleRow(*row[:10], bool(row[10])) for row in rows]
