"""SQL of the DefiLlama macro series: compact (series, subject, day) -> value rows."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection, write_transaction


class SeriesPoint(NamedTuple):
    series: str
    """e.g. ``tvl``, ``stablecoin_supply``, ``dex_volume``, ``fees``."""
    subject: str
    """A chain name, a peg type (``peggedUSD``), or ``total``."""
    ts_ms: int
    value: Decimal


def upsert_series(conn: MemoryConnection, points: Iterable[SeriesPoint], now_ms: int) -> int:
    params = [(p.series, p.subject, p.ts_ms, float(p.value), now_ms) for p in points]
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO defillama_series (series, subject, ts_ms, value, updated_at_ms) "
            "VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (series, subject, ts_ms) DO UPDATE SET value = excluded.value, "
            "updated_at_ms = excluded.updated_at_ms",
            params,
        )
    return len(params)


def series_points(conn: MemoryConnection, series: str, subject: str) -> list[tuple[int, float]]:
    """(ts_ms, value) of one series and subject, oldest first."""
    return conn.execute(
        "SELECT ts_ms, value FROM defillama_series WHERE series = ? AND subject = ? ORDER BY ts_ms",
        (series, subject),
    ).fetchall()


def latest_ts(conn: MemoryConnection, series: str, subject: str) -> int | None:
    """The newest stored timestamp of one series and subject."""
    row = conn.execute(
        "SELECT ts_ms FROM defillama_series WHERE series = ? AND subject = ? ORDER BY ts_ms DESC LIMIT 1",
        (series, subject),
    ).fetchone()
    return None if row is None else row[0]
