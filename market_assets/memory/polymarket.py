"""SQL of the Polymarket tables: the discovery registry of tracked markets and their summaries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from market_assets.memory.connection import write_transaction


class TrackedMarket(NamedTuple):
    market_id: str
    search_term: str


class MarketSummary(NamedTuple):
    market_id: str
    question: str | None
    slug: str | None
    outcomes: str | None
    """JSON array text, as the source encodes it."""
    outcome_prices: str | None
    """JSON array text of decimal strings, as the source encodes it."""
    volume: Decimal | None
    liquidity: Decimal | None
    end_date: str | None
    """ISO 8601 text from the source."""
    active: bool | None
    closed: bool | None


def track_markets(conn: sqlite3.Connection, markets: Sequence[TrackedMarket], now_ms: int) -> int:
    """Add newly found markets to the registry and refresh when already-tracked ones were seen."""
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO polymarket_tracked_markets "
            "(market_id, search_term, first_seen_at_ms, last_seen_at_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (market_id) DO UPDATE SET last_seen_at_ms = excluded.last_seen_at_ms",
            [(m.market_id, m.search_term, now_ms, now_ms) for m in markets],
        )
    return len(markets)


def tracked_market_ids(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT market_id FROM polymarket_tracked_markets ORDER BY market_id")]


def upsert_market_summaries(conn: sqlite3.Connection, rows: Iterable[MarketSummary], now_ms: int) -> int:
    params = [
        (
            *row[:5],
            None if row.volume is None else float(row.volume),
            None if row.liquidity is None else float(row.liquidity),
            row.end_date,
            None if row.active is None else int(row.active),
            None if row.closed is None else int(row.closed),
            now_ms,
        )
        for row in rows
    ]
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO polymarket_markets (market_id, question, slug, outcomes, outcome_prices, "
            "volume, liquidity, end_date, active, closed, updated_at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (market_id) DO UPDATE SET question = excluded.question, slug = excluded.slug, "
            "outcomes = excluded.outcomes, outcome_prices = excluded.outcome_prices, "
            "volume = excluded.volume, liquidity = excluded.liquidity, end_date = excluded.end_date, "
            "active = excluded.active, closed = excluded.closed, updated_at_ms = excluded.updated_at_ms",
            params,
        )
    return len(params)
