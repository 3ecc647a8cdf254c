"""``defillama/macro``: total and per-chain TVL, stablecoin supply per peg, DEX volume and fees,
as compact daily series (series, subject, UTC day) -> value, upserted through the day."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from market_assets.ingest.subjects import one_subject, refuse_if_all_failed, subject_details
from market_assets.memory import defillama as memory
from market_assets.memory.defillama import SeriesPoint
from market_assets.registry import DEFILLAMA_MACRO
from market_assets.settings import Settings
from market_assets.sources.defillama import DefiLlamaClient, DimensionFigure, TvlPoint
from market_assets.sources.http import RequestStats

DAY_MS = 86_400_000
TOTAL = "total"
CHAINS_TVL, TOTAL_TVL, STABLECOINS, DEX_VOLUME, FEES = SUBJECTS = (
    "tvl/chains", "tvl/total", "stablecoin_supply", "dex_volume", "fees"
)
"""The run's subjects, one request each: per-chain TVL today, total TVL history, stablecoin
supply per peg, DEX volume and fees. One failing keeps the others."""


def utc_day(ms: int) -> int:
    return ms - ms % DAY_MS


@dataclass(frozen=True)
class MacroBatch:
    points: list[SeriesPoint]
    unreported: dict[str, str] = field(default_factory=dict)
    """Series withheld because DefiLlama reported 0 or null for them (never stored as a real 0)."""
    subject_errors: dict[str, str] = field(default_factory=dict)
    """Series whose request failed (keyed as in :data:`SUBJECTS`); the others are kept."""

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for point in self.points:
            counts[point.series] = counts.get(point.series, 0) + 1
        return counts

    def details(self) -> dict[str, Any]:
        unreported = {f"unreported/{series}": why for series, why in self.unreported.items()}
        return {**unreported, **subject_details(self.subject_errors)}


def tvl_history_points(history: list[TvlPoint], since_ms: int | None = None) -> list[SeriesPoint]:
    return [
        SeriesPoint("tvl", TOTAL, point.date_ms, point.tvl)
        for point in history
        if since_ms is None or point.date_ms >= since_ms
    ]


def _figure(series: str, figure: DimensionFigure, day: int, batch: MacroBatch) -> None:
    if figure.value is None:
        assert figure.unreported is not None
        batch.unreported[series] = figure.unreported.value
    else:
        batch.points.append(SeriesPoint(series, TOTAL, day, figure.value))


async def collect(conn: sqlite3.Connection | None, settings: Settings, stats: RequestStats, now_ms: int) -> MacroBatch:
    today = utc_day(now_ms)
    latest_total = memory.latest_ts(conn, "tvl", TOTAL) if conn is not None else None
    endpoints = settings.endpoints
    errors: dict[str, str] = {}
    async with DefiLlamaClient(endpoints.llama_api, endpoints.stablecoins_api, stats=stats) as client:
        chains = await one_subject(CHAINS_TVL, client.chains(), errors)
        history = await one_subject(TOTAL_TVL, client.historical_chain_tvl(), errors)
        stablecoins = await one_subject(STABLECOINS, client.stablecoins(), errors)
        dex_volume = await one_subject(DEX_VOLUME, client.dex_volume(), errors)
        fees = await one_subject(FEES, client.fees(), errors)
    refuse_if_all_failed(DEFILLAMA_MACRO.source, "series", len(SUBJECTS), errors)
    # The newest stored day is re-read: its value keeps moving until the day is over.
    batch = MacroBatch(tvl_history_points(history or [], latest_total), subject_errors=errors)
    batch.points.extend(SeriesPoint("tvl", chain.name, today, chain.tvl) for chain in chains or [])
    if stablecoins is not None:
        batch.points.extend(
            SeriesPoint("stablecoin_supply", peg, today, amount)
            for peg, amount in sorted(stablecoins.supply_by_peg().items())
            if amount > Decimal(0)
        )
    if dex_volume is not None:
        _figure("dex_volume", dex_volume.total_24h, today, batch)
    if fees is not None:
        _figure("fees", fees.total_24h, today, batch)
    return finite(batch)


def store(conn: sqlite3.Connection, batch: MacroBatch, now_ms: int) -> dict[str, int]:
    memory.upsert_series(conn, batch.points, now_ms)
    return batch.counts()


def finite(batch: MacroBatch) -> MacroBatch:
    """Drop points whose value is NaN or infinite (msgspec accepts "NaN" as a Decimal); one odd
    value must not fail the whole run, and it is counted, not silently lost."""
    kept = [point for point in batch.points if point.value.is_finite()]
    dropped = len(batch.points) - len(kept)
    unreported = {**batch.unreported, **({"non_finite_points": str(dropped)} if dropped else {})}
    return MacroBatch(kept, unreported, batch.subject_errors)
