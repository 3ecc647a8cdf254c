"""``polymarket/discovery`` finds markets by search term and keeps them as the tracked registry;
``polymarket/summary`` refreshes one compact row per tracked market."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from market_assets.ingest.subjects import one_line, one_subject, refuse_if_all_failed, subject_details
from market_assets.memory import polymarket as memory
from market_assets.memory.polymarket import MarketSummary, TrackedMarket
from market_assets.registry import POLYMARKET_DISCOVERY, POLYMARKET_SUMMARY
from market_assets.settings import Settings
from market_assets.sources.errors import SourceError
from market_assets.sources.http import RequestStats
from market_assets.sources.polymarket import PAGE_SIZE, GammaClient, GammaEvent, GammaMarket

SEARCH_PAGES_PER_TERM = 3
"""Search pages read per term: the most relevant events come first; the tail is noise."""


@dataclass(frozen=True)
class DiscoveryBatch:
    markets: list[TrackedMarket]
    terms: list[str]
    subject_errors: dict[str, str] = field(default_factory=dict)
    """Search terms whose search failed: the markets only they find are not refreshed this run."""

    def counts(self) -> dict[str, int]:
        return {"tracked_markets": len(self.markets)}

    def details(self) -> dict[str, Any]:
        return {"search_terms": ", ".join(self.terms), **subject_details(self.subject_errors)}


def is_open(market: GammaMarket) -> bool:
    return market.active is not False and market.closed is not True and market.archived is not True


def open_markets(term: str, events: list[GammaEvent]) -> list[TrackedMarket]:
    return [TrackedMarket(m.id, term) for event in events for m in event.markets if is_open(m)]


async def collect_discovery(
    conn: sqlite3.Connection | None, settings: Settings, stats: RequestStats, now_ms: int
) -> DiscoveryBatch:
    terms = list(settings.search_terms[: settings.max_search_terms])
    found: dict[str, TrackedMarket] = {}
    errors: dict[str, str] = {}
    async with GammaClient(settings.endpoints.gamma_api, stats=stats) as client:
        for term in terms:
            events = await one_subject(term, client.search(term, max_pages=SEARCH_PAGES_PER_TERM), errors)
            for market in open_markets(term, events or []):
                found.setdefault(market.market_id, market)  # the first term that found it names it
    refuse_if_all_failed(POLYMARKET_DISCOVERY.source, "search term", len(terms), errors)
    return DiscoveryBatch(list(found.values()), terms, errors)


def store_discovery(conn: sqlite3.Connection, batch: DiscoveryBatch, now_ms: int) -> dict[str, int]:
    return {"tracked_markets": memory.track_markets(conn, batch.markets, now_ms)}


@dataclass(frozen=True)
class SummaryBatch:
    summaries: list[MarketSummary]
    tracked: int
    subject_errors: dict[str, str] = field(default_factory=dict)
    """Tracked markets whose request failed."""

    def counts(self) -> dict[str, int]:
        return {"markets": len(self.summaries)}

    def details(self) -> dict[str, Any]:
        not_returned = self.tracked - len(self.summaries) - len(self.subject_errors)
        return {"tracked_markets": self.tracked, "not_returned": not_returned, **subject_details(self.subject_errors)}


def summary_row(market: GammaMarket) -> MarketSummary:
    """The compact row: list fields as JSON text, prices as the source's decimal strings."""
    return MarketSummary(
        market_id=market.id,
        question=market.question,
        slug=market.slug,
        outcomes=None if market.outcomes is None else json.dumps(list(market.outcomes)),
        outcome_prices=None if market.outcome_prices is None else json.dumps([str(p) for p in market.outcome_prices]),
        volume=market.volume,
        liquidity=market.liquidity,
        end_date=None if market.end_ms is None else datetime.fromtimestamp(market.end_ms / 1000, UTC).isoformat(),
        active=market.active,
        closed=market.closed,
    )


async def collect_summary(
    conn: sqlite3.Connection | None, settings: Settings, stats: RequestStats, now_ms: int
) -> SummaryBatch:
    """Every tracked market, :data:`PAGE_SIZE` ids per request: a request that fails leaves its
    markets' rows as they were (each named under ``subject_errors``) and keeps the others."""
    tracked = memory.tracked_market_ids(conn) if conn is not None else []
    markets: list[GammaMarket] = []
    errors: dict[str, str] = {}
    async with GammaClient(settings.endpoints.gamma_api, stats=stats) as client:
        for start in range(0, len(tracked), PAGE_SIZE):
            chunk = tracked[start : start + PAGE_SIZE]
            try:
                markets.extend(await client.markets_by_id(chunk))
            except SourceError as exc:
                errors.update(dict.fromkeys(chunk, one_line(exc)))
    refuse_if_all_failed(POLYMARKET_SUMMARY.source, "tracked market", len(tracked), errors)
    return SummaryBatch([summary_row(m) for m in markets], len(tracked), errors)


def store_summary(conn: sqlite3.Connection, batch: SummaryBatch, now_ms: int) -> dict[str, int]:
    return {"markets": memory.upsert_market_summaries(conn, batch.summaries, now_ms)}
