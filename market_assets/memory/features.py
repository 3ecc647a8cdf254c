"""SQL of the technical features: the work queue, the closed-close tails they read, the upserts.

``pending_features`` is filled by triggers on ``candles`` (schema V2): one entry per closed
1-minute candle written or changed. The job reads, per coin, the earliest changed minute and the
largest entry id, recomputes from there, and deletes only the entries it read, in the same
transaction as its upsert, so a minute closed while it computes waits for the next run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.dialect import pick

_CLOSES = np.dtype("<f8")
"""How ``feature_tails.closes`` stores a tail: little-endian float64, whatever the machine."""


class PendingCoin(NamedTuple):
    coin: str
    from_ms: int
    """Open time of the earliest closed minute written or changed since the coin was last computed."""
    through_change_id: int
    """The largest queue entry read; entries after it belong to the next run."""


def pending_coins(conn: MemoryConnection) -> list[PendingCoin]:
    """Every coin with queued changes, in coin order."""
    rows = conn.execute(
        "SELECT coin, min(open_time_ms), max(change_id) FROM pending_features GROUP BY coin ORDER BY coin"
    ).fetchall()
    return [PendingCoin(*row) for row in rows]


class KeptTail(NamedTuple):
    through_ms: int
    """Open time of the last closed bar the job computed for the coin."""
    closes: NDArray[np.float64]
    """Closes of the last bars up to and including ``through_ms`` (at most the indicator tail), oldest first."""


def kept_tail(conn: MemoryConnection, coin: str, interval: str) -> KeptTail | None:
    """The closes the last run kept for ``coin``; ``None`` before its first run."""
    row = conn.execute(
        "SELECT through_ms, closes FROM feature_tails WHERE coin = ? AND interval = ?", (coin, interval)
    ).fetchone()
    return None if row is None else KeptTail(int(row[0]), np.frombuffer(row[1], dtype=_CLOSES))


def tail_start_ms(conn: MemoryConnection, coin: str, interval: str, before_ms: int, bars: int) -> int | None:
    """Open time of the ``bars``-th closed candle before ``before_ms``; ``None`` when fewer are stored.

    Walks the primary key backwards from ``before_ms``: the cost is ``bars`` index steps, however
    long the history is.
    """
    row = conn.execute(
        "SELECT open_time_ms FROM candles WHERE coin = ? AND interval = ? AND closed = 1 "
        "AND open_time_ms < ? ORDER BY open_time_ms DESC LIMIT 1 OFFSET ?",
        (coin, interval, before_ms, bars - 1),
    ).fetchone()
    return None if row is None else int(row[0])


def closed_closes(conn: MemoryConnection, coin: str, interval: str, from_ms: int | None) -> list[tuple[int, float]]:
    """``(open_time_ms, close)`` of the coin's closed candles from ``from_ms`` (all when ``None``), ascending."""
    return conn.execute(
        "SELECT open_time_ms, close FROM candles WHERE coin = ? AND interval = ? AND closed = 1 "
        "AND open_time_ms >= ? ORDER BY open_time_ms",
        (coin, interval, -1 if from_ms is None else from_ms),
    ).fetchall()


def write_features(
    conn: MemoryConnection,
    pending: PendingCoin,
    interval: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    now_ms: int,
    tail: KeptTail | None,
) -> int:
    """Upsert one coin's rows ``(open_time_ms, *values)``, keep its ``tail`` and consume the queue entries read, atomically.

    ``columns`` are indicator columns of the features table (from the one indicator
    configuration, never user input). A NaN value is stored as NULL (sqlite3 binds it so, and so
    does the PostgreSQL connection): the indicator is not defined yet at that bar (its warm-up).
    """
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{name} = excluded.{name}" for name in (*columns, "computed_at_ms"))
    with write_transaction(conn):
        conn.executemany(
            f"INSERT INTO features (coin, interval, open_time_ms, {names}, computed_at_ms) "
            f"VALUES (?, ?, ?, {marks}, ?) "
            f"ON CONFLICT (coin, interval, open_time_ms) DO UPDATE SET {updates}",
            [(pending.coin, interval, *row, now_ms) for row in rows],
        )
        if tail is not None:
            conn.execute(
                "INSERT INTO feature_tails (coin, interval, through_ms, closes) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (coin, interval) DO UPDATE SET through_ms = excluded.through_ms, closes = excluded.closes",
                (pending.coin, interval, tail.through_ms, tail.closes.astype(_CLOSES).tobytes()),
            )
        conn.execute(
            "DELETE FROM pending_features WHERE coin = ? AND change_id <= ?",
            (pending.coin, pending.through_change_id),
        )
    return len(rows)


def feature_columns(conn: MemoryConnection) -> set[str]:
    """Columns of the features table, to check the indicator configuration against the schema."""
    sql = pick(
        conn,
        sqlite="SELECT name FROM pragma_table_info('features')",
        postgres="SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = 'features'",
    )
    return {row[0] for row in conn.execute(sql)}


def features_of(conn: MemoryConnection, coin: str, interval: str, columns: Sequence[str]) -> list[tuple[object, ...]]:
    """``(open_time_ms, *columns)`` of every stored feature row of one coin, oldest first."""
    return conn.execute(
        f"SELECT open_time_ms, {', '.join(columns)} FROM features WHERE coin = ? AND interval = ? "
        "ORDER BY open_time_ms",
        (coin, interval),
    ).fetchall()
