"""One WebSocket to Hyperliquid as an explicit state machine (the model: nautilus_trader's
Hyperliquid client — heartbeat, capped jittered backoff, unlimited attempts, resubscribe all).

::

    IDLE ─► CONNECTING ─► SUBSCRIBING ─► LIVE
               ▲   │            │          │
               │   ▼            ▼          ▼
               └─ BACKING_OFF ◄─┴──────────┘        any state ─► CLOSING ─► CLOSED

CONNECTING waits for a slot under the IP's new-connections-per-minute limit, then opens the
socket. SUBSCRIBING sends a subscribe for every coin of the socket and waits for each ack,
matched on fields (the server re-orders the echoed keys); a coin refused on the ``error``
channel is dropped from the session, an ack that never comes is asked again once and then the
socket is presumed broken. LIVE streams. Any failure goes to BACKING_OFF, which waits the next
delay of the schedule and connects again, forever; reaching LIVE resets the schedule.

While a session is up, three tasks run: the reader (frames to the sink, acks, pongs, counting
what it skips), the pinger (``{"method":"ping"}`` every ``ping_interval_s``, so a socket whose
coins are all quiet is never cut for idleness), and the supervisor (applies coin changes, checks
acks, resubscribes a coin silent for ``silent_coin_multiple`` cadences — alone, the others are
not disturbed — and replaces a socket on which nothing at all, not even a pong, arrived).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, cast

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State
from websockets.protocol import Protocol as WebSocketProtocol
from websockets.streams import StreamReader

from market_assets.sources.errors import PayloadError
from market_assets.sources.hyperliquid import Candle, RejectedCandle
from market_assets.sources.hyperliquid_ws import (
    PING,
    Ack,
    CandleFrame,
    ErrorFrame,
    NotJson,
    OtherFrame,
    Pong,
    candle_subscription,
    parse_frame,
    subscribe_message,
    unsubscribe_message,
)
from market_assets.sources.timing import AsyncClock
from streamer.backoff import Backoff
from streamer.config import StreamerConfig
from streamer.buckets import Feed
from streamer.counters import UNPARSEABLE, StreamCounters
from streamer.limits import RollingLimit

log = logging.getLogger(__name__)

_DATA = (Opcode.TEXT, Opcode.BINARY)
_WHOLE_DATA_FRAME = frozenset({0x81, 0x82})
"""A frame's first byte when it is a whole text or binary message: FIN, no RSV bit (not compressed)."""


class ConnectionState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    LIVE = "live"
    BACKING_OFF = "backing_off"
    CLOSING = "closing"
    CLOSED = "closed"


