"""SQL of the features check (``market_assets.quality.features``): which coins, and their rows.

The closes the check recomputes from are read with the features job's own statements
(``memory.features.tail_start_ms`` and ``closed_closes``), so both read the same bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.rollups import SUBJECTS_OF

_COINS = SUBJECTS_OF.format(table="features", column="coin")


def coins_with_features(conn: MemoryConnection, interval: str, since_ms: int) -> list[str]:
    """Coins with a feature row of ``interval`` at or after ``since_ms``, by coin: one seek per coin."""
    rows = conn.execute(
        f"""{_COINS} SELECT subject FROM subjects WHERE subject IS NOT NULL AND EXISTS (
            SELECT 1 FROM features AS f WHERE f.coin = subjects.subject AND f.interval = ? AND f.open_time_ms >= ?)
        ORDER BY subject""",
        (interval, since_ms),
    ).fetchall()
    return [row[0] for row in rows]


def features_since(
    conn: MemoryConnection, coin: str, interval: str, columns: Sequence[str], since_ms: int
) -> list[tuple[Any, ...]]:
    """``(open_time_ms, *columns)`` of one coin's feature rows at or after ``since_ms``, oldest first.

    ``columns`` come from the one indicator configuration, never from input."""
    return conn.execute(
        f"SELECT open_time_ms, {', '.join(columns)} FROM features WHERE coin = ? AND interval = ? "
        "AND open_time_ms >= ? ORDER BY open_time_ms",
        (coin, interval, since_ms),
    ).fetchall()


def first_pending_ms(conn: MemoryConnection, coin: str) -> int | None:
    """Open time of the coin's earliest minute queued for the features job: its stored feature
    rows from there on are about to be recomputed."""
    row = conn.execute("SELECT min(open_time_ms) FROM pending_features WHERE coin = ?", (coin,)).fetchone()
    return None if row[0] is None else int(row[0])
