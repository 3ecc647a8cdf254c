"""The Hyperliquid WebSocket protocol pieces, spoken to the replay's /ws over a real connection.

Replay time runs 500x faster here: a candle bucket lasts 120 ms of test time, and the margin
between a client's ping and the 60 s idle cut is 80 ms, so a loaded machine does not fail them.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from market_assets.replay import ReplayServers
from market_assets.sources.timing import AcceleratedClock, AsyncClock
from market_assets.sources.hyperliquid import Candle, CandleDefect, HyperliquidClient, RejectedCandle
from market_assets.sources.hyperliquid_ws import (
    PING,
    Ack,
    CandleFrame,
    ErrorFrame,
    Frame,
    FrameCounts,
    NotJson,
    Pong,
    candle_subscription,
    parse_frame,
    subscribe_message,
    unsubscribe_message,
)

from .conftest import T0_MS

pytestmark = pytest.mark.anyio

SPEED = 500.0
PING_EVERY_S = 20
"""Tighter than a real client's 50 s: at 500x, 10 s of slack would be only 20 ms of CPU jitter."""


@pytest.fixture
def replay_clock() -> AcceleratedClock:
    return AcceleratedClock(SPEED, T0_MS)


async def _frames(
    ws: ClientConnection, clock_s: float, counts: FrameCounts | None = None, *, clock: AsyncClock | None = None
) -> list[Frame]:
    """Every frame received within ``clock_s`` seconds of replay time; with ``clock``, pinging as
    a real client must, or the server cuts the connection after 60 clock-seconds of silence."""

    async def keep_alive(clock: AsyncClock) -> None:
        while True:
            await ws.send(PING)
            await clock.sleep(PING_EVERY_S)

    pinger = asyncio.create_task(keep_alive(clock)) if clock is not None else None
    frames: list[Frame] = []
    try:
        async with asyncio.timeout(clock_s / SPEED):
            async for message in ws:
                frame = parse_frame(message)
                frames.append(frame)
                if counts is not None:
                    counts.count(frame)
    except TimeoutError:
        pass
    finally:
        if pinger is not None:
            pinger.cancel()
    return frames


def _candles(frames: list[Frame], coin: str | None = None) -> list[Candle]:
    return [f.candle for f in frames if isinstance(f, CandleFrame) and (coin is None or f.candle.coin == coin)]


async def test_subscription_is_acked_with_reordered_keys_and_matched_on_fields(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        sent = candle_subscription("BTC")
        await ws.send(subscribe_message(sent))
        text = await ws.recv()
    assert text == '{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{"type":"candle","interval":"1m","coin":"BTC"}}}'
    ack = parse_frame(text)
    assert isinstance(ack, Ack) and ack.acknowledges("subscribe", sent)
    assert json.dumps(sent) not in text  # matching on the text would have failed


async def test_each_candle_frame_holds_one_bucket_resent_as_it_grows(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("ETH")))
        frames = await _frames(ws, 300, clock=replay.clock)
    candles = _candles(frames, "ETH")
    by_bucket: dict[int, list[Candle]] = {}
    for candle in candles:
        by_bucket.setdefault(candle.open_ms, []).append(candle)
    assert len(by_bucket) >= 3
    growing = max(by_bucket.values(), key=len)
    assert len(growing) >= 3
    assert [c.volume for c in growing] == sorted(c.volume for c in growing)
    assert growing[-1].trades >= growing[0].trades and growing[-1].volume > growing[0].volume
    assert [c.open_ms for c in candles] == sorted(c.open_ms for c in candles)


async def test_the_streams_last_frame_of_a_bucket_is_what_candle_snapshot_backfills(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("SOL")))
        frames = await _frames(ws, 350, clock=replay.clock)
    streamed: dict[int, Candle] = {}
    for candle in _candles(frames, "SOL"):
        streamed[candle.open_ms] = candle  # upsert: the latest frame of a bucket wins
    finished = sorted(streamed)[:-1]  # the newest bucket may still be forming
    assert len(finished) >= 2
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        batch = await hl.candle_snapshot("SOL", "1m", finished[0], finished[-1])
    assert {c.open_ms: c for c in batch.closed} == {t: streamed[t] for t in finished}


async def test_an_unknown_subscription_type_comes_back_as_an_error_frame(replay: ReplayServers) -> None:
    bad = {"type": "candles", "coin": "BTC", "interval": "1m"}
    async with connect(replay.ws_url) as ws:
        await ws.send(json.dumps({"method": "subscribe", "subscription": bad}))
        frame = parse_frame(await ws.recv())
    assert isinstance(frame, ErrorFrame)
    assert frame.message.startswith("Error parsing JSON into valid websocket request: ")
    assert frame.subscription == bad


