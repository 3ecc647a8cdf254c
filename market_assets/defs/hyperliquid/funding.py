"""``hyperliquid/funding`` as a scheduled asset."""

from __future__ import annotations

from market_assets.defs.channel_asset import channel_asset
from market_assets.ingest import funding
from market_assets.registry import FUNDING

funding_asset = channel_asset(FUNDING, funding.collect, funding.store)
