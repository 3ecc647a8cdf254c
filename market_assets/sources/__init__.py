"""Source clients: Hyperliquid, Polymarket Gamma and DefiLlama, parsed at the boundary.

Dagster-free and memory-free: a client returns typed records plus :class:`RequestStats`
(retries, throttles) for the caller's ledger run; it never writes to the market memory. (The
Hyperliquid weight budget every process shares is a file of its own beside it: ``memory.weight``.)
"""

from market_assets.sources.defillama import DefiLlamaClient
from market_assets.sources.endpoints import REAL_ENDPOINTS, SourceEndpoints
from market_assets.sources.errors import PayloadError, SourceError, SourceUnavailable
from market_assets.sources.http import HostPolicy, RequestStats
from market_assets.sources.hyperliquid import HyperliquidClient
from market_assets.sources.polymarket import GammaClient
from market_assets.sources.ratelimit import SharedWeightLimiter, WeightLimiter, shared_budget
from market_assets.sources.timing import AcceleratedClock, AsyncClock, SystemClock, VirtualClock

__all__ = [
    "REAL_ENDPOINTS",
    "AcceleratedClock",
    "AsyncClock",
    "DefiLlamaClient",
    "GammaClient",
    "HostPolicy",
    "HyperliquidClient",
    "PayloadError",
    "RequestStats",
    "SourceEndpoints",
    "SourceError",
    "SharedWeightLimiter",
    "SourceUnavailable",
    "SystemClock",
    "VirtualClock",
    "WeightLimiter",
    "shared_budget",
]
