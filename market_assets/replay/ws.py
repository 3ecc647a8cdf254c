"""The replay WebSocket server: Hyperliquid's ``/ws`` for ``candle`` subscriptions.

It behaves as the real server is recorded to (``shared/research/sources.md`` §1.3): acks echo the
subscription re-serialised in the order ``type, interval, coin``; each ``candle`` frame carries
one candle object, re-sent with growing ``v``/``n`` while its bucket forms; an unknown
subscription type is answered on the ``error`` channel quoting the request; ``{"method":"ping"}``
gets ``{"channel":"pong"}``; a connection that sent nothing for 60 s is cut (clients saw 1006).
Candle values are the SYNTHETIC series of :mod:`market_assets.replay.series`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from market_assets.replay.catalog import Catalog
from market_assets.replay.faults import FaultPlan
from market_assets.sources.hyperliquid_ws import IDLE_CLOSE_S
from market_assets.sources.ratelimit import interval_ms
from market_assets.sources.timing import AsyncClock

KNOWN_TYPES = frozenset(
    {"allMids", "notification", "webData2", "candle", "l2Book", "trades", "orderUpdates", "userEvents",
     "userFills", "userFundings", "userNonFundingLedgerUpdates", "activeAssetCtx", "activeAssetData",
     "userTwapSliceFills", "userTwapHistory", "bbo", "allDexsAssetCtxs"}
)
"""Subscription types the docs list; anything else is refused with an ``error`` frame."""

BURST_CHUNK = 1000
"""Injected frames written to the socket per transport write."""
BURST_HIGH_WATER = 1 << 20
"""Bytes queued in the transport past which a burst waits for the client to read."""


@dataclass
class WsStats:
    connections: int = 0
    opened_ms: list[int] = field(default_factory=list)
    """Clock time of every connection accepted, to count new connections per minute."""
    dropped: int = 0
    idle_closed: int = 0
    subscribes: int = 0
    subscribes_by_coin: dict[str, int] = field(default_factory=dict)
    pings: int = 0
    candle_frames: int = 0
    errors_sent: int = 0
    truncated: int = 0
    refused_handshakes_ms: list[int] = field(default_factory=list)
    """Clock time of every opening handshake answered with ``plan.ws_handshake_status``."""


@dataclass
class _Subscription:
    coin: str
    interval: str
    last_open_ms: int | None = None


@dataclass
class _Connection:
    ws: ServerConnection
    opened_ms: int
    drop_generation: int
    injected_seen: int
    last_received_ms: int
    candles: dict[tuple[str, str], _Subscription] = field(default_factory=dict)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, text: str) -> None:
        async with self.send_lock:
            await self.ws.send(text)

    async def send_burst(self, texts: list[str]) -> None:
        """Text frames queued by the fault plan, as fast as the client reads them.

        One ``ws.send`` per frame costs ~25 µs and held the replay near 40k frames/s, under what
        the streamer can store, so ``bench/stream_throughput.py`` measured the replay. The frames
        are serialised by websockets' own framing (unmasked, as a server sends) and written in
        chunks; the lock keeps every other send out of the middle of a chunk.
        """
        transport = self.ws.transport
        async with self.send_lock:
            for start in range(0, len(texts), BURST_CHUNK):
                if transport.is_closing():
                    raise ConnectionClosed(None, None)
                transport.write(b"".join(
                    Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
                    for text in texts[start : start + BURST_CHUNK]
                ))
                while transport.get_write_buffer_size() > BURST_HIGH_WATER and not transport.is_closing():
                    await asyncio.sleep(0.001)


class ReplayWsServer:
    """Connection handler for ``websockets.asyncio.server.serve``; one instance per replay."""

    def __init__(self, catalog: Catalog, plan: FaultPlan, clock: AsyncClock, *, tick_s: float = 5.0) -> None:
        self.catalog = catalog
        self.plan = plan
        self.clock = clock
        self.tick_s = tick_s
        """Clock seconds between candle updates per subscription."""
        self.stats = WsStats()

    def process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """The opening handshake: refused with ``plan.ws_handshake_status`` while it is set."""
        status = self.plan.ws_handshake_status
        if status is None:
            return None
        self.stats.refused_handshakes_ms.append(self.clock.now_ms())
        return ws.respond(status, f"{HTTPStatus(status).phrase}\n")

    async def handle(self, ws: ServerConnection) -> None:
        now_ms = self.clock.now_ms()
        conn = _Connection(ws, now_ms, self.plan.drop_generation, len(self.plan.injected_frames), now_ms)
        self.stats.connections += 1
        self.stats.opened_ms.append(now_ms)
        streamer = asyncio.create_task(self._stream(conn))
        try:
            async for message in ws:
                conn.last_received_ms = self.clock.now_ms()
                await self._on_message(conn, message if isinstance(message, str) else message.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
        finally:
            streamer.cancel()

    async def _on_message(self, conn: _Connection, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if isinstance(request, dict) and request.get("method") == "ping":
            self.stats.pings += 1
            await conn.send('{"channel":"pong"}')
            return
        subscription = request.get("subscription") if isinstance(request, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        if method not in ("subscribe", "unsubscribe") or not _valid(subscription):
            self.stats.errors_sent += 1
            await conn.send(json.dumps({"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text}"}, separators=(",", ":")))
            return
        assert isinstance(subscription, dict)
        echoed = _reserialised(subscription)
        if subscription["type"] == "candle":
            key = (subscription["coin"], subscription["interval"])
            if method == "subscribe":
                self.stats.subscribes += 1
                self.stats.subscribes_by_coin[key[0]] = self.stats.subscribes_by_coin.get(key[0], 0) + 1
                conn.candles.setdefault(key, _Subscription(*key))
            else:
                conn.candles.pop(key, None)
        await conn.send(json.dumps({"channel": "subscriptionResponse", "data": {"method": method, "subscription": echoed}}, separators=(",", ":")))

    async def _stream(self, conn: _Connection) -> None:
        try:
            while True:
                await self.clock.sleep(self.tick_s)
                now_ms = self.clock.now_ms()
                if await self._cut_if_due(conn, now_ms):
                    return
                if conn.injected_seen < len(self.plan.injected_frames):
                    burst = self.plan.injected_frames[conn.injected_seen :]
                    conn.injected_seen += len(burst)
                    await conn.send_burst(burst)
                for sub in list(conn.candles.values()):
                    if sub.coin not in self.plan.silenced_coins:
                        await self._send_candle(conn, sub, now_ms)
        except ConnectionClosed:
            return

    async def _cut_if_due(self, conn: _Connection, now_ms: int) -> bool:
        every = self.plan.drop_every_s
        if conn.drop_generation < self.plan.drop_generation or (
            every is not None and now_ms - conn.opened_ms >= every * 1000
        ):
            self.stats.dropped += 1
        elif now_ms - conn.last_received_ms >= IDLE_CLOSE_S * 1000:
            self.stats.idle_closed += 1
        else:
            return False
        # No close frame: the real server's cuts show up as 1006 on clients.
        conn.ws.transport.abort()
        return True

    async def _send_candle(self, conn: _Connection, sub: _Subscription, now_ms: int) -> None:
        length = interval_ms(sub.interval)
        open_ms = now_ms - now_ms % length
        if sub.last_open_ms is not None and sub.last_open_ms < open_ms:
            # The last trade of a bucket is always streamed: send its final state before moving on.
            await self._send_bucket(conn, sub, sub.last_open_ms, sub.last_open_ms + length - 1)
        sub.last_open_ms = open_ms
        await self._send_bucket(conn, sub, open_ms, now_ms)

    async def _send_bucket(self, conn: _Connection, sub: _Subscription, open_ms: int, at_ms: int) -> None:
        series = self.catalog.series
        candle = series.candle(sub.coin, sub.interval, open_ms, at_ms)
        if candle is None:
            return
        if self.plan.drop_before_final and series.is_final(sub.interval, open_ms, at_ms):
            self.stats.dropped += 1
            conn.ws.transport.abort()
            raise ConnectionClosed(None, None)
        self.stats.candle_frames += 1
        text = json.dumps({"channel": "candle", "data": candle}, separators=(",", ":"))
        every = self.plan.truncate_every
        if every is not None and self.stats.candle_frames % every == 0:
            self.stats.truncated += 1
            text = text[: len(text) // 2]
        await conn.send(text)


def _valid(subscription: Any) -> bool:
    if not isinstance(subscription, dict) or subscription.get("type") not in KNOWN_TYPES:
        return False
    if subscription["type"] != "candle":
        return True
    try:
        interval_ms(str(subscription.get("interval")))
    except ValueError:
        return False
    return isinstance(subscription.get("coin"), str)


def _reserialised(subscription: dict[str, Any]) -> dict[str, Any]:
    """The server parses the subscription and writes it back in its own field order."""
    order = ["type", "interval", "coin"]
    return {**{k: subscription[k] for k in order if k in subscription}, **{k: v for k, v in subscription.items() if k not in order}}
