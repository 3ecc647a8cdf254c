"""Where each source lives: the real hosts by default, or one replay server in offline mode."""

from __future__ import annotations

from dataclasses import dataclass

from market_assets.sources.defillama import LLAMA_API, STABLECOINS_API
from market_assets.sources.hyperliquid import HYPERLIQUID_API
from market_assets.sources.hyperliquid_ws import HYPERLIQUID_WS
from market_assets.sources.polymarket import GAMMA_API


@dataclass(frozen=True)
class SourceEndpoints:
    hyperliquid_api: str = HYPERLIQUID_API
    hyperliquid_ws: str = HYPERLIQUID_WS
    gamma_api: str = GAMMA_API
    llama_api: str = LLAMA_API
    stablecoins_api: str = STABLECOINS_API

    @classmethod
    def replay(cls, http_base: str, ws_url: str) -> SourceEndpoints:
        """The base URLs of a replay server (``python -m market_assets.replay`` prints both):
        one loopback HTTP server plays every host, each under its own path prefix."""
        http_base = http_base.rstrip("/")
        return cls(
            hyperliquid_api=f"{http_base}/hyperliquid",
            hyperliquid_ws=ws_url,
            gamma_api=f"{http_base}/gamma",
            llama_api=f"{http_base}/llama",
            stablecoins_api=f"{http_base}/stablecoins",
        )


REAL_ENDPOINTS = SourceEndpoints()
