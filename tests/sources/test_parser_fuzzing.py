"""Mutated payloads: whatever a source sends, a parser returns records or raises PayloadError.

Each parser gets 1,000 derandomised examples built from its own recording (the WebSocket frame
parser from the candle, ack and error frames together): a value somewhere in the document is
deleted, emptied or replaced by arbitrary JSON, or the bytes are cut or corrupted. A candle
that comes out as data has values a real bucket can have, judged here in floats, as stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_assets import fixtures
from market_assets.sources.defillama import (
    parse_chains,
    parse_dimension_overview,
    parse_historical_tvl,
    parse_stablecoins,
)
from market_assets.sources.errors import PayloadError
from market_assets.sources.hyperliquid import (
    Candle,
    CheckedCandles,
    parse_candles,
    parse_funding,
    parse_meta_and_asset_ctxs,
)
from market_assets.sources.hyperliquid_ws import CandleFrame, parse_frame
from market_assets.sources.polymarket import parse_events, parse_markets, parse_search
from market_assets.replay.catalog import synthetic_dimension_overview

from .conftest import raw


def _head(document: Any, n: int = 3) -> Any:
    """A small but complete-shaped sample of a recording, so a thousand examples stay fast."""
    if isinstance(document, list):
        return [_head(item, n) for item in document[:n]]
    if isinstance(document, dict):
        # Maps keyed by data (80 chains of a stablecoin) shrink too; records keep every key.
        keys = list(document)[:n] if len(document) > 20 else list(document)
        return {key: _head(document[key], n) for key in keys}
    return document


def _meta_sample() -> Any:
    meta, ctxs = raw(fixtures.HL_META_AND_CTXS)
    return [_head(meta, 4), ctxs[:4]]


PARSERS: dict[str, tuple[Callable[[bytes], object], Any]] = {
    "metaAndAssetCtxs": (parse_meta_and_asset_ctxs, _meta_sample()),
    "candleSnapshot": (parse_candles, _head(raw(fixtures.HL_CANDLES_KPEPE_1H))),
    "fundingHistory": (parse_funding, _head(raw(fixtures.HL_FUNDING_BTC))),
    "ws frames": (
        parse_frame,
        [{"channel": "candle", "data": raw(fixtures.HL_CANDLES_KPEPE_1H)[0]}, raw(fixtures.HL_WS_ACK), raw(fixtures.HL_WS_ERROR)],
    ),
    "gamma markets": (parse_markets, _head(raw(fixtures.GAMMA_MARKETS), 2)),
    "gamma events": (parse_events, _head(raw(fixtures.GAMMA_EVENTS), 2)),
    "gamma search": (parse_search, _head(raw(fixtures.GAMMA_SEARCH), 2)),
    "llama chains": (parse_chains, _head(raw(fixtures.LLAMA_CHAINS), 4)),
    "llama historicalChainTvl": (parse_historical_tvl, _head(raw(fixtures.LLAMA_HISTORICAL_TVL), 4)),
    "llama stablecoins": (parse_stablecoins, _head(raw(fixtures.LLAMA_STABLECOINS), 2)),
    "llama overview": (
        lambda data: parse_dimension_overview(data, "/overview/dexs"),
        synthetic_dimension_overview("dexs", None, with_chart=False),
    ),
}

json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
"""Flat rather than recursive: the replacement only has to be the wrong shape, and a recursive
strategy costs Hypothesis twice the time per example."""
TRICKY = ["", "[", '["1"', "NaN", "1e999", "1e999999999", "-0", "[1, 2]", "2025-13-45", "null", "{}"]
ACTIONS = ["replace", "tricky", "drop_key", "empty", "truncate", "flip_byte"]

Path = tuple[str | int, ...]


def _paths(node: Any, prefix: Path = ()) -> list[Path]:
    """Every place in ``node`` a mutation can hit, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _replaced(node: Any, path: Path, change: Callable[[Any], Any]) -> Any:
    if not path:
        return change(node)
    head, rest = path[0], path[1:]
    copy = list(node) if isinstance(node, list) else dict(node)
    copy[head] = _replaced(node[head], rest, change)  # type: ignore[index]
    return copy


def _mutated(document: Any, path: Path, action: str, value: Any, position: int, byte: int) -> bytes:
    if action == "replace":
        return json.dumps(_replaced(document, path, lambda _: value)).encode()
    if action == "tricky":
        return json.dumps(_replaced(document, path, lambda _: TRICKY[position % len(TRICKY)])).encode()
    if action == "drop_key":

        def drop(node: Any) -> Any:
            if isinstance(node, dict) and node:
                victim = list(node)[position % len(node)]
                return {k: v for k, v in node.items() if k != victim}
            return None

        return json.dumps(_replaced(document, path, drop)).encode()
    if action == "empty":
        return json.dumps(_replaced(document, path, lambda n: type(n)() if isinstance(n, (list, dict, str)) else None)).encode()
    body = json.dumps(document).encode()
    at = position % len(body)
    if action == "truncate":
        return body[:at]
    return body[:at] + bytes([byte]) + body[at + 1 :]


def _candles_kept(result: object) -> list[Candle]:
    if isinstance(result, CheckedCandles):
        return result.candles
    if isinstance(result, CandleFrame):
        return [result.candle]
    return []


def _storable_bucket(candle: Candle) -> bool:
    o, h, l, c, v = (float(value) for value in (candle.open, candle.high, candle.low, candle.close, candle.volume))
    return all(map(math.isfinite, (o, h, l, c, v))) and 0 < l <= min(o, c) <= max(o, c) <= h and v >= 0 and candle.trades >= 0


@pytest.mark.parametrize("name", list(PARSERS))
def test_mutated_payload_parses_or_raises_the_documented_error(name: str) -> None:
    parse, sample = PARSERS[name]
    documents = sample if name == "ws frames" else [sample]
    for document in documents:
        parse(json.dumps(document).encode())  # the unmutated samples themselves are valid
    places = [(document, path) for document in documents for path in _paths(document)]

    @settings(
        max_examples=1000,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.integers(0, len(places) - 1),
        st.sampled_from(ACTIONS),
        json_values,
        st.integers(0, 1 << 20),
        st.integers(0, 255),
    )
    def check(path_index: int, action: str, value: Any, position: int, byte: int) -> None:
        document, path = places[path_index]
        body = _mutated(document, path, action, value, position, byte)
        try:
            result = parse(body)
        except PayloadError as error:
            assert error.source in ("hyperliquid", "polymarket", "defillama") and error.field.startswith("$")
        else:
            assert all(_storable_bucket(candle) for candle in _candles_kept(result))

    check()
