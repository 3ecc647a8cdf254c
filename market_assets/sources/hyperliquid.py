"""Hyperliquid REST ``POST /info``: the perp universe with its contexts, candles, funding history.

Source contract: ``shared/research/sources.md`` §1.1-1.2. Prices, sizes and rates arrive as
decimal strings and stay :class:`~decimal.Decimal`; times are epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from market_assets.sources.errors import PayloadError
from market_assets.sources.http import HostClient, HostPolicy, RequestStats, Weight
from market_assets.sources.parsing import decode
from market_assets.sources.ratelimit import (
    HOUR_MS,
    MAX_ROWS_PER_TIME_RANGE_PAGE,
    WeightBudget,
    WeightLimiter,
    interval_ms,
    max_candles,
    max_funding_rows,
)
from market_assets.sources.timing import AsyncClock, SystemClock

SOURCE = "hyperliquid"
HYPERLIQUID_API = "https://api.hyperliquid.xyz"
POLICY = HostPolicy(source=SOURCE, timeout_s=10.0, attempts=5, max_concurrency=4)


class AssetCtx(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Live context of one perp. ``premium``, ``mid_px`` and ``impact_pxs`` are null for
    delisted or illiquid assets (32 of 203 in the 2025-08-22 recording)."""

    funding: Decimal
    open_interest: Decimal
    prev_day_px: Decimal
    day_ntl_vlm: Decimal
    oracle_px: Decimal
    mark_px: Decimal
    day_base_vlm: Decimal
    premium: Decimal | None = None
    mid_px: Decimal | None = None
    impact_pxs: tuple[Decimal, Decimal] | None = None


