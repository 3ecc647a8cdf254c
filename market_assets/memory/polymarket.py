"""SQL of the Polymarket tables: the discovery registry of tracked markets and their summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection, write_transaction


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


class Untracked(NamedTuple):
    closed: int
    """Markets the summary reported closed."""
    not_found: int
    """Markets discovery had not found for the registry's period."""


def track_markets(conn: MemoryConnection, markets: Sequence[TrackedMarket], now_ms: int) -> int:
    """Add newly found markets to the registry and refresh when already-tracked ones were seen.

    A market found again after it was untracked is tracked again, keeping when it was first seen.
    """
    with write_transaction(conn):
        conn.executemany(
            "INSERT INTO polymarket_tracked_markets "
            "(market_id, search_term, first_seen_at_ms, last_seen_at_ms) VALUES (?, ?, coalesce("
            "(SELECT first_seen_at_ms FROM polymarket_untracked_markets WHERE market_id = ?), ?), ?) "
            "ON CONFLICT (market_id) DO UPDATE SET last_seen_at_ms = excluded.last_seen_at_ms",
            [(m.market_id, m.search_term, m.market_id, now_ms, now_ms) for m in markets],
        )
        conn.executemany(
            "DELETE FROM polymarket_untracked_markets WHERE market_id = ?", [(m.market_id,) for m in markets]
        )
    return len(markets)


_UNTRACK = """INSERT INTO polymarket_untracked_markets
        (market_id, search_term, first_seen_at_ms, last_seen_at_ms, untracked_at_ms, reason)
    SELECT t.market_id, t.search_term, t.first_seen_at_ms, t.last_seen_at_ms, :now, :reason
    FROM polymarket_tracked_markets AS t WHERE {which}"""
_CLOSED = "EXISTS (SELECT 1 FROM polymarket_markets AS m WHERE m.market_id = t.market_id AND m.closed = 1)"
_NOT_FOUND = "t.last_seen_at_ms < :seen_before"
_MOVED = (
    "DELETE FROM polymarket_tracked_markets WHERE market_id IN (SELECT market_id FROM polymarket_untracked_markets)"
)
"""The tracked and untracked registries never share a market: what was just copied goes."""


def untrack_markets(conn: MemoryConnection, unseen_ms: int, now_ms: int) -> Untracked:
    """Move out of the tracked registry every market the summary reports closed, and every one
    discovery last found more than ``unseen_ms`` before the newest market it found (not before
    ``now``: while discovery finds nothing at all, an outage, nothing is untracked)."""
    with write_transaction(conn):
        (newest,) = conn.execute("SELECT max(last_seen_at_ms) FROM polymarket_tracked_markets").fetchone()
        closed = conn.execute(_UNTRACK.format(which=_CLOSED), {"now": now_ms, "reason": "closed"}).rowcount
        conn.execute(_MOVED)
        not_found = 0
        if newest is not None:
            params = {"now": now_ms, "reason": "not_found", "seen_before": newest - unseen_ms}
            not_found = conn.execute(_UNTRACK.format(which=_NOT_FOUND), params).rowcount
            conn.execute(_MOVED)
    return Untracked(closed, not_found)


def prune_untracked(conn: MemoryConnection, untracked_before_ms: int) -> int:
    """Delete the markets untracked before ``untracked_before_ms``: their registry row and their
    last summary. Returns how many markets went."""
    with write_transaction(conn):
        conn.execute(
            "DELETE FROM polymarket_markets WHERE market_id IN (SELECT market_id FROM "
            "polymarket_untracked_markets WHERE untracked_at_ms < ?)",
            (untracked_before_ms,),
        )
        return conn.execute(
            "DELETE FROM polymarket_untracked_markets WHERE untracked_at_ms < ?", (untracked_before_ms,)
        ).rowcount


def untracked_markets(conn: MemoryConnection) -> dict[str, str]:
    """Every untracked market and why it was untracked (``closed``, ``not_found``)."""
    return dict(conn.execute("SELECT market_id, reason FROM polymarket_untracked_markets ORDER BY market_id"))


def tracked_market_ids(conn: MemoryConnection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT market_id FROM polymarket_tracked_markets ORDER BY market_id")]


def upsert_market_summaries(conn: MemoryConnection, rows: Iterable[MarketSummary], now_ms: int) -> int:
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
