"""The perp universe to stream: listed coins of the main dex (plus opted-in HIP-3 dexes), most
traded first, capped for the local profile.

``metaAndAssetCtxs`` keeps delisted perps in ``universe`` (flagged ``isDelisted``): they are
recorded as delisted in the memory's universe table (the dashboard's expected subjects) and not
subscribed. The ranking by 24 h notional volume decides which coins a capped profile keeps and
which gaps the backfill fills first.

A sharded streamer (``--shard I/N``) follows only its share of that universe: each coin goes to the
shard that scores highest for it (rendezvous hashing, on a keyed BLAKE2b of the shard number and the
coin's name, never Python's per-process salted ``hash``). A coin's shard depends on its name and N
alone: a listing or a delisting moves no other coin, every process on every host agrees without
talking, and going from N to N+1 shards moves only the coins the new shard wins (about 1/(N+1)).
The share is taken after the local profile's cap, so the N shards together follow what one
streamer would.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from market_assets.memory.hyperliquid import UniverseRow
from market_assets.memory.shards import Shard
from market_assets.sources.errors import SourceError
from market_assets.sources.hyperliquid import HyperliquidClient, PerpUniverse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Universe:
    coins: tuple[str, ...]
    """Coins to stream, most traded first."""
    volumes: dict[str, float]
    """24 h notional volume per listed coin (0 when unknown)."""
    rows: tuple[UniverseRow, ...]
    """Every asset read, delisted included, for the memory's universe table."""

    def volume(self, coin: str) -> float:
        return self.volumes.get(coin, 0.0)

    def share(self, shard: Shard | None) -> Universe:
        """The coins ``shard`` follows (all of them for ``None``), most traded first; the rows
        stay whole: every shard records the universe table as read."""
        if shard is None:
            return self
        return replace(self, coins=tuple(coin for coin in self.coins if follows(shard, coin)))


def _score(index: int, coin: str) -> bytes:
    return hashlib.blake2b(coin.encode(), digest_size=8, key=index.to_bytes(4, "big")).digest()


def shard_of(coin: str, count: int) -> int:
    """The shard (1..``count``) that follows ``coin``: the highest score wins."""
    return max(range(1, count + 1), key=lambda index: _score(index, coin))


def follows(shard: Shard, coin: str) -> bool:
    """Whether ``shard`` streams, repairs and warms up ``coin``."""
    return shard_of(coin, shard.count) == shard.index


def universe_of(dexes: Sequence[PerpUniverse], max_coins: int | None) -> Universe:
    volumes: dict[str, float] = {}
    rows: list[UniverseRow] = []
    for dex in dexes:
        for asset in dex.listed:
            volumes[asset.name] = float(asset.ctx.day_ntl_vlm)
        for asset, delisted in [(a, False) for a in dex.listed] + [(a, True) for a in dex.delisted]:
            rows.append(UniverseRow(asset.name, dex.dex, asset.index, asset.sz_decimals, asset.max_leverage, delisted))
    ranked = sorted(volumes, key=lambda coin: (-volumes[coin], coin))
    return Universe(tuple(ranked[:max_coins] if max_coins is not None else ranked), volumes, tuple(rows))


def stored_universe(coins: Sequence[str], max_coins: int | None) -> Universe:
    """The universe as the memory last recorded it, for a start while REST is unreachable."""
    kept = tuple(coins[:max_coins] if max_coins is not None else coins)
    return Universe(kept, {}, ())


async def read_universe(client: HyperliquidClient, hip3_dexes: Sequence[str], max_coins: int | None) -> Universe:
    """The main dex must answer; an opted-in HIP-3 dex that does not is left out this time."""
    dexes = [await client.meta_and_asset_ctxs("")]
    for dex in hip3_dexes:
        try:
            dexes.append(await client.meta_and_asset_ctxs(dex))
        except SourceError as exc:
            log.warning("HIP-3 dex %s left out of this universe read: %s", dex, exc)
    return universe_of(dexes, max_coins)
