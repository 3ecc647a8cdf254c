"""``hyperliquid/funding``: the perp universe, the current hour's funding from the asset
contexts, and settled hours from ``fundingHistory`` since the last stored one."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from market_assets.ingest.subjects import each_subject, one_subject, refuse_if_all_failed, subject_details
from market_assets.ingest.universe import followed_assets, universe_rows
from market_assets.memory import hyperliquid as memory
from market_assets.memory.hyperliquid import FundingRow, UniverseRow
from market_assets.registry import FUNDING
from market_assets.settings import Settings
from market_assets.sources.http import RequestStats
from market_assets.sources.hyperliquid import HyperliquidClient, PerpUniverse
from market_assets.sources.ratelimit import HOUR_MS, shared_budget
from market_assets.sources.timing import SystemClock

FIRST_HISTORY_HOURS = 7 * 24
"""How far back a coin with no stored settled hour starts its fundingHistory."""


@dataclass(frozen=True)
class FundingBatch:
    universe: list[UniverseRow]
    funding: list[FundingRow]
    coins_with_history: int
    subject_errors: dict[str, str] = field(default_factory=dict)
    """Coins whose fundingHistory failed: their settled hours are asked for again next run."""

    def counts(self) -> dict[str, int]:
        return {"universe": len(self.universe), "funding": len(self.funding)}

    def details(self) -> dict[str, Any]:
        return {"coins_with_history": self.coins_with_history, **subject_details(self.subject_errors)}


def history_start(last_settled_hour: int | None, current_hour: int) -> int | None:
    """Where a coin's fundingHistory resumes, or ``None`` when no settled hour can be missing.

    The hour before the current one settles at the top of this hour; until a later hour is
    missing there is nothing to ask for, which keeps a 15-minute cadence to one history call
    per coin per hour.
    """
    if last_settled_hour is None:
        return current_hour - FIRST_HISTORY_HOURS * HOUR_MS
    if last_settled_hour >= current_hour - HOUR_MS:
        return None
    return last_settled_hour + HOUR_MS


async def collect(conn: sqlite3.Connection | None, settings: Settings, stats: RequestStats, now_ms: int) -> FundingBatch:
    last_settled = memory.last_settled_funding_hours(conn) if conn is not None else {}
    current_hour = now_ms - now_ms % HOUR_MS
    clock = SystemClock()
    budget = shared_budget(settings.db_path, clock, settings.home)
    async with HyperliquidClient(settings.endpoints.hyperliquid_api, clock=clock, limiter=budget, stats=stats) as client:
        # The main perp dex is the run itself; a HIP-3 dex that fails is one subject, and its
        # coins are neither followed this run nor marked delisted (they are absent from the rows).
        universes: list[PerpUniverse] = [await client.meta_and_asset_ctxs()]
        dex_errors: dict[str, str] = {}
        for dex in settings.hip3_dexes:
            universe = await one_subject(f"dex {dex}", client.meta_and_asset_ctxs(dex), dex_errors)
            if universe is not None:
                universes.append(universe)
        followed = followed_assets(universes, settings.max_coins)
        current = [
            FundingRow(a.name, current_hour, a.ctx.funding, a.ctx.premium, False, now_ms) for a in followed
        ]
        starts = {a.name: history_start(last_settled.get(a.name), current_hour) for a in followed}
        wanted = {coin: start for coin, start in starts.items() if start is not None}
        errors: dict[str, str] = {}
        histories = await each_subject(wanted, lambda coin: client.funding_history(coin, wanted[coin]), errors)
    # A coin is a subject: one whose history failed still has its current hour from the asset
    # contexts; the run fails only when every followed coin's history failed.
    refuse_if_all_failed(FUNDING.source, "coin's fundingHistory", len(followed), errors)
    errors |= dex_errors
    settled = [
        FundingRow(row.coin, row.hour_ms, row.funding_rate, row.premium, True, row.time)
        for rows in histories.values()
        for row in rows
        if row.hour_ms < current_hour
    ]
    return FundingBatch(universe_rows(universes, followed), current + settled, len(wanted), errors)


def store(conn: sqlite3.Connection, batch: FundingBatch, now_ms: int) -> dict[str, int]:
    return {
        "universe": memory.upsert_universe(conn, batch.universe, now_ms),
        "funding": memory.upsert_funding(conn, batch.funding, now_ms),
    }
