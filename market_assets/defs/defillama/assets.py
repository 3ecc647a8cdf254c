"""``defillama/macro`` as a scheduled asset."""

from __future__ import annotations

from market_assets.defs.channel_asset import channel_asset
from market_assets.ingest import defillama
from market_assets.registry import DEFILLAMA_MACRO

macro_asset = channel_asset(DEFILLAMA_MACRO, defillama.collect, defillama.store)
