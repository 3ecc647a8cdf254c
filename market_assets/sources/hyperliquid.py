"""Hyperliquid REST ``POST /info``: the perp universe with its contexts, candles, funding history.

Source contract: ``shared/research/sources.md`` §1.1-1.2. Prices, sizes and rates arrive as
decimal strings and stay :class:`~decimal.Decimal`, except a candle's, read straight into the
doubles the memory stores (the hot path of the stream and of repair); times are epoch milliseconds.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NamedTuple, cast

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


_CANDLE_KEYS = {
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
}


class Candle(msgspec.Struct, frozen=True, gc=False, rename=_CANDLE_KEYS):
    """One OHLCV bucket. ``close_ms`` is ``open_ms + interval - 1``; ``volume`` is in the base asset.

    Values are the doubles the memory stores, each the one nearest the venue's decimal string
    (built by :func:`checked_candle` and :func:`parse_candles`); it encodes to the venue's keys."""

    open_ms: int
    close_ms: int
    coin: str
    interval: str
    open: float
    close: float
    high: float
    low: float
    volume: float
    trades: int

    def is_closed(self, now_ms: int) -> bool:
        """A bucket is final only once its close time has passed."""
        return self.close_ms < now_ms


class ExactCandle(msgspec.Struct, frozen=True, rename=_CANDLE_KEYS):
    """A candle as the venue's decimals, exactly: what a candle refused as doubles is classified
    on (``"1e-400"`` is a price of ``0`` as a double, a non-finite one here)."""

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


class _WireCandle(msgspec.Struct, rename=_CANDLE_KEYS, gc=False):
    """A candle as sent: decimal strings (or JSON numbers), read into doubles by :func:`_as_doubles`."""

    open_ms: int
    close_ms: int
    coin: str
    interval: str
    open: str | float
    close: str | float
    high: str | float
    low: str | float
    volume: str | float
    trades: int


class CandleDefect(StrEnum):
    """Why a candle's values cannot be a real bucket, in the order :func:`candle_defect` checks."""

    NON_FINITE = "non_finite"
    """A value is ``NaN``, infinite, or one the memory cannot store as itself: ``"1e400"`` (a
    REAL would hold ``inf``), a nonzero price under the smallest normal double (``"1e-400"``
    would be ``0``), a trade count past a 64-bit INTEGER."""
    NEGATIVE = "negative"
    """A price at or below zero (``"-0"`` included), or a negative volume or trade count."""
    LOW_ABOVE_HIGH = "low_above_high"
    OPEN_OUTSIDE_RANGE = "open_outside_range"
    CLOSE_OUTSIDE_RANGE = "close_outside_range"


_ZERO = Decimal(0)
_LARGEST = Decimal(sys.float_info.max)
"""The largest double, exactly."""
_SMALLEST_PRICE = Decimal(sys.float_info.min)
"""The smallest normal double: below it a REAL keeps fewer digits, and under 2**-1075 none."""
_MOST_TRADES = 2**63 - 1


def candle_defect(candle: ExactCandle) -> CandleDefect | None:
    """The first defect of ``candle``'s values, or ``None`` when they can be a real bucket:
    every price finite and ``> 0``, volume finite and ``>= 0``, ``trades >= 0``, ``l <= h`` and
    ``o``, ``c`` within ``[l, h]``. ``o == h == l == c`` and ``v == 0`` are valid.

    msgspec decodes ``"NaN"``, ``"sNaN"``, ``"inf"``, ``"-0"`` and ``"1e400"`` into a ``Decimal``
    without complaint, so this is the only guard. It classifies what :func:`_as_doubles` refused.
    Only comparisons, which never round: ``abs(Decimal("1e999999999"))`` raises ``Overflow``."""
    low, high, volume, trades = candle.low, candle.high, candle.volume, candle.trades
    try:
        if (
            _SMALLEST_PRICE <= low <= candle.open <= high <= _LARGEST
            and low <= candle.close <= high
            and _ZERO <= volume <= _LARGEST
            and 0 <= trades <= _MOST_TRADES
        ):
            return None
    except InvalidOperation:  # an ordering comparison with a NaN, under the default context
        return CandleDefect.NON_FINITE
    prices = (candle.open, high, low, candle.close)
    if (
        not all(value.is_finite() and -_LARGEST <= value <= _LARGEST for value in (*prices, volume))
        or any(price != _ZERO and -_SMALLEST_PRICE < price < _SMALLEST_PRICE for price in prices)
        or trades > _MOST_TRADES
    ):
        return CandleDefect.NON_FINITE
    if min(prices) <= _ZERO or volume < _ZERO or trades < 0:
        return CandleDefect.NEGATIVE
    if low > high:
        return CandleDefect.LOW_ABOVE_HIGH
    if not low <= candle.open <= high:
        return CandleDefect.OPEN_OUTSIDE_RANGE
    return CandleDefect.CLOSE_OUTSIDE_RANGE  # the one condition of the chain left to fail


_SMALLEST_DOUBLE = sys.float_info.min
_LARGEST_DOUBLE = sys.float_info.max


