"""Which perps the platform follows: every listed perp, or the most traded few in the local profile."""

from __future__ import annotations

from collections.abc import Sequence

from market_assets.memory.hyperliquid import UniverseRow
from market_assets.settings import Settings
from market_assets.sources.hyperliquid import HyperliquidClient, PerpAsset, PerpUniverse


def followed_assets(universes: Sequence[PerpUniverse], max_coins: int | None) -> list[PerpAsset]:
    """Listed perps of every followed dex; capped to the highest 24 h notional volume."""
    listed = [asset for universe in universes for asset in universe.listed]
    if max_coins is None:
        return listed
    return sorted(listed, key=lambda asset: asset.ctx.day_ntl_vlm, reverse=True)[:max_coins]


async def read_followed_coins(client: HyperliquidClient, settings: Settings) -> list[str]:
    """The coins the platform follows, read from ``metaAndAssetCtxs`` of every followed dex.

    For a writer that finds no universe stored yet (funding stores it; a history backfill run
    first on a new memory must not mistake an empty table for an empty market).
    """
    universes = [await client.meta_and_asset_ctxs(dex) for dex in ("", *settings.hip3_dexes)]
    return [asset.name for asset in followed_assets(universes, settings.max_coins)]


def universe_rows(universes: Sequence[PerpUniverse], followed: Sequence[PerpAsset]) -> list[UniverseRow]:
    """Rows for the universe table: the followed perps, and every delisted one (flagged).

    Listed perps outside a capped profile are left out, so expected-subject coverage compares
    what is followed with what is stored.
    """
    followed_names = {asset.name for asset in followed}
    return [
        UniverseRow(asset.name, universe.dex, asset.index, asset.sz_decimals, asset.max_leverage, delisted)
        for universe in universes
        for assets, delisted in ((universe.listed, False), (universe.delisted, True))
        for asset in assets
        if delisted or asset.name in followed_names
    ]
