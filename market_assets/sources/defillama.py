"""DefiLlama free API: chain TVL, TVL history, stablecoin supply, DEX volume and fees.

Source contract: ``shared/research/sources.md`` §3. Each path lives on the host the official
OpenAPI lists for it (``api.llama.fi``; ``stablecoins.llama.fi`` for ``/stablecoins``). Figures
are JSON floats and are read straight into :class:`~decimal.Decimal` from their text, so no
binary rounding is added; history dates are unix *seconds* and become milliseconds here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import msgspec

from market_assets.sources.http import HostClient, HostPolicy, RequestStats
from market_assets.sources.parsing import decode
from market_assets.sources.timing import AsyncClock

SOURCE = "defillama"
LLAMA_API = "https://api.llama.fi"
STABLECOINS_API = "https://stablecoins.llama.fi"
# The free API's limit is unpublished and answers 429 under bursts (dimension-adapters#4029):
# two requests in flight per host, generous timeouts for the multi-megabyte documents.
API_POLICY = HostPolicy(source=SOURCE, timeout_s=30.0, attempts=5, backoff_initial_s=1.0, max_concurrency=2)
STABLECOINS_POLICY = HostPolicy(source=SOURCE, timeout_s=30.0, attempts=5, backoff_initial_s=1.0, max_concurrency=2)

EXCLUDE_CHARTS: Mapping[str, str] = {"excludeTotalDataChart": "true", "excludeTotalDataChartBreakdown": "true"}
"""Without these flags ``/overview/*`` ships every protocol's full daily history."""
USD_PEG = "peggedUSD"
TOTAL_CIRCULATING_PSEUDO_CHAIN = "TotalCirculating"


class ChainTvl(msgspec.Struct, frozen=True, kw_only=True, rename={"gecko_id": "gecko_id", "token_symbol": "tokenSymbol", "cmc_id": "cmcId", "chain_id": "chainId"}):
    name: str
    tvl: Decimal
    gecko_id: str | None = None
    token_symbol: str | None = None
    cmc_id: str | None = None
    chain_id: int | str | None = None
    """An int for most chains, a string for a few (``"9001"`` Evmos), null for many."""


class _WireTvlPoint(msgspec.Struct, frozen=True):
    date: int
    tvl: Decimal


@dataclass(frozen=True, slots=True)
class TvlPoint:
    date_ms: int
    """Midnight UTC of the day, in milliseconds (the wire has seconds)."""
    tvl: Decimal


class _WireStablecoin(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    symbol: str | None = None
    pegType: str
    pegMechanism: str | None = None
    price: Decimal | None = None
    circulating: dict[str, Decimal] = {}
    circulatingPrevDay: dict[str, Decimal] = {}


class _WireStablecoinChain(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    totalCirculatingUSD: dict[str, Decimal] = {}


class _WireStablecoins(msgspec.Struct, frozen=True):
    peggedAssets: list[_WireStablecoin]
    chains: list[_WireStablecoinChain] = []


@dataclass(frozen=True, slots=True)
class Stablecoin:
    id: str
    name: str
    symbol: str | None
    peg_type: str
    """``peggedUSD``, ``peggedEUR``, ``peggedVAR`` …: supply figures are in units of this peg."""
    peg_mechanism: str | None
    price: Decimal | None
    """Null for a third of assets even with ``includePrices=true``."""
    circulating: Mapping[str, Decimal]
    circulating_prev_day: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class StablecoinChain:
    name: str
    circulating_usd_by_peg: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class StablecoinReport:
    assets: tuple[Stablecoin, ...]
    chains: tuple[StablecoinChain, ...]
    """Real chains only; DefiLlama's ``TotalCirculating`` pseudo-chain is dropped."""

    def supply_by_peg(self) -> dict[str, Decimal]:
        """Circulating supply summed per peg type. Never add across keys: EUR is not USD."""
        totals: dict[str, Decimal] = {}
        for asset in self.assets:
            for peg, amount in asset.circulating.items():
                totals[peg] = totals.get(peg, Decimal(0)) + amount
        return totals

    @property
    def usd_supply(self) -> Decimal:
        return self.supply_by_peg().get(USD_PEG, Decimal(0))


class FeesDataType(StrEnum):
    DAILY_FEES = "dailyFees"
    DAILY_REVENUE = "dailyRevenue"
    DAILY_HOLDERS_REVENUE = "dailyHoldersRevenue"


class Unreported(StrEnum):
    """Why a total is withheld rather than stored as zero."""

    NULL = "null"
    """The adapter is still backfilling (DefiLlama-Adapters#18204)."""
    ZERO = "zero"
    """A stale adapter reports 0 while the day before was not (dimension-adapters#2145)."""


class _WireDimensionProtocol(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    displayName: str | None = None
    total24h: Decimal | None = None
    total48hto24h: Decimal | None = None
    total7d: Decimal | None = None
    change_1d: Decimal | None = None
    chains: list[str] = []


class _WireDimensionOverview(msgspec.Struct, frozen=True, kw_only=True):
    protocols: list[_WireDimensionProtocol] = []
    total24h: Decimal | None = None
    total48hto24h: Decimal | None = None
    total7d: Decimal | None = None
    change_1d: Decimal | None = None


@dataclass(frozen=True, slots=True)
class DimensionFigure:
    """A 24 h total as DefiLlama reported it; ``value`` is ``None`` whenever it is 0 or null,
    with ``unreported`` saying which, so a caller keeps its previous value and flags the row."""

    value: Decimal | None
    unreported: Unreported | None

    @classmethod
    def of(cls, raw: Decimal | None) -> DimensionFigure:
        if raw is None:
            return cls(None, Unreported.NULL)
        if raw == 0:
            return cls(None, Unreported.ZERO)
        return cls(raw, None)


@dataclass(frozen=True, slots=True)
class DimensionProtocol:
    name: str
    display_name: str | None
    total_24h: DimensionFigure
    total_7d: Decimal | None
    chains: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DimensionOverview:
    """``/overview/dexs`` (volume) or ``/overview/fees`` (fees or revenue) summary."""

    total_24h: DimensionFigure
    total_48h_to_24h: Decimal | None
    total_7d: Decimal | None
    change_1d: Decimal | None
    protocols: tuple[DimensionProtocol, ...]


def parse_chains(data: bytes) -> list[ChainTvl]:
    chains: list[ChainTvl] = decode(data, list[ChainTvl], SOURCE, "/v2/chains")
    return chains


def parse_historical_tvl(data: bytes, endpoint: str = "/v2/historicalChainTvl") -> list[TvlPoint]:
    points: list[_WireTvlPoint] = decode(data, list[_WireTvlPoint], SOURCE, endpoint)
    return [TvlPoint(point.date * 1000, point.tvl) for point in points]


def parse_stablecoins(data: bytes) -> StablecoinReport:
    wire: _WireStablecoins = decode(data, _WireStablecoins, SOURCE, "/stablecoins")
    assets = tuple(
        Stablecoin(
            a.id, a.name, a.symbol, a.pegType, a.pegMechanism, a.price, a.circulating, a.circulatingPrevDay
        )
        for a in wire.peggedAssets
    )
    chains = tuple(
        StablecoinChain(c.name, c.totalCirculatingUSD)
        for c in wire.chains
        if c.name != TOTAL_CIRCULATING_PSEUDO_CHAIN
    )
    return StablecoinReport(assets, chains)


def parse_dimension_overview(data: bytes, endpoint: str) -> DimensionOverview:
    wire: _WireDimensionOverview = decode(data, _WireDimensionOverview, SOURCE, endpoint)
    protocols = tuple(
        DimensionProtocol(p.name, p.displayName, DimensionFigure.of(p.total24h), p.total7d, tuple(p.chains))
        for p in wire.protocols
    )
    return DimensionOverview(
        DimensionFigure.of(wire.total24h), wire.total48hto24h, wire.total7d, wire.change_1d, protocols
    )


class DefiLlamaClient:
    """The free API, each path on its documented host."""

    def __init__(
        self,
        api_base: str = LLAMA_API,
        stablecoins_base: str = STABLECOINS_API,
        *,
        clock: AsyncClock | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        shared = stats if stats is not None else RequestStats()
        self._api = HostClient(api_base, API_POLICY, clock=clock, stats=shared)
        self._stablecoins = HostClient(stablecoins_base, STABLECOINS_POLICY, clock=clock, stats=shared)

    @property
    def stats(self) -> RequestStats:
        return self._api.stats

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._stablecoins.aclose()

    async def __aenter__(self) -> DefiLlamaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def chains(self) -> list[ChainTvl]:
        return await self._api.get("/v2/chains", endpoint="/v2/chains", parse=parse_chains)

    async def historical_chain_tvl(self, chain: str | None = None) -> list[TvlPoint]:
        """Daily TVL of all chains, or of ``chain`` (``"Hyperliquid L1"``, as ``/v2/chains`` names it)."""
        path = "/v2/historicalChainTvl" if chain is None else f"/v2/historicalChainTvl/{chain}"
        return await self._api.get(path, endpoint=path, parse=lambda data: parse_historical_tvl(data, path))

    async def stablecoins(self) -> StablecoinReport:
        return await self._stablecoins.get(
            "/stablecoins", endpoint="/stablecoins", parse=parse_stablecoins, params={"includePrices": "true"}
        )

    async def dex_volume(self) -> DimensionOverview:
        return await self._api.get(
            "/overview/dexs",
            endpoint="/overview/dexs",
            parse=lambda data: parse_dimension_overview(data, "/overview/dexs"),
            params=EXCLUDE_CHARTS,
        )

    async def fees(self, data_type: FeesDataType = FeesDataType.DAILY_FEES) -> DimensionOverview:
        return await self._api.get(
            "/overview/fees",
            endpoint="/overview/fees",
            parse=lambda data: parse_dimension_overview(data, "/overview/fees"),
            params={**EXCLUDE_CHARTS, "dataType": data_type.value},
        )
