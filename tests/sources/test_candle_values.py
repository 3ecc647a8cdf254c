"""Candle values no real bucket can have are refused where the payload is parsed, with a reason.

Frames are the recorded kPEPE candle (``info_candleSnapshot_kPEPE_1h_2023-05-21.json``, whose
first bucket opens at its low) in the WebSocket server's envelope, with one or two values
changed; the REST answers are the recording and the replay's own, with a bucket or two changed.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from market_assets import fixtures
from market_assets.replay import ReplayServers
from market_assets.replay.faults import HttpFault, HttpFaultKind
from market_assets.sources.errors import PayloadError
from market_assets.sources.hyperliquid import (
    CandleDefect,
    CandleRejection,
    HyperliquidClient,
    RejectedCandle,
    parse_candles,
)
from market_assets.sources.hyperliquid_ws import CandleFrame, parse_frame
from market_assets.sources.ratelimit import info_weight

from .conftest import raw

RECORDED = raw(fixtures.HL_CANDLES_KPEPE_1H)
FIRST = RECORDED[0]
"""o 0.001601 = l 0.001601, h 0.001616, c 0.001604, v 520665683.0, n 709, t 1684699200000."""


@pytest.fixture
def replay_speed() -> float:
    """Real time: the client's rolling weight minute must still hold the request it checks."""
    return 1.0


def _frame(**changes: Any) -> bytes:
    """The recorded candle as the server frames it, with ``changes`` to its payload keys."""
    return json.dumps({"channel": "candle", "data": {**FIRST, **changes}}, separators=(",", ":")).encode()


REFUSED: list[tuple[dict[str, Any], CandleDefect]] = [
    ({"o": "NaN"}, CandleDefect.NON_FINITE),
    ({"c": "sNaN"}, CandleDefect.NON_FINITE),
    ({"h": "Infinity"}, CandleDefect.NON_FINITE),
    ({"l": "-inf"}, CandleDefect.NON_FINITE),
    ({"v": "NaN"}, CandleDefect.NON_FINITE),
    ({"h": "1e400"}, CandleDefect.NON_FINITE),  # a Decimal, but inf once stored as REAL
    ({"v": "1e400"}, CandleDefect.NON_FINITE),
    ({"h": "1e999999999"}, CandleDefect.NON_FINITE),  # past Decimal's own exponent limit
    ({"l": "-1e999999999"}, CandleDefect.NON_FINITE),
    ({"l": "1e-400"}, CandleDefect.NON_FINITE),  # 0 once stored as REAL
    ({"n": 2**63}, CandleDefect.NON_FINITE),  # past SQLite's INTEGER
    ({"l": "-0"}, CandleDefect.NEGATIVE),
    ({"o": "0", "l": "0"}, CandleDefect.NEGATIVE),
    ({"l": "-0.001"}, CandleDefect.NEGATIVE),
    ({"v": "-1"}, CandleDefect.NEGATIVE),
    ({"n": -1}, CandleDefect.NEGATIVE),
    ({"l": "0.0017"}, CandleDefect.LOW_ABOVE_HIGH),
    ({"o": "0.0017"}, CandleDefect.OPEN_OUTSIDE_RANGE),
    ({"o": "0.0016"}, CandleDefect.OPEN_OUTSIDE_RANGE),
    ({"c": "0.001617"}, CandleDefect.CLOSE_OUTSIDE_RANGE),
    ({"c": "0.0016"}, CandleDefect.CLOSE_OUTSIDE_RANGE),
    # More than one defect: the first in the documented order is the reason.
    ({"o": "NaN", "v": "-1", "l": "0.0017"}, CandleDefect.NON_FINITE),
    ({"v": "-1", "l": "0.0017"}, CandleDefect.NEGATIVE),
    ({"o": "0.0017", "c": "0.0015"}, CandleDefect.OPEN_OUTSIDE_RANGE),
]


