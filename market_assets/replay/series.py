"""SYNTHETIC market series for the replay servers — not recordings.

No real 1-minute WebSocket candle recording exists (``fixtures/PROVENANCE.md``, "Not found"),
so candles are generated: a seeded random walk per coin starting from the coin's recorded
``markPx``, deterministic for any (seed, coin, time), so the WebSocket stream and the HTTP
``candleSnapshot`` agree on every bucket and a backfill can be checked against the stream.

The walk is sampled every 1/8 of a bucket. A bucket's state at time ``now`` uses the samples
up to ``now``: open at the first, close at the latest, high/low over those seen, volume and
trade count growing by an eighth per sample. At 7/8 of the bucket it is final: the last frame
the stream sends for a bucket equals what ``candleSnapshot`` returns for it once closed.
Funding rows outside the recorded BTC range are generated the same way: hourly, with the
millisecond jitter real rows carry.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from market_assets.sources.ratelimit import HOUR_MS, MAX_CANDLES_PER_SNAPSHOT, interval_ms

SAMPLES_PER_BUCKET = 8
WALK_STEP_MS = 7_500
"""One step of the walk; every interval divides into eight whole steps (1m / 8 = 7.5 s)."""
STEPS_PER_HOUR = HOUR_MS // WALK_STEP_MS
STEP_VOLATILITY = 0.00013
"""Log-price standard deviation per 7.5 s step: ~1.4 % a day, quiet but visibly moving."""


@dataclass(frozen=True)
class CoinSeed:
    mark_px: float
    sz_decimals: int
    base_volume_per_minute: float


def coin_seeds(meta_and_ctxs: Any) -> dict[str, CoinSeed]:
    """Starting points from a recorded ``[meta, ctxs]`` body (as plain JSON), listed coins only."""
    meta, ctxs = meta_and_ctxs
    seeds: dict[str, CoinSeed] = {}
    for entry, ctx in zip(meta["universe"], ctxs):
        if entry.get("isDelisted"):
            continue
        seeds[entry["name"]] = CoinSeed(
            mark_px=float(ctx["markPx"]),
            sz_decimals=int(entry.get("szDecimals", 2)),
            base_volume_per_minute=max(float(ctx.get("dayBaseVlm") or 0) / 1440, 10.0 ** -entry.get("szDecimals", 2)),
        )
    return seeds


class SyntheticSeries:
    """Candles and funding for every coin of ``seeds``, reproducible from ``seed``."""

    def __init__(self, seeds: Mapping[str, CoinSeed], seed: int = 0) -> None:
        self.seeds = dict(seeds)
        self.seed = seed
        self.no_trade_every: dict[str, int] = {}
        """Per coin, every this-many-th 1-minute bucket has no trades: no candle, from the
        stream or from ``candleSnapshot`` (an illiquid coin's quiet minutes)."""
        self._hour_path = lru_cache(maxsize=4096)(self._compute_hour_path)

    def traded(self, coin: str, interval: str, open_ms: int) -> bool:
        every = self.no_trade_every.get(coin)
        return every is None or interval != "1m" or (open_ms // 60_000) % every != 0

    @staticmethod
    def is_final(interval: str, open_ms: int, at_ms: int) -> bool:
        """Whether the bucket's state at ``at_ms`` is its final one (its last sample is taken)."""
        step = interval_ms(interval) // SAMPLES_PER_BUCKET
        return (at_ms - open_ms) // step + 1 >= SAMPLES_PER_BUCKET

    def __contains__(self, coin: str) -> bool:
        return coin in self.seeds

    def candle(self, coin: str, interval: str, open_ms: int, now_ms: int) -> dict[str, Any] | None:
        """The bucket opening at ``open_ms`` as it stands at ``now_ms`` (HL wire shape), or None
        before it opens."""
        if open_ms > now_ms or coin not in self.seeds or not self.traded(coin, interval, open_ms):
            return None
        length = interval_ms(interval)
        step = length // SAMPLES_PER_BUCKET
        seen = min(SAMPLES_PER_BUCKET, (now_ms - open_ms) // step + 1)
        prices = [self._price(coin, open_ms + i * step) for i in range(seen)]
        coin_seed = self.seeds[coin]
        rng = random.Random(f"{self.seed}:vol:{coin}:{interval}:{open_ms}")
        full_volume = coin_seed.base_volume_per_minute * (length / 60_000) * rng.uniform(0.2, 1.8)
        full_trades = max(1, int(full_volume / coin_seed.base_volume_per_minute * rng.uniform(5, 40)))
        fraction = seen / SAMPLES_PER_BUCKET
        return {
            "t": open_ms,
            "T": open_ms + length - 1,
            "s": coin,
            "i": interval,
            "o": _price_text(prices[0]),
            "c": _price_text(prices[-1]),
            "h": _price_text(max(prices)),
            "l": _price_text(min(prices)),
            "v": _size_text(full_volume * fraction, coin_seed.sz_decimals),
            "n": max(1, round(full_trades * fraction)),
        }

    def candles(self, coin: str, interval: str, start_ms: int, end_ms: int, now_ms: int) -> list[dict[str, Any]]:
        """``candleSnapshot``: buckets touching ``[start_ms, end_ms]`` up to ``now_ms``, within the
        most recent 5,000."""
        if coin not in self.seeds:
            return []
        length = interval_ms(interval)
        newest = now_ms - now_ms % length
        first = max(start_ms - start_ms % length, newest - (MAX_CANDLES_PER_SNAPSHOT - 1) * length)
        last = min(end_ms - end_ms % length, newest)
        out: list[dict[str, Any]] = []
        for open_ms in range(first, last + 1, length):
            candle = self.candle(coin, interval, open_ms, now_ms)
            if candle is not None:
                out.append(candle)
        return out

    def funding(self, coin: str, start_ms: int, end_ms: int, limit: int) -> list[dict[str, Any]]:
        """Hourly funding rows with ``time`` in ``[start_ms, end_ms]``, oldest first, at most ``limit``."""
        if coin not in self.seeds:
            return []
        rows: list[dict[str, Any]] = []
        hour = start_ms - start_ms % HOUR_MS - HOUR_MS
        while hour <= end_ms and len(rows) < limit:
            rng = random.Random(f"{self.seed}:funding:{coin}:{hour}")
            time = hour + rng.randrange(0, 1000)
            if start_ms <= time <= end_ms:
                premium = rng.gauss(-0.0001, 0.0003)
                rate = max(-0.04, min(0.04, premium + 0.0000125))
                rows.append({"coin": coin, "fundingRate": f"{rate:.10f}", "premium": f"{premium:.10f}", "time": time})
            hour += HOUR_MS
        return rows

    def _price(self, coin: str, at_ms: int) -> float:
        hour, offset = divmod(at_ms, HOUR_MS)
        return self._hour_path(coin, hour)[offset // WALK_STEP_MS]

    def _anchor(self, coin: str, hour: int) -> float:
        """Log-price at the top of ``hour``: slow waves around the recorded mark, so the walk
        stays near it whatever the date, plus a small seeded offset per hour."""
        phase = random.Random(f"{self.seed}:phase:{coin}").uniform(0, 2 * math.pi)
        wobble = random.Random(f"{self.seed}:anchor:{coin}:{hour}").gauss(0, 0.002)
        return (
            math.log(self.seeds[coin].mark_px)
            + 0.04 * math.sin(2 * math.pi * hour / 173 + phase)
            + 0.015 * math.sin(2 * math.pi * hour / 29 + 2 * phase)
            + wobble
        )

    def _compute_hour_path(self, coin: str, hour: int) -> list[float]:
        """Prices at every walk step of ``hour``: a random walk bridged between the two anchors,
        so any hour can be computed without walking from the beginning of time."""
        start, end = self._anchor(coin, hour), self._anchor(coin, hour + 1)
        rng = random.Random(f"{self.seed}:walk:{coin}:{hour}")
        walk = [0.0]
        for _ in range(STEPS_PER_HOUR):
            walk.append(walk[-1] + rng.gauss(0, STEP_VOLATILITY))
        drift = walk[-1]
        return [
            math.exp(start + value - drift * i / STEPS_PER_HOUR + (end - start) * i / STEPS_PER_HOUR)
            for i, value in enumerate(walk[:-1])
        ]


def _price_text(price: float) -> str:
    """Five significant figures, plain notation, as Hyperliquid quotes prices."""
    return format(Decimal(f"{price:.5g}"), "f")


def _size_text(size: float, sz_decimals: int) -> str:
    return f"{size:.{max(0, sz_decimals)}f}"
