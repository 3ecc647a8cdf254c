"""Polymarket Gamma (``https://gamma-api.polymarket.com``): market discovery and search.

Source contract: ``shared/research/sources.md`` §2. Every field but ``id`` may be missing.
``outcomes``, ``outcomePrices`` and ``clobTokenIds`` are JSON documents *inside* strings and are
decoded here; market ``liquidity``/``volume`` are strings, most other figures numbers, and all
stay :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from market_assets.sources.errors import PayloadError
from market_assets.sources.http import HostClient, HostPolicy, RequestStats
from market_assets.sources.parsing import decode
from market_assets.sources.timing import AsyncClock

SOURCE = "polymarket"
GAMMA_API = "https://gamma-api.polymarket.com"
POLICY = HostPolicy(source=SOURCE, timeout_s=15.0, attempts=4, max_concurrency=4, slow_is_throttle=True)
"""Cloudflare delays over-limit Gamma requests instead of rejecting them: a timeout is throttling,
and few requests in flight at once keep clear of its error 1015 (docs.polymarket.com rate limits)."""

OPEN_MARKETS: Mapping[str, str] = {"closed": "false", "active": "true", "archived": "false"}
"""Without these, ``/markets`` pages oldest-first through years of dead markets."""
PAGE_SIZE = 100


class _WireEventRef(msgspec.Struct, frozen=True):
    slug: str | None = None


class _WireTag(msgspec.Struct, frozen=True):
    slug: str | None = None
    label: str | None = None


class _WireMarket(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    question: str | None = None
    conditionId: str | None = None
    slug: str | None = None
    outcomes: str | None = None
    outcomePrices: str | None = None
    clobTokenIds: str | None = None
    volume: Decimal | None = None
    liquidity: Decimal | None = None
    volume24hr: Decimal | None = None
    bestBid: Decimal | None = None
    bestAsk: Decimal | None = None
    lastTradePrice: Decimal | None = None
    endDate: str | None = None
    active: bool | None = None
    closed: bool | None = None
    archived: bool | None = None
    events: list[_WireEventRef] | None = None


class _WireEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    slug: str | None = None
    title: str | None = None
    liquidity: Decimal | None = None
    volume: Decimal | None = None
    volume24hr: Decimal | None = None
    openInterest: Decimal | None = None
    endDate: str | None = None
    active: bool | None = None
    closed: bool | None = None
    archived: bool | None = None
    markets: list[_WireMarket] | None = None
    tags: list[_WireTag] | None = None


class _WirePagination(msgspec.Struct, frozen=True):
    hasMore: bool = False
    totalResults: int | None = None


class _WireSearch(msgspec.Struct, frozen=True):
    events: list[_WireEvent] | None = None
    pagination: _WirePagination | None = None


class _WireMarketsEnvelope(msgspec.Struct, frozen=True):
    """Some clients see ``{"data": [...]}`` on ``/markets`` (NautilusTrader accepts both)."""

    data: list[_WireMarket]


@dataclass(frozen=True, slots=True)
class GammaMarket:
    id: str
    question: str | None
    condition_id: str | None
    slug: str | None
    outcomes: tuple[str, ...] | None
    outcome_prices: tuple[Decimal, ...] | None
    """Aligned with ``outcomes``; ``("1", "0")`` once resolved."""
    clob_token_ids: tuple[str, ...] | None
    volume: Decimal | None
    liquidity: Decimal | None
    volume_24h: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    last_trade_price: Decimal | None
    end_ms: int | None
    """``endDate``; a market can be past it and still open."""
    active: bool | None
    closed: bool | None
    archived: bool | None
    event_slugs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GammaEvent:
    id: str
    slug: str | None
    title: str | None
    liquidity: Decimal | None
    volume: Decimal | None
    volume_24h: Decimal | None
    open_interest: Decimal | None
    end_ms: int | None
    active: bool | None
    closed: bool | None
    archived: bool | None
    markets: tuple[GammaMarket, ...]
    tag_slugs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchPage:
    events: tuple[GammaEvent, ...]
    has_more: bool
    total_results: int | None


_STRINGS = msgspec.json.Decoder(list[str])
_DECIMALS = msgspec.json.Decoder(list[Decimal])


def parse_markets(data: bytes, endpoint: str = "/markets") -> list[GammaMarket]:
    wire: list[_WireMarket] | _WireMarketsEnvelope = decode(
        data, list[_WireMarket] | _WireMarketsEnvelope, SOURCE, endpoint
    )
    markets = wire.data if isinstance(wire, _WireMarketsEnvelope) else wire
    return [_market(market, endpoint, f"$[{index}]") for index, market in enumerate(markets)]


def parse_events(data: bytes, endpoint: str = "/events") -> list[GammaEvent]:
    events: list[_WireEvent] = decode(data, list[_WireEvent], SOURCE, endpoint)
    return [_event(event, endpoint, f"$[{index}]") for index, event in enumerate(events)]


def parse_search(data: bytes, endpoint: str = "/public-search") -> SearchPage:
    wire: _WireSearch = decode(data, _WireSearch, SOURCE, endpoint)
    events = tuple(_event(event, endpoint, f"$.events[{i}]") for i, event in enumerate(wire.events or ()))
    pagination = wire.pagination or _WirePagination()
    return SearchPage(events, pagination.hasMore, pagination.totalResults)


def _market(wire: _WireMarket, endpoint: str, path: str) -> GammaMarket:
    outcomes = _embedded(wire.outcomes, _STRINGS, endpoint, f"{path}.outcomes")
    prices = _embedded(wire.outcomePrices, _DECIMALS, endpoint, f"{path}.outcomePrices")
    return GammaMarket(
        id=wire.id,
        question=wire.question,
        condition_id=wire.conditionId,
        slug=wire.slug,
        outcomes=outcomes,
        outcome_prices=prices,
        clob_token_ids=_embedded(wire.clobTokenIds, _STRINGS, endpoint, f"{path}.clobTokenIds"),
        volume=wire.volume,
        liquidity=wire.liquidity,
        volume_24h=wire.volume24hr,
        best_bid=wire.bestBid,
        best_ask=wire.bestAsk,
        last_trade_price=wire.lastTradePrice,
        end_ms=parse_time_ms(wire.endDate, endpoint, f"{path}.endDate"),
        active=wire.active,
        closed=wire.closed,
        archived=wire.archived,
        event_slugs=tuple(event.slug for event in wire.events or () if event.slug),
    )


def _event(wire: _WireEvent, endpoint: str, path: str) -> GammaEvent:
    return GammaEvent(
        id=wire.id,
        slug=wire.slug,
        title=wire.title,
        liquidity=wire.liquidity,
        volume=wire.volume,
        volume_24h=wire.volume24hr,
        open_interest=wire.openInterest,
        end_ms=parse_time_ms(wire.endDate, endpoint, f"{path}.endDate"),
        active=wire.active,
        closed=wire.closed,
        archived=wire.archived,
        markets=tuple(_market(m, endpoint, f"{path}.markets[{i}]") for i, m in enumerate(wire.markets or ())),
        tag_slugs=tuple(tag.slug for tag in wire.tags or () if tag.slug),
    )


def _embedded(text: str | None, decoder: msgspec.json.Decoder[Any], endpoint: str, path: str) -> tuple[Any, ...] | None:
    """Decode a JSON list carried as a string (``"[\\"Yes\\", \\"No\\"]"``); empty text is absent."""
    if not text:
        return None
    try:
        return tuple(decoder.decode(text))
    except msgspec.MsgspecError as exc:
        raise PayloadError(SOURCE, endpoint, path, f"not a JSON-encoded list as expected ({exc})") from exc


def parse_time_ms(text: str | None, endpoint: str, path: str) -> int | None:
    """Gamma's dates come as ``2025-12-31T12:00:00Z``, ``...30.463124Z``, a bare date, or
    ``2025-08-21 19:44:00+00``; all are UTC when no offset is given."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(SOURCE, endpoint, path, f"not an ISO-8601 time: {text!r}") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


