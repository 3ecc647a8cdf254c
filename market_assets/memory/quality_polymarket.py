"""SQL of the Polymarket checks (``market_assets.quality.polymarket``): reads only."""

from __future__ import annotations

from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection


class StoredSummary(NamedTuple):
    """A tracked market's summary row, its lists as the JSON text the source sent."""

    market_id: str
    question: str | None
    outcomes: str | None
    outcome_prices: str | None
    active: bool | None
    closed: bool | None


class Unsummarized(NamedTuple):
    market_id: str
    search_term: str
    first_seen_at_ms: int


def tracked_summaries(conn: MemoryConnection) -> list[StoredSummary]:
    """The summary row of every tracked market that has one, by market id. An untracked market's
    last row stays a year for analysis but is no longer refreshed: the checks pass over it."""
    rows = conn.execute(
        """SELECT m.market_id, m.question, m.outcomes, m.outcome_prices, m.active, m.closed
            FROM polymarket_markets AS m JOIN polymarket_tracked_markets AS t ON t.market_id = m.market_id
            ORDER BY m.market_id"""
    ).fetchall()
    return [
        StoredSummary(market_id, question, outcomes, prices, None if active is None else bool(active),
                      None if closed is None else bool(closed))
        for market_id, question, outcomes, prices, active, closed in rows
    ]


def tracked_since(conn: MemoryConnection, first_seen_before_ms: int) -> int:
    """How many tracked markets discovery first found before ``first_seen_before_ms``."""
    return int(
        conn.execute(
            "SELECT count(*) FROM polymarket_tracked_markets WHERE first_seen_at_ms < ?", (first_seen_before_ms,)
        ).fetchone()[0]
    )


def unsummarized(conn: MemoryConnection, first_seen_before_ms: int) -> list[Unsummarized]:
    """Tracked markets first found before ``first_seen_before_ms`` with no summary row, oldest first."""
    rows = conn.execute(
        """SELECT t.market_id, t.search_term, t.first_seen_at_ms FROM polymarket_tracked_markets AS t
            WHERE t.first_seen_at_ms < ?
            AND NOT EXISTS (SELECT 1 FROM polymarket_markets AS m WHERE m.market_id = t.market_id)
            ORDER BY t.first_seen_at_ms, t.market_id""",
        (first_seen_before_ms,),
    ).fetchall()
    return [Unsummarized(market_id, term, int(first)) for market_id, term, first in rows]