_S = ConnectionState
TRANSITIONS: Mapping[ConnectionState, frozenset[ConnectionState]] = {
    _S.IDLE: frozenset({_S.CONNECTING, _S.CLOSING}),
    _S.CONNECTING: frozenset({_S.SUBSCRIBING, _S.BACKING_OFF, _S.CLOSING}),
    _S.SUBSCRIBING: frozenset({_S.LIVE, _S.BACKING_OFF, _S.CLOSING}),
    _S.LIVE: frozenset({_S.BACKING_OFF, _S.CLOSING}),
    _S.BACKING_OFF: frozenset({_S.CONNECTING, _S.CLOSING}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""Every legal move; anything else is a bug and raises :class:`IllegalTransition`."""


class IllegalTransition(RuntimeError):
    pass


class SessionLost(Exception):
    """The current socket is no longer usable; the state machine backs off and reconnects."""


class StreamSink(Protocol):
    """Where a connection hands what it learns (implemented by the service)."""

    def candle(self, candle: Candle, received_ms: int, feed: Feed) -> bool:
        """A candle frame, from the socket session ``feed``. ``False`` when the writer is full:
        the socket stops reading until :meth:`room` (back-pressure)."""
        ...

    async def room(self) -> None:
        """Return once the writer takes rows again."""
        ...

    def rejected(self, error: RejectedCandle) -> None:
        """A candle frame with impossible values: that coin's minute is not to be trusted."""
        ...

    def lost(self, coins: Collection[str], feed: Feed) -> None:
        """These coins' subscription ended with the socket session ``feed``; their newest bucket
        may be partial."""
        ...

    def resubscribed(self, coin: str) -> None:
        """The coin was silent too long and was resubscribed alone."""
        ...


@dataclass
class SocketLimits:
    """What every socket of the streamer shares: the clock, the per-IP limits, the counters."""

    url: str
    config: StreamerConfig
    clock: AsyncClock
    counters: StreamCounters
    new_connections: RollingLimit
    messages: RollingLimit
    rng: random.Random = field(default_factory=random.Random)


def _between_frames(protocol: WebSocketProtocol) -> bool:
    """Whether websockets' parser waits for the first byte of a frame: nothing buffered, and its
    innermost generator is the reader's ``at_eof`` (in ``read_exact`` it is inside a frame whose
    header it consumed)."""
    if protocol.reader.buffer:
        return False
    waiting: Any = protocol.parser
    while waiting.gi_yieldfrom is not None:
        waiting = waiting.gi_yieldfrom
    return waiting.gi_code is _AT_EOF


_AT_EOF = StreamReader.at_eof.__code__


class _Socket(ClientConnection):
    """websockets' client connection, handing every whole data frame to its owner's reader as
    it parses it, in order, with no message queue, future or task wake-up per frame (those were
    a third of the reading cost at 20k frames/s). A fragmented message (Hyperliquid sends none)
    and everything after it go through ``recv``, so the order holds. Once the session ends
    (``owner`` is ``None``), frames wait in ``recv``'s queue, unread, as they always did."""

    owner: Connection | None = None

    _partial = b""
    """The start of a frame that the chunk cut: the next chunk continues it."""

    def data_received(self, data: bytes) -> None:
        """The chunk is cut into frames here, as websockets' parser would cut it: each whole,
        final, uncompressed text or binary frame is handed over at once, and every other frame
        (a ping, a pong, a close, a fragment, a compressed frame) is given whole to websockets,
        whose parser so always waits between frames. A frame cut by the chunk's end waits for
        the next chunk here. Anything websockets would refuse (a masked frame, one past the size
        limit), and everything once a fragmented message or a close began, goes to websockets
        as it comes. websockets' parser, a generator per frame, was a third of the socket
        thread's work at 20k frames/s."""
        if self._partial:
            data, self._partial = self._partial + data, b""
        elif not (self._cutting() and _between_frames(self.protocol)):
            super().data_received(data)
            return
        limit = self.protocol.max_message_size
        start, size = 0, len(data)
        while start < size:
            if start + 2 > size:
                self._partial = data[start:]
                return
            length, head = data[start + 1], 2
            if length > 127:
                break  # masked: websockets refuses it
            if length >= 126:
                head = 4 if length == 126 else 10
                if start + head > size:
                    self._partial = data[start:]
                    return
                length = int.from_bytes(data[start + 2 : start + head])
            if limit is not None and length > limit:
                break  # websockets refuses it without waiting for its payload
            end = start + head + length
            if end > size:
                self._partial = data[start:]
                return
            if data[start] in _WHOLE_DATA_FRAME and self.owner is not None:
                self.owner._deliver(self, data[start + head : end])
            else:
                super().data_received(data[start:end])
                if not self._cutting():
                    start = end
                    break
            start = end
        if start < size:
            super().data_received(data[start:])

    def _cutting(self) -> bool:
        """Whether frames may be cut here: a session reads this socket, it is open, and no
        fragmented message is under way."""
        protocol = self.protocol
        return self.owner is not None and protocol.state is State.OPEN and protocol.current_size is None

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode in _DATA:
            if self.owner is not None and event.fin:
                self.owner._deliver(self, bytes(event.data))  # the same object when it is bytes already
                return
            self.owner = None
        super().process_event(event)


class Connection:
    CLOSE_WAIT_S = 1.0
    """At shutdown, how long (real seconds) the server has to answer our close frame."""

    def __init__(self, index: int, coins: Iterable[str], limits: SocketLimits, sink: StreamSink) -> None:
        self.index = index
        self.limits = limits
        self.config = limits.config
        self.clock = limits.clock
        self.counters = limits.counters
        self.sink = sink
        self.state = ConnectionState.IDLE
        self.transitions: deque[tuple[int, ConnectionState]] = deque(maxlen=256)
        self.coins: dict[str, None] = dict.fromkeys(coins)
        """The coins this socket should carry, in the order they are subscribed."""
        self.backoff = Backoff(
            self.config.backoff_initial_s, self.config.backoff_cap_s, self.config.backoff_jitter_s, limits.rng
        )
        self.down_since_ms: int | None = self.clock.now_ms()
        """Since when this socket has not been LIVE (None while it is)."""
        self.last_error: str | None = None
        self._failures = 0
        """Failures since the socket was last LIVE: one per reconnect attempt."""
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        # Per-session state, reset by each new socket.
        self._sent: dict[str, int] = {}
        """Coins subscribed on this socket (ack pending or received) -> when the subscribe was sent."""
        self._acked: set[str] = set()
        self._asked_again: set[str] = set()
        self._last_frame_ms: dict[str, int] = {}
        self._feed = Feed()
        """This session's frames as the bucket book sees them (a new one per socket)."""
        self._last_received_ms = 0
        self._in_sink = False
        self._hold: asyncio.Task[None] | None = None
        """Resumes reading once the writer has room again (set while the socket is paused)."""
        self._changes: list[tuple[str, str]] = []

    # Lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"socket-{self.index}")

    async def close(self) -> None:
        """Leave whatever state, close the socket, and end in CLOSED."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return
        ws = self._ws
        self._to(ConnectionState.CLOSING)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), timeout=self.CLOSE_WAIT_S)
            except (TimeoutError, OSError):
                ws.transport.abort()
        self._to(ConnectionState.CLOSED)

    def set_coins(self, coins: Iterable[str]) -> None:
        """Carry exactly ``coins`` from now on; a live socket (un)subscribes the difference."""
        wanted = dict.fromkeys(coins)
        for coin in self.coins.keys() - wanted.keys():
            self._changes.append(("unsubscribe", coin))
        for coin in wanted.keys() - self.coins.keys():
            self._changes.append(("subscribe", coin))
        self.coins = wanted

    @property
    def acked(self) -> frozenset[str]:
        return frozenset(self._acked)

    def _to(self, state: ConnectionState) -> None:
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"socket {self.index}: {self.state} -> {state}")
        now = self.clock.now_ms()
        self.state = state
        self.transitions.append((now, state))
        if state is ConnectionState.LIVE:
            self._went_live(now)
            self.down_since_ms = None
        elif self.down_since_ms is None:
            self.down_since_ms = now

    # The state machine -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._to(ConnectionState.CONNECTING)
            try:
                ws = await self._open()
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
                self._failed(f"connect: {exc!r}")
                await self._back_off()
                continue
            self.counters.connections_opened += 1
            self._ws = ws
            self._to(ConnectionState.SUBSCRIBING)
            try:
                await self._session(ws)
            except (SessionLost, ConnectionClosed, OSError, TimeoutError) as exc:
                self._failed(str(exc) or repr(exc))
            finally:
                self._ws = None
                subscribed, feed = list(self._sent), self._feed
                self._reset_session()
                if self.state is not ConnectionState.CLOSING:
                    ws.transport.abort()  # no close handshake with a socket we gave up on
                if subscribed:
                    self.sink.lost(subscribed, feed)
            await self._back_off()

    async def _open(self) -> _Socket:
        """Open a socket under the IP's new-connections limit.

        The venue counts a connection when it accepts it, so an attempt that never got a TCP
        connection (refused, no DNS answer, connect timeout) is refunded: during an outage every
        refused try otherwise spent the allowance the venue's return needs (issue 12: data resumed
        ~58 s after a 21 s outage). A failed handshake (e.g. an HTTP 429) reached it and counts.
        """
        reached = False

        owner = self

        class Watched(_Socket):
            # asyncio calls this once the TCP connection (and, for wss://, TLS) is up.
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                nonlocal reached
                reached = True
                self.owner = owner
                super().connection_made(transport)

        async with self.limits.new_connections.slot() as slot:
            try:
                socket = await connect(
                    self.limits.url,
                    ping_interval=None,  # the documented heartbeat is the application ping
                    open_timeout=self.config.connect_timeout_s,
                    close_timeout=1,
                    max_queue=1024,
                    create_connection=Watched,
                )
                return cast(_Socket, socket)
            except Exception:
                if not reached:
                    slot.refund()
                raise

    def _failed(self, error: str) -> None:
        """Only the first failure since the socket was LIVE is a warning: an outage of 20 s is ~12
        refused connects per socket, and its end is one INFO line (:meth:`_went_live`)."""
        self.last_error = error
        self._failures += 1
        if self._failures == 1:
            log.warning("socket %d: %s", self.index, error)
        else:
            log.debug("socket %d: %s (failure %d since it was live)", self.index, error, self._failures)

    def _went_live(self, now_ms: int) -> None:
        if self._failures and self.down_since_ms is not None:
            log.info(
                "socket %d: live again after %.1f s down and %d reconnect attempts",
                self.index, (now_ms - self.down_since_ms) / 1000, self._failures,
            )
        self._failures = 0

    async def _back_off(self) -> None:
        self._to(ConnectionState.BACKING_OFF)
        self.counters.reconnects += 1
        await self.clock.sleep(self.backoff.next_delay())

    def _reset_session(self) -> None:
        self._feed = Feed()
        self._sent.clear()
        self._acked.clear()
        self._asked_again.clear()
        self._last_frame_ms.clear()
        self._changes.clear()

    async def _session(self, ws: _Socket) -> None:
        self._last_received_ms = self.clock.now_ms()
        tasks = [
            asyncio.create_task(self._read(ws)),
            asyncio.create_task(self._ping(ws)),
            asyncio.create_task(self._supervise(ws)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise what ended the session
            raise SessionLost("the server closed the socket")
        finally:
            ws.owner = None
            if self._hold is not None:
                tasks.append(self._hold)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # Session tasks -----------------------------------------------------------------------------

    async def _send(self, ws: ClientConnection, text: str) -> None:
        await self.limits.messages.acquire()
        await ws.send(text)

    async def _subscribe(self, ws: ClientConnection, coin: str) -> None:
        self._sent[coin] = self.clock.now_ms()
        await self._send(ws, subscribe_message(candle_subscription(coin, self.config.interval)))

    async def _read(self, ws: ClientConnection) -> None:
        """Messages websockets did not hand over as it parsed them (see ``_open``), and the end
        of the socket: ``recv`` raises once it closes."""
        while True:
            try:
                # Bytes as received: the parser reads UTF-8 itself, and faster than from a str.
                message = await ws.recv(decode=False)
            except ConnectionClosedOK:
                return
            if not self._message(message):
                self._in_sink = True
                try:
                    await self.sink.room()
                finally:
                    self._in_sink = False
                    self._last_received_ms = self.clock.now_ms()

    def _deliver(self, ws: _Socket, message: bytes) -> None:
        """A message handed over by websockets as it parsed it. If the writer is full, stop
        reading the socket until it has room: the rest of the chunk websockets is parsing still
        arrives, and is held in order."""
        if self._message(message) or self._hold is not None:
            return
        ws.transport.pause_reading()
        self._in_sink = True
        self._hold = asyncio.create_task(self._resume(ws))

    async def _resume(self, ws: _Socket) -> None:
        try:
            await self.sink.room()
        finally:
            # Held by back-pressure, the reader was alive; the socket's silence counts from
            # when it can read again.
            self._hold = None
            self._in_sink = False
            self._last_received_ms = self.clock.now_ms()
        ws.transport.resume_reading()

    def _message(self, message: bytes | str) -> bool:
        """One message of the socket: counted, parsed and handed on. ``False`` once the writer is full."""
        now_ms = self.clock.now_ms()
        self._last_received_ms = now_ms
        self.counters.frames += 1
        try:
            frame = parse_frame(message)
        except RejectedCandle as exc:
            self.counters.reject(exc.reason.value)
            self.sink.rejected(exc)
            return True
        except PayloadError as exc:
            # Whatever it was (a candle's final update, maybe), this socket's buckets can no
            # longer be proved final by it.
            self._feed.unparseable += 1
            self.counters.parse_errors += 1
            self.counters.reject(UNPARSEABLE)
            log.debug("socket %d: skipped an invalid frame: %s", self.index, exc)
            return True
        match frame:
            case CandleFrame(candle=candle):
                self.counters.candle_frames += 1
                coin = candle.coin
                self._last_frame_ms[coin] = now_ms
                self.counters.last_frame_ms[coin] = now_ms
                return self.sink.candle(candle, now_ms, self._feed)
            case Ack():
                self.counters.acks += 1
                self._on_ack(frame)
            case Pong():
                self.counters.pongs += 1
            case ErrorFrame():
                self.counters.error_frames += 1
                self._on_error(frame)
            case NotJson():
                # A truncated candle frame is not JSON either.
                self._feed.unparseable += 1
                self.counters.not_json_frames += 1
                self.counters.reject(UNPARSEABLE)
            case OtherFrame():
                self.counters.other_frames += 1
        return True

    def _on_ack(self, ack: Ack) -> None:
        if ack.method != "subscribe":
            return
        coin = ack.subscription.get("coin")
        if isinstance(coin, str) and coin in self._sent and ack.acknowledges(
            "subscribe", candle_subscription(coin, self.config.interval)
        ):
            self._acked.add(coin)
            self._last_frame_ms.setdefault(coin, self.clock.now_ms())

    def _on_error(self, error: ErrorFrame) -> None:
        subscription = error.subscription
        coin = subscription.get("coin") if subscription else None
        log.warning("socket %d: server error: %s", self.index, error.message[:300])
        if isinstance(coin, str) and coin in self._sent and coin not in self._acked:
            # Refused (e.g. a coin delisted since the universe was read): not retried on this
            # socket; the next universe poll decides whether it is still wanted.
            self.counters.refused_subscriptions += 1
            del self._sent[coin]

    async def _ping(self, ws: ClientConnection) -> None:
        while True:
            await self.clock.sleep(self.config.ping_interval_s)
            await self._send(ws, PING)

    async def _supervise(self, ws: ClientConnection) -> None:
        for coin in list(self.coins):
            await self._subscribe(ws, coin)
        check_s = min(self.config.ack_timeout_s, self.config.ping_interval_s) / 4
        while True:
            if self.state is ConnectionState.SUBSCRIBING and self._sent.keys() <= self._acked:
                self._to(ConnectionState.LIVE)
                self.backoff.reset()
            await self.clock.sleep(check_s)
            now_ms = self.clock.now_ms()
            await self._apply_changes(ws)
            await self._check_acks(ws, now_ms)
            self._check_socket(now_ms)
            await self._check_silent_coins(ws, now_ms)

    async def _apply_changes(self, ws: ClientConnection) -> None:
        changes, self._changes = self._changes, []
        for method, coin in changes:
            if method == "subscribe" and coin in self.coins and coin not in self._sent:
                await self._subscribe(ws, coin)
            elif method == "unsubscribe" and coin in self._sent:
                del self._sent[coin]
                self._acked.discard(coin)
                self._last_frame_ms.pop(coin, None)
                await self._send(ws, unsubscribe_message(candle_subscription(coin, self.config.interval)))

    async def _check_acks(self, ws: ClientConnection, now_ms: int) -> None:
        timeout_ms = self.config.ack_timeout_s * 1000
        for coin, sent_ms in list(self._sent.items()):
            if coin in self._acked or now_ms - sent_ms < timeout_ms:
                continue
            self.counters.ack_timeouts += 1
            if coin in self._asked_again:
                raise SessionLost(f"no ack for {coin} after two subscribes")
            self._asked_again.add(coin)
            await self._subscribe(ws, coin)

    def _check_socket(self, now_ms: int) -> None:
        """Pongs answer every ping, so a socket that delivered nothing for two ping periods is
        dead even if the OS has not noticed. A reader held by back-pressure is not silent."""
        if not self._in_sink and now_ms - self._last_received_ms > 2 * self.config.ping_interval_s * 1000:
            raise SessionLost(f"nothing received for {(now_ms - self._last_received_ms) / 1000:.0f} s")

    async def _check_silent_coins(self, ws: ClientConnection, now_ms: int) -> None:
        limit_ms = self.config.silent_coin_ms
        for coin in list(self._acked):
            if now_ms - self._last_frame_ms.get(coin, now_ms) < limit_ms:
                continue
            # Only this coin: unsubscribe and subscribe again on the same socket.
            self.counters.stale_resubscribes += 1
            self.counters.resubscribed[coin] = self.counters.resubscribed.get(coin, 0) + 1
            self._acked.discard(coin)
            self._asked_again.discard(coin)
            self._last_frame_ms[coin] = now_ms
            await self._send(ws, unsubscribe_message(candle_subscription(coin, self.config.interval)))
            await self._subscribe(ws, coin)
            self.sink.resubscribed(coin)
