"""``polymarket/discovery`` and ``polymarket/summary`` as scheduled assets."""

from __future__ import annotations

from market_assets.defs.channel_asset import channel_asset
from market_assets.ingest import polymarket
from market_assets.registry import POLYMARKET_DISCOVERY, POLYMARKET_SUMMARY

discovery_asset = channel_asset(POLYMARKET_DISCOVERY, polymarket.collect_discovery, polymarket.store_discovery)
summary_asset = channel_asset(
    POLYMARKET_SUMMARY, polymarket.collect_summary, polymarket.store_summary, deps=[POLYMARKET_DISCOVERY]
)