def _as_doubles(wire: _WireCandle) -> Candle | None:
    """The candle as doubles when they make a real bucket, else ``None`` (for the exact decimals
    to say why): the check every valid candle takes, one chained comparison on floats.

    It is made on the values as stored. Rounding to the nearest double is monotonic, so every
    candle :func:`candle_defect` refuses is refused here too; a decimal less than half a unit
    of the last place outside its range rounds into it and is kept as the double it is stored as."""
    try:
        o, h, low = float(wire.open), float(wire.high), float(wire.low)
        c, v = float(wire.close), float(wire.volume)
    except ValueError:  # "sNaN", or not a number at all
        return None
    trades = wire.trades
    if (
        _SMALLEST_DOUBLE <= low <= o <= h <= _LARGEST_DOUBLE
        and low <= c <= h
        and 0.0 <= v <= _LARGEST_DOUBLE
        and 0 <= trades <= _MOST_TRADES
    ):
        return Candle(wire.open_ms, wire.close_ms, wire.coin, wire.interval, o, c, h, low, v, trades)
    return None


def _doubles_of(exact: ExactCandle) -> Candle:
    return Candle(exact.open_ms, exact.close_ms, exact.coin, exact.interval, float(exact.open), float(exact.close),
                  float(exact.high), float(exact.low), float(exact.volume), exact.trades)


_WIRE_CANDLE = msgspec.json.Decoder(_WireCandle)
_WIRE_CANDLES = msgspec.json.Decoder(list[_WireCandle])
_EXACT_CANDLE = msgspec.json.Decoder(ExactCandle)
_UNREADABLE = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)


def checked_candle(raw: bytes | msgspec.Raw, endpoint: str) -> Candle:
    """One candle object as doubles. Raises :class:`RejectedCandle` for impossible values, and
    msgspec's own errors for a candle that breaks the contract (the caller names the path)."""
    try:
        candle = _as_doubles(_WIRE_CANDLE.decode(raw))
    except _UNREADABLE:
        candle = None  # a number past a double's range, say: the exact decimals tell
    if candle is not None:
        return candle
    exact = _EXACT_CANDLE.decode(raw)
    defect = candle_defect(exact)
    if defect is not None:
        raise RejectedCandle(endpoint, "$.data", defect, exact)
    return _doubles_of(exact)


class CandleRejection(NamedTuple):
    """A candle refused for its values: the venue has that minute, so repair it from REST."""

    reason: CandleDefect
    coin: str
    open_ms: int


class RejectedCandle(PayloadError):
    """A candle with every field present and typed, whose values cannot be a real bucket.

    Unlike other payload errors it names the minute: count it under ``reason`` and queue
    ``(coin, open_ms)`` for repair."""

    def __init__(self, endpoint: str, field: str, reason: CandleDefect, candle: ExactCandle) -> None:
        values = f"o={candle.open} h={candle.high} l={candle.low} c={candle.close} v={candle.volume} n={candle.trades}"
        super().__init__(SOURCE, endpoint, field, f"{reason} candle {candle.coin} t={candle.open_ms}: {values}")
        self.reason = reason
        self.coin = candle.coin
        self.open_ms = candle.open_ms


class CheckedCandles(NamedTuple):
    """A ``candleSnapshot`` answer split by :func:`candle_defect`."""

    candles: list[Candle]
    rejected: list[CandleRejection]


@dataclass(frozen=True, slots=True)
class CandleBatch:
    """Candles as answered at ``as_of_ms``: the newest bucket may still be forming.

    ``rejected`` are the buckets the answer held with impossible values; they are in no other
    list. The venue has those minutes: they are neither closed data nor no-trade minutes."""

    candles: list[Candle]
    as_of_ms: int
    rejected: list[CandleRejection]

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


def parse_candles(data: bytes) -> CheckedCandles:
    """Candles whose values pass :func:`candle_defect`, and the rest as rejections: one bad
    bucket does not cost the answer's good ones."""
    try:
        doubles = [_as_doubles(wire) for wire in _WIRE_CANDLES.decode(data)]
    except _UNREADABLE:
        doubles = []  # the exact decimals say whether and where the answer breaks the contract
    if doubles and all(candle is not None for candle in doubles):
        return CheckedCandles(cast(list[Candle], doubles), [])
    checked = CheckedCandles([], [])
    exact: list[ExactCandle] = decode(data, list[ExactCandle], SOURCE, "candleSnapshot")
    for i, candle in enumerate(exact):
        double = doubles[i] if i < len(doubles) else None
        defect = None if double is not None else candle_defect(candle)
        if defect is None:
            checked.candles.append(double or _doubles_of(candle))
        else:
            checked.rejected.append(CandleRejection(defect, candle.coin, candle.open_ms))
    return checked


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
        checked: CheckedCandles = await self._info(
            body, "candleSnapshot", parse_candles, max_items=max_candles(interval, start_ms, end_ms)
        )
        return CandleBatch(checked.candles, self.clock.now_ms(), checked.rejected)

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
    if isinstance(parsed, CheckedCandles):
        return len(parsed.candles) + len(parsed.rejected)  # the venue charges for what it sent
    return len(parsed) if isinstance(parsed, list) else 0
