"""SQL of ``candle_gaps``: the streamer's continuity check, one row per run of missing minutes.

A run is recorded ``detected`` before the REST backfill is asked for it, so a process killed
mid-backfill leaves it visible; once the backfill is stored the run is replaced by its parts,
``filled`` (REST had the candles), ``no_trades`` (REST has no candle for the minute but has a
later one: nobody traded) and ``unfillable`` (older than the 5,000-candle window). Candles are
never synthesised to close a gap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

from market_assets.memory.connection import write_transaction


class GapStatus(StrEnum):
    DETECTED = "detected"
    FILLED = "filled"
    UNFILLABLE = "unfillable"
    NO_TRADES = "no_trades"
    """candleSnapshot has no candle for the minute while it has a later one: nobody traded."""


class GapRow(NamedTuple):
    coin: str
    interval: str
    start_ms: int
    end_ms: int
    """Exclusive: the open time of the first bucket after the run."""
    status: GapStatus
    missing_buckets: int
    detected_at_ms: int
    resolved_at_ms: int | None


def record_detected(
    conn: sqlite3.Connection, coin: str, interval: str, runs: Sequence[tuple[int, int, int]], now_ms: int
) -> int:
    """Record runs ``(start_ms, end_ms, missing_buckets)`` as detected; a run already recorded
    at the same start and still unresolved is widened, a resolved one is left as it is."""
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO candle_gaps (coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms) "
            "VALUES (?, ?, ?, ?, 'detected', ?, ?) "
            "ON CONFLICT (coin, interval, start_ms) DO UPDATE SET end_ms = excluded.end_ms, "
            "missing_buckets = excluded.missing_buckets WHERE candle_gaps.status = 'detected'",
            [(coin, interval, start, end, missing, now_ms) for start, end, missing in runs],
        )
    return len(runs)


def resolve_gap(
    conn: sqlite3.Connection,
    coin: str,
    interval: str,
    start_ms: int,
    parts: Sequence[tuple[int, int, int, GapStatus]],
    now_ms: int,
) -> None:
    """Replace the detected run starting at ``start_ms`` by its resolved parts
    ``(start_ms, end_ms, buckets, status)``, in one transaction."""
    with write_transaction(conn):
        row = conn.execute(
            "SELECT detected_at_ms FROM candle_gaps WHERE coin = ? AND interval = ? AND start_ms = ? "
            "AND status = 'detected'",
            (coin, interval, start_ms),
        ).fetchone()
        detected_at = now_ms if row is None else row[0]
        conn.execute(
            "DELETE FROM candle_gaps WHERE coin = ? AND interval = ? AND start_ms = ? AND status = 'detected'",
            (coin, interval, start_ms),
        )
        conn.executemany(
            "INSERT INTO candle_gaps (coin, interval, start_ms, end_ms, status, missing_buckets, "
            "detected_at_ms, resolved_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (coin, interval, start_ms) DO UPDATE SET end_ms = excluded.end_ms, "
            "status = excluded.status, missing_buckets = excluded.missing_buckets, "
            "resolved_at_ms = excluded.resolved_at_ms",
            [
                (coin, interval, start, end, status.value, buckets, detected_at, now_ms)
                for start, end, buckets, status in parts
            ],
        )


def gaps_of(conn: sqlite3.Connection, coin: str | None = None, interval: str = "1m") -> list[GapRow]:
    """Recorded runs, oldest first; every coin's when ``coin`` is None."""
    rows = conn.execute(
        "SELECT coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms, resolved_at_ms "
        "FROM candle_gaps WHERE interval = ? AND (? IS NULL OR coin = ?) ORDER BY coin, start_ms",
        (interval, coin, coin),
    ).fetchall()
    return [
        GapRow(coin, interval_, start, end, GapStatus(status), missing, detected_at, resolved_at)
        for coin, interval_, start, end, status, missing, detected_at, resolved_at in rows
    ]