class _UniverseEntry(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    szDecimals: int
    maxLeverage: int | None = None  # absent in the 2023-03 ``meta``
    onlyIsolated: bool = False
    isDelisted: bool = False


class _Meta(msgspec.Struct, frozen=True):
    universe: list[_UniverseEntry]


@dataclass(frozen=True, slots=True)
class PerpAsset:
    index: int
    """Asset id: the position in the full universe, delisted entries included."""
    name: str
    """Coin as candle and funding requests want it (``xyz:XYZ100`` on a HIP-3 dex)."""
    sz_decimals: int
    max_leverage: int | None
    only_isolated: bool
    ctx: AssetCtx


@dataclass(frozen=True, slots=True)
class PerpUniverse:
    """One perp dex's universe: ``listed`` is what to subscribe to; ``delisted`` is kept apart."""

    dex: str
    listed: tuple[PerpAsset, ...]
    delisted: tuple[PerpAsset, ...]

    @property
    def coins(self) -> list[str]:
        return [asset.name for asset in self.listed]


class Candle(
    msgspec.Struct,
    frozen=True,
    rename={
        "open_ms": "t",
        "close_ms": "T",
        "coin": "s",
        "interval": "i",
        "open": "o",
        "close": "c",
        "high": "h",
        "low": "l",
        "volume": "v",
        "trades": "n",
    },
):
    """One OHLCV bucket. ``close_ms`` is ``open_ms + interval - 1``; ``volume`` is in the base asset."""

    open_ms: int
    close_ms: int
    coin: str
    interval: str
    open: Decimal
    close: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal
    trades: int

    def is_closed(self, now_ms: int) -> bool:
        """A bucket is final only once its close time has passed."""
        return self.close_ms < now_ms


@dataclass(frozen=True, slots=True)
class CandleBatch:
    """Candles as answered at ``as_of_ms``: the newest bucket may still be forming."""

    candles: list[Candle]
    as_of_ms: int

    @property
    def closed(self) -> list[Candle]:
        return [candle for candle in self.candles if candle.is_closed(self.as_of_ms)]

    @property
    def forming(self) -> list[Candle]:
        return [candle for candle in self.candles if not candle.is_closed(self.as_of_ms)]


class FundingRow(msgspec.Struct, frozen=True, rename="camel"):
    """One funding payment. ``funding_rate`` is per funding interval (hourly now), not annualised."""

    coin: str
    funding_rate: Decimal
    premium: Decimal
    time: int

    @property
    def hour_ms(self) -> int:
        """The hour this payment belongs to: ``time`` carries ms jitter (``1683849600048``)."""
        return self.time - self.time % HOUR_MS


def parse_meta_and_asset_ctxs(data: bytes, dex: str = "") -> PerpUniverse:
    """Parse ``[meta, ctxs]``: ``ctxs[i]`` belongs to ``meta.universe[i]``."""
    meta: _Meta
    ctxs: list[AssetCtx]
    meta, ctxs = decode(data, tuple[_Meta, list[AssetCtx]], SOURCE, "metaAndAssetCtxs")
    if len(ctxs) != len(meta.universe):
        raise PayloadError(
            SOURCE, "metaAndAssetCtxs", "$[1]", f"{len(ctxs)} ctxs for {len(meta.universe)} universe entries"
        )
    listed: list[PerpAsset] = []
    delisted: list[PerpAsset] = []
    for index, (entry, ctx) in enumerate(zip(meta.universe, ctxs)):
        asset = PerpAsset(index, entry.name, entry.szDecimals, entry.maxLeverage, entry.onlyIsolated, ctx)
        (delisted if entry.isDelisted else listed).append(asset)
    return PerpUniverse(dex, tuple(listed), tuple(delisted))


def parse_candles(data: bytes) -> list[Candle]:
    candles: list[Candle] = decode(data, list[Candle], SOURCE, "candleSnapshot")
    return candles


def parse_funding(data: bytes) -> list[FundingRow]:
    rows: list[FundingRow] = decode(data, list[FundingRow], SOURCE, "fundingHistory")
    return rows


def dedupe_funding(rows: list[FundingRow]) -> list[FundingRow]:
    """One row per hour, oldest first; a repeated page boundary row or a re-sent hour keeps the
    latest ``time``. Bucketing by hour, not by exact ``time``, absorbs the ms jitter."""
    by_hour: dict[tuple[str, int], FundingRow] = {}
    for row in rows:
        key = (row.coin, row.hour_ms)
        kept = by_hour.get(key)
        if kept is None or row.time >= kept.time:
            by_hour[key] = row
    return sorted(by_hour.values(), key=lambda row: (row.coin, row.time))


class HyperliquidClient:
    """``POST /info`` reads under the 1,200 weight/minute budget.

    The budget is per IP: give every client on the machine the same ``limiter``, across
    processes a :func:`~market_assets.sources.ratelimit.shared_budget` (the streamer's and the
    Dagster runs' clients do). Without one, the client keeps a budget of its own.
    """

    def __init__(
        self,
        base_url: str = HYPERLIQUID_API,
        *,
        clock: AsyncClock | None = None,
        limiter: WeightBudget | None = None,
        policy: HostPolicy = POLICY,
        stats: RequestStats | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.limiter = limiter or WeightLimiter(self.clock)
        self._host = HostClient(base_url, policy, clock=self.clock, limiter=self.limiter, stats=stats)

    @property
    def stats(self) -> RequestStats:
        return self._host.stats

    async def aclose(self) -> None:
        await self._host.aclose()

    async def __aenter__(self) -> HyperliquidClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def meta_and_asset_ctxs(self, dex: str = "") -> PerpUniverse:
        """The perp universe of ``dex`` (``""``: the first, main perp dex; HIP-3 dexes by name)."""
        body: dict[str, Any] = {"type": "metaAndAssetCtxs"}
        if dex:
            body["dex"] = dex
        universe: PerpUniverse = await self._info(
            body, "metaAndAssetCtxs", lambda data: parse_meta_and_asset_ctxs(data, dex), max_items=0
        )
        return universe

    async def candle_snapshot(self, coin: str, interval: str, start_ms: int, end_ms: int) -> CandleBatch:
        """Candles whose buckets touch ``[start_ms, end_ms]`` (both ends bucket-inclusive).

        Only the most recent 5,000 candles of an interval exist on the server.
        """
        interval_ms(interval)  # refuse an unknown interval before spending weight on it
        body = {"type": "candleSnapshot", "req": {"coin": coin, "interval": interval, "startTime": start_ms, "endTime": end_ms}}
        candles: list[Candle] = await self._info(
            body, "candleSnapshot", parse_candles, max_items=max_candles(interval, start_ms, end_ms)
        )
        return CandleBatch(candles, self.clock.now_ms())

    async def funding_history(self, coin: str, start_ms: int, end_ms: int | None = None) -> list[FundingRow]:
        """Every funding row of ``coin`` from ``start_ms``, following the 500-row pages.

        The next page starts at the last returned ``time`` (inclusive, so that row comes back
        and is deduplicated), as the info endpoint's pagination notes prescribe.
        """
        rows: list[FundingRow] = []
        cursor = start_ms
        while True:
            body: dict[str, Any] = {"type": "fundingHistory", "coin": coin, "startTime": cursor}
            if end_ms is not None:
                body["endTime"] = end_ms
            page: list[FundingRow] = await self._info(
                body, "fundingHistory", parse_funding, max_items=max_funding_rows(cursor, end_ms)
            )
            rows.extend(page)
            if len(page) < MAX_ROWS_PER_TIME_RANGE_PAGE:
                break
            last = max(row.time for row in page)
            if last <= cursor:
                break  # a full page all at one instant would never advance: stop, don't spin
            cursor = last
        return dedupe_funding(rows)

    async def _info(self, body: dict[str, Any], request_type: str, parse: Any, *, max_items: int) -> Any:
        return await self._host.post(
            "/info",
            endpoint=request_type,
            parse=parse,
            body=body,
            weight=Weight(request_type, max_items, _item_count),
        )


def _item_count(parsed: object) -> int:
    return len(parsed) if isinstance(parsed, list) else 0