class GammaClient:
    """Gamma reads: ``/markets`` and ``/events`` by limit/offset, ``/public-search`` by page."""

    def __init__(
        self,
        base_url: str = GAMMA_API,
        *,
        clock: AsyncClock | None = None,
        policy: HostPolicy = POLICY,
        stats: RequestStats | None = None,
    ) -> None:
        self._host = HostClient(base_url, policy, clock=clock, stats=stats)

    @property
    def stats(self) -> RequestStats:
        return self._host.stats

    async def aclose(self) -> None:
        await self._host.aclose()

    async def __aenter__(self) -> GammaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def markets(
        self,
        filters: Mapping[str, str] = OPEN_MARKETS,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int | None = None,
    ) -> list[GammaMarket]:
        """Every market matching ``filters`` (open ones by default), deduplicated by ``id``:
        offset paging over a list that changes meanwhile can repeat an item across pages."""
        pages = await self._offset_pages("/markets", parse_markets, filters, page_size, max_pages)
        return list({market.id: market for page in pages for market in page}.values())

    async def markets_by_id(self, ids: Sequence[str], *, chunk: int = PAGE_SIZE) -> list[GammaMarket]:
        """The markets with these ids, open or not (a tracked market that closes must still be
        seen closing): ``/markets?id=1&id=2…``, ``chunk`` ids per request."""
        found: dict[str, GammaMarket] = {}
        for start in range(0, len(ids), chunk):
            wanted = ids[start : start + chunk]
            params = [("id", market_id) for market_id in wanted] + [("limit", len(wanted))]
            for market in await self._host.get("/markets", endpoint="/markets", parse=parse_markets, params=params):
                found[market.id] = market
        return list(found.values())

    async def events(
        self,
        filters: Mapping[str, str] = OPEN_MARKETS,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int | None = None,
    ) -> list[GammaEvent]:
        pages = await self._offset_pages("/events", parse_events, filters, page_size, max_pages)
        return list({event.id: event for page in pages for event in page}.values())

    async def search(
        self,
        query: str,
        *,
        limit_per_type: int = 20,
        max_pages: int | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> list[GammaEvent]:
        """Events matching ``query``, following ``page`` while ``pagination.hasMore``."""
        events: dict[str, GammaEvent] = {}
        page_number = 1
        while max_pages is None or page_number <= max_pages:
            params: dict[str, str | int] = {"q": query, "limit_per_type": limit_per_type, "page": page_number}
            params.update(extra or {})
            page = await self._host.get("/public-search", endpoint="/public-search", parse=parse_search, params=params)
            for event in page.events:
                events.setdefault(event.id, event)
            if not page.has_more or not page.events:
                break
            page_number += 1
        return list(events.values())

    async def _offset_pages(
        self,
        path: str,
        parse: Any,
        filters: Mapping[str, str],
        page_size: int,
        max_pages: int | None,
    ) -> list[list[Any]]:
        pages: list[list[Any]] = []
        offset = 0
        while max_pages is None or len(pages) < max_pages:
            params: dict[str, str | int] = {**filters, "limit": page_size, "offset": offset}
            page = await self._host.get(path, endpoint=path, parse=parse, params=params)
            pages.append(page)
            if len(page) < page_size:
                break
            offset += page_size
        return pages
