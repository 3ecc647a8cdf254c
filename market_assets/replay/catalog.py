"""What the replay servers serve: the recorded fixtures, plus the labelled synthetic series."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from market_assets import fixtures
from market_assets.replay.series import SyntheticSeries, coin_seeds


@dataclass(frozen=True)
class Catalog:
    meta_and_ctxs: bytes
    """Served byte-for-byte for ``metaAndAssetCtxs`` on the main dex."""
    meta: bytes
    """``meta``: the universe half of the same recording."""
    recorded_candles: dict[tuple[str, str], list[dict[str, Any]]]
    recorded_funding: dict[str, list[dict[str, Any]]]
    series: SyntheticSeries
    gamma_markets: list[dict[str, Any]]
    gamma_events: list[dict[str, Any]]
    gamma_search: dict[str, Any]
    llama_chains: bytes
    llama_historical_tvl: bytes
    stablecoins: bytes

    @classmethod
    def load(cls, universe: str = fixtures.HL_META_AND_CTXS, seed: int = 0) -> Catalog:
        meta_and_ctxs = fixtures.fixture_bytes(universe)
        document = json.loads(meta_and_ctxs)
        candles: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for candle in json.loads(fixtures.fixture_bytes(fixtures.HL_CANDLES_KPEPE_1H)):
            candles.setdefault((candle["s"], candle["i"]), []).append(candle)
        funding: dict[str, list[dict[str, Any]]] = {}
        for row in json.loads(fixtures.fixture_bytes(fixtures.HL_FUNDING_BTC)):
            funding.setdefault(row["coin"], []).append(row)
        return cls(
            meta_and_ctxs=meta_and_ctxs,
            meta=json.dumps(document[0], separators=(",", ":")).encode(),
            recorded_candles=candles,
            recorded_funding=funding,
            series=SyntheticSeries(coin_seeds(document), seed=seed),
            gamma_markets=json.loads(fixtures.fixture_bytes(fixtures.GAMMA_MARKETS)),
            gamma_events=json.loads(fixtures.fixture_bytes(fixtures.GAMMA_EVENTS)),
            gamma_search=json.loads(fixtures.fixture_bytes(fixtures.GAMMA_SEARCH)),
            llama_chains=fixtures.fixture_bytes(fixtures.LLAMA_CHAINS),
            llama_historical_tvl=fixtures.fixture_bytes(fixtures.LLAMA_HISTORICAL_TVL),
            stablecoins=fixtures.fixture_bytes(fixtures.LLAMA_STABLECOINS),
        )

    @property
    def all_gamma_markets(self) -> list[dict[str, Any]]:
        """Every recorded Gamma market: the /markets recording, then the markets nested in the
        recorded events and search results (first recording of an id wins)."""
        nested = [m for e in (*self.gamma_events, *self.gamma_search.get("events", [])) for m in e.get("markets", [])]
        found: dict[str, dict[str, Any]] = {}
        for market in (*self.gamma_markets, *nested):
            found.setdefault(str(market["id"]), market)
        return list(found.values())

    def candles(self, coin: str, interval: str, start_ms: int, end_ms: int, now_ms: int) -> list[dict[str, Any]]:
        """Recorded candles where a recording covers the range, the synthetic series elsewhere."""
        recorded = self.recorded_candles.get((coin, interval), [])
        if recorded and start_ms <= recorded[-1]["T"] and end_ms >= recorded[0]["t"]:
            return [c for c in recorded if c["T"] >= start_ms and c["t"] <= end_ms]
        return self.series.candles(coin, interval, start_ms, end_ms, now_ms)

    def funding(self, coin: str, start_ms: int, end_ms: int, limit: int) -> list[dict[str, Any]]:
        recorded = self.recorded_funding.get(coin, [])
        if recorded and start_ms <= recorded[-1]["time"] and end_ms >= recorded[0]["time"]:
            return [r for r in recorded if start_ms <= r["time"] <= end_ms][:limit]
        return self.series.funding(coin, start_ms, end_ms, limit)

    def chain_history(self, chain: str) -> list[dict[str, Any]] | None:
        """SYNTHETIC: one chain's TVL history as the recorded all-chain history scaled to the
        chain's share in ``/v2/chains``; no per-chain recording exists."""
        chains: list[dict[str, Any]] = json.loads(self.llama_chains)
        total = sum(c["tvl"] for c in chains)
        share = next((c["tvl"] / total for c in chains if c["name"].lower() == chain.lower()), None)
        if share is None or total <= 0:
            return None
        points: list[dict[str, Any]] = json.loads(self.llama_historical_tvl)
        return [{"date": p["date"], "tvl": p["tvl"] * share} for p in points]


def synthetic_dimension_overview(kind: str, data_type: str | None, with_chart: bool) -> dict[str, Any]:
    """SYNTHETIC ``/overview/dexs`` / ``/overview/fees`` body in the OpenAPI shape: no recording
    exists (``fixtures/PROVENANCE.md``). It carries the two documented traps on purpose: a
    protocol whose ``total24h`` is null (adapter backfilling) and one at 0 while the previous
    day was not (stale adapter)."""
    scale = {"dexs": 1.0, "fees": 0.08}.get(kind, 1.0) * (0.5 if data_type == "dailyRevenue" else 1.0)
    protocols: list[dict[str, Any]] = [
        {"name": "Hyperliquid Spot", "displayName": "Hyperliquid Spot", "total24h": 412_345_678.9 * scale,
         "total48hto24h": 398_765_432.1 * scale, "total7d": 2_901_234_567.8 * scale, "change_1d": 3.4,
         "chains": ["Hyperliquid L1"]},
        {"name": "Uniswap V3", "displayName": "Uniswap V3", "total24h": 1_234_567_890.12 * scale,
         "total48hto24h": 1_200_000_000.0 * scale, "total7d": 8_765_432_109.9 * scale, "change_1d": 2.88,
         "chains": ["Ethereum", "Arbitrum", "Base"]},
        {"name": "Backfilling DEX", "displayName": "Backfilling DEX", "total24h": None,
         "total48hto24h": None, "total7d": None, "change_1d": None, "chains": ["Ethereum"]},
        {"name": "Stale DEX", "displayName": "Stale DEX", "total24h": 0,
         "total48hto24h": 5_432_100.5 * scale, "total7d": 30_000_000.25 * scale, "change_1d": -100,
         "chains": ["BSC"]},
    ]
    reported = [p["total24h"] for p in protocols if p["total24h"]]
    body: dict[str, Any] = {
        "protocols": protocols,
        "allChains": ["Ethereum", "Arbitrum", "Base", "BSC", "Hyperliquid L1"],
        "total24h": sum(reported),
        "total48hto24h": sum(p["total48hto24h"] or 0 for p in protocols),
        "total7d": sum(p["total7d"] or 0 for p in protocols),
        "change_1d": 1.7,
    }
    if with_chart:
        body["totalDataChart"] = [[1_700_000_000 + day * 86_400, 1.0e9 * scale] for day in range(730)]
        body["totalDataChartBreakdown"] = [[1_700_000_000 + day * 86_400, {"Uniswap V3": 1.0e9 * scale}] for day in range(730)]
    return body