async def test_ping_is_answered_with_pong(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        await ws.send(PING)
        assert isinstance(parse_frame(await ws.recv()), Pong)


async def test_injected_noise_is_counted_and_candles_keep_flowing(replay: ReplayServers) -> None:
    counts = FrameCounts()
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("BTC")))
        await _frames(ws, 20, counts)
        replay.plan.inject("Websocket connection established.")
        replay.plan.inject('{"channel":"candle","data":{"t":1')
        replay.plan.inject('{"channel":"error","data":"Error parsing JSON into valid websocket request: {}"}')
        frames = await _frames(ws, 100, counts, clock=replay.clock)
    assert sum(isinstance(f, NotJson) for f in frames) == 2 and counts.not_json == 2
    assert counts.errors == 1 and counts.acks == 1
    last_noise = max(i for i, f in enumerate(frames) if isinstance(f, (NotJson, ErrorFrame)))
    assert _candles(frames[last_noise:], "BTC")


async def _texts(ws: ClientConnection, clock_s: float) -> list[str]:
    """Every text frame received within ``clock_s`` seconds of replay time, unparsed."""
    texts: list[str] = []
    try:
        async with asyncio.timeout(clock_s / SPEED):
            async for message in ws:
                texts.append(str(message))
    except TimeoutError:
        pass
    return texts


async def test_a_nan_candle_frame_is_refused_naming_its_minute_and_candles_keep_flowing(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("BTC")))
        async with asyncio.timeout(5):
            while (real := json.loads(await ws.recv()))["channel"] != "candle":
                pass
        replay.plan.inject(json.dumps({**real, "data": {**real["data"], "o": "NaN"}}, separators=(",", ":")))
        await ws.send(PING)
        texts = await _texts(ws, 30)
    refused: list[RejectedCandle] = []
    after_refusal: list[Frame] = []
    for text in texts:
        try:
            frame = parse_frame(text)
        except RejectedCandle as exc:
            refused.append(exc)
            after_refusal = []
            continue
        after_refusal.append(frame)
    assert [(r.reason, r.coin, r.open_ms) for r in refused] == [(CandleDefect.NON_FINITE, "BTC", real["data"]["t"])]
    assert len(_candles(after_refusal, "BTC")) >= 2


async def test_unsubscribe_stops_that_coins_frames(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("BTC")))
        await _frames(ws, 30)
        await ws.send(unsubscribe_message(candle_subscription("BTC")))
        frames = await _frames(ws, 100, clock=replay.clock)
    acks = [f for f in frames if isinstance(f, Ack)]
    assert acks and acks[0].acknowledges("unsubscribe", candle_subscription("BTC"))
    after_ack = frames[frames.index(acks[0]) + 1 :]
    assert not _candles(after_ack)


async def test_a_silenced_coin_gets_no_frames_while_rest_still_has_it(replay: ReplayServers) -> None:
    replay.plan.silenced_coins.add("DOGE")
    async with connect(replay.ws_url) as ws:
        for coin in ("DOGE", "BTC"):
            await ws.send(subscribe_message(candle_subscription(coin)))
        frames = await _frames(ws, 150, clock=replay.clock)
    assert _candles(frames, "BTC") and not _candles(frames, "DOGE")
    async with HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock) as hl:
        now = replay.clock.now_ms()
        batch = await hl.candle_snapshot("DOGE", "1m", now - 5 * 60_000, now)
    assert len(batch.candles) == 6


async def test_a_dropped_connection_closes_without_a_close_frame_and_resubscribing_resumes(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("BTC")))
        await _frames(ws, 20)
        replay.plan.drop_connections()
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(1):
                while True:
                    await ws.recv()
    assert closed.value.rcvd is None  # abnormal closure (1006), as clients of the real server see
    async with connect(replay.ws_url) as ws:
        await ws.send(subscribe_message(candle_subscription("BTC")))
        frames = await _frames(ws, 50)
    assert _candles(frames, "BTC") and replay.ws.stats.dropped == 1


async def test_drop_every_n_seconds_cuts_each_connection_on_schedule(replay: ReplayServers) -> None:
    replay.plan.drop_every_s = 30
    async with connect(replay.ws_url) as ws:
        opened = replay.clock.now_ms()
        await ws.send(subscribe_message(candle_subscription("BTC")))
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(1):
                while True:
                    await ws.recv()
                    await ws.send(PING)  # staying chatty does not help
    assert replay.clock.now_ms() - opened >= 30_000 and replay.ws.stats.dropped == 1


async def test_a_connection_silent_for_60_seconds_is_cut_and_pings_keep_one_alive(replay: ReplayServers) -> None:
    async with connect(replay.ws_url) as quiet, connect(replay.ws_url) as pinging:
        for ws in (quiet, pinging):
            await ws.send(subscribe_message(candle_subscription("BTC")))

        async def keep_alive() -> None:
            while True:
                await replay.clock.sleep(PING_EVERY_S)
                await pinging.send(PING)

        pinger = asyncio.create_task(keep_alive())
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(1):
                while True:
                    await quiet.recv()
        cut_at = replay.clock.now_ms()
        frames = await _frames(pinging, 150)
        pinger.cancel()
    assert replay.ws.stats.idle_closed == 1
    assert any(isinstance(f, Pong) for f in frames) and _candles(frames, "BTC")
    assert replay.clock.now_ms() - cut_at >= 100_000  # the pinging one outlived the cut by far
