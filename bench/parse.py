"""Source parsers' throughput, as a ratio to bare ``json.loads`` of the same bytes.

    .venv/bin/python bench/parse.py [--seconds 0.5]

For each parser and each recorded fixture it parses, times (best of several batches, same
process, same bytes) the parser producing typed records, and ``json.loads`` producing plain
Python objects. Goal: parser time <= 3x ``json.loads`` time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from market_assets import fixtures  # noqa: E402
from market_assets.sources.defillama import (  # noqa: E402
    StablecoinReport,
    parse_chains,
    parse_historical_tvl,
    parse_stablecoins,
)
from market_assets.sources.hyperliquid import (  # noqa: E402
    CheckedCandles,
    PerpUniverse,
    parse_candles,
    parse_funding,
    parse_meta_and_asset_ctxs,
)
from market_assets.sources.hyperliquid_ws import parse_frame  # noqa: E402
from market_assets.sources.polymarket import SearchPage, parse_events, parse_markets, parse_search  # noqa: E402

from figures import report  # noqa: E402

GOAL = 3.0

CASES: list[tuple[str, str, Callable[[bytes], object]]] = [
    ("metaAndAssetCtxs 2025", fixtures.HL_META_AND_CTXS, parse_meta_and_asset_ctxs),
    ("metaAndAssetCtxs 2024", fixtures.HL_META_AND_CTXS_2024, parse_meta_and_asset_ctxs),
    ("candleSnapshot", fixtures.HL_CANDLES_KPEPE_1H, parse_candles),
    ("fundingHistory", fixtures.HL_FUNDING_BTC, parse_funding),
    ("ws subscriptionResponse", fixtures.HL_WS_ACK, parse_frame),
    ("ws allDexsAssetCtxs", fixtures.HL_WS_ALL_DEXS_CTXS, parse_frame),
    ("gamma /markets", fixtures.GAMMA_MARKETS, parse_markets),
    ("gamma /events", fixtures.GAMMA_EVENTS, parse_events),
    ("gamma /public-search", fixtures.GAMMA_SEARCH, parse_search),
    ("llama /v2/chains", fixtures.LLAMA_CHAINS, parse_chains),
    ("llama /v2/historicalChainTvl", fixtures.LLAMA_HISTORICAL_TVL, parse_historical_tvl),
    ("llama /stablecoins", fixtures.LLAMA_STABLECOINS, parse_stablecoins),
]


def records(result: object) -> int:
    """Top-level records a parse produced (a frame, an event page and a report count as shown)."""
    if isinstance(result, list):
        return len(result)
    if isinstance(result, CheckedCandles):
        return len(result.candles) + len(result.rejected)
    if isinstance(result, PerpUniverse):
        return len(result.listed) + len(result.delisted)
    if isinstance(result, SearchPage):
        return len(result.events)
    if isinstance(result, StablecoinReport):
        return len(result.assets)
    return 1


def best_per_call(function: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Fastest mean time per call over batches filling ``seconds`` in total."""
    calls = 1
    while True:  # size a batch to ~1/10 of the budget
        started = time.perf_counter()
        for _ in range(calls):
            function(data)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds / 10:
            break
        calls *= 2
    best = elapsed / calls
    for _ in range(9):
        started = time.perf_counter()
        for _ in range(calls):
            function(data)
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0.5, help="time budget per measurement")
    args = parser.parse_args()
    print(f"{'parser':<30} {'bytes':>8} {'records':>8} {'records/s':>12} {'json.loads':>11} {'parser':>10} {'ratio':>6}")
    worst = 0.0
    for name, fixture, parse in CASES:
        data = fixtures.fixture_bytes(fixture)
        produced = records(parse(data))
        baseline = best_per_call(json.loads, data, args.seconds)
        measured = best_per_call(parse, data, args.seconds)
        ratio = measured / baseline
        worst = max(worst, ratio)
        print(
            f"{name:<30} {len(data):>8} {produced:>8} {produced / measured:>12,.0f} "
            f"{baseline * 1e6:>9.0f}us {measured * 1e6:>8.0f}us {ratio:>5.2f}x"
        )
    report("parse", "slowest parser / json.loads of the same fixture", worst, "x", goal=f"<= {GOAL:g}x",
           baseline="json.loads of each fixture", limit=GOAL)
    verdict = "meets" if worst <= GOAL else "MISSES"
    print(f"worst ratio {worst:.2f}x: {verdict} the goal of <= {GOAL:g}x json.loads")
    return 0 if worst <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