@pytest.mark.parametrize(("changes", "reason"), REFUSED, ids=[f"{r}:{c}" for c, r in REFUSED])
def test_an_impossible_candle_frame_is_refused_with_its_reason_coin_and_minute(
    changes: dict[str, Any], reason: CandleDefect
) -> None:
    with pytest.raises(RejectedCandle) as caught:
        parse_frame(_frame(**changes))
    refused = caught.value
    assert (refused.reason, refused.coin, refused.open_ms) == (reason, "kPEPE", 1684699200000)
    assert isinstance(refused, PayloadError)
    assert (refused.source, refused.endpoint, refused.field) == ("hyperliquid", "ws candle", "$.data")
    assert str(refused).startswith(f"hyperliquid ws candle: field $.data: {reason} candle kPEPE t=1684699200000: o=")


ACCEPTED: list[dict[str, Any]] = [
    {},
    {"o": "0.0016", "h": "0.0016", "l": "0.0016", "c": "0.0016"},
    {"v": "0", "n": 0},
    {"v": "0.0"},
    {"v": "-0"},  # equal to zero
    {"h": "1.7976931348623157e308"},  # the largest double: stored as itself
    {"o": "2.2250738585072014e-308", "l": "2.2250738585072014e-308"},  # the smallest normal one
    {"n": 2**63 - 1},
]


@pytest.mark.parametrize("changes", ACCEPTED, ids=[json.dumps(c) for c in ACCEPTED])
def test_a_candle_at_the_edge_of_possible_is_kept_as_the_doubles_nearest_its_values(changes: dict[str, Any]) -> None:
    frame = parse_frame(_frame(**changes))
    assert isinstance(frame, CandleFrame)
    sent = {**FIRST, **changes}
    candle = frame.candle
    # What the memory stores: the double nearest each exact decimal (a REAL), and the count.
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.trades) == (
        float(Decimal(sent["o"])),
        float(Decimal(sent["h"])),
        float(Decimal(sent["l"])),
        float(Decimal(sent["c"])),
        float(Decimal(sent["v"])),
        sent["n"],
    )
    assert all(type(value) is float for value in (candle.open, candle.high, candle.low, candle.close, candle.volume))


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (_frame(o="abc"), "$.data.o"),
        (_frame(n="709"), "$.data.n"),
        (json.dumps({"channel": "candle", "data": {k: v for k, v in FIRST.items() if k != "c"}}).encode(), "$.data.c"),
    ],
)
def test_a_candle_frame_that_breaks_the_contract_stays_a_plain_payload_error(frame: bytes, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_frame(frame)
    assert not isinstance(caught.value, RejectedCandle) and caught.value.field == field


def test_a_snapshot_keeps_every_good_candle_exactly_and_names_the_impossible_one() -> None:
    good, none_rejected = parse_candles(json.dumps(RECORDED).encode())
    assert none_rejected == []
    answer = [dict(candle) for candle in RECORDED]
    answer[5]["l"] = "0.002"
    answer[17]["v"] = "Infinity"
    candles, rejected = parse_candles(json.dumps(answer).encode())
    assert candles == good[:5] + good[6:17] + good[18:]
    assert rejected == [
        CandleRejection(CandleDefect.LOW_ABOVE_HIGH, "kPEPE", RECORDED[5]["t"]),
        CandleRejection(CandleDefect.NON_FINITE, "kPEPE", RECORDED[17]["t"]),
    ]


@pytest.mark.anyio
async def test_a_candle_snapshot_batch_rejects_one_bucket_and_keeps_the_rest_as_served(replay: ReplayServers) -> None:
    now = replay.clock.now_ms()
    start, end = now - 70 * 60_000, now - 10 * 60_000  # 61 closed buckets: two extra weight
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        truth = await hl.candle_snapshot("BTC", "1m", start, end)
    assert len(truth.candles) == 61 and truth.rejected == []
    answer = json.loads(msgspec.json.encode(truth.candles))
    answer[30]["o"] = "NaN"
    replay.plan.add_http(
        HttpFault(HttpFaultKind.STATUS, info_type="candleSnapshot", status=200, body=json.dumps(answer).encode())
    )
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        batch = await hl.candle_snapshot("BTC", "1m", start, end)
        charged = hl.limiter.used()
    assert batch.candles == truth.candles[:30] + truth.candles[31:]
    assert batch.closed == batch.candles and batch.forming == []
    assert batch.rejected == [CandleRejection(CandleDefect.NON_FINITE, "BTC", truth.candles[30].open_ms)]
    assert charged == info_weight("candleSnapshot", 61)  # the venue charges for the refused one too
