"""Rolling-minute limits shared by every socket of the streamer: new connections and messages sent.

Hyperliquid counts both per IP over a minute (30 new connections, 2,000 messages); the server's
window is not documented as fixed or rolling, and a rolling one is the stricter reading: no
60-second span ever holds more than ``capacity`` events, whichever way the server slices time.

The server counts a connection when it accepts it, somewhere between our asking and our socket
being open; counting it when we asked let 24 opens into one server-side minute under a limit of
20 (connect latency varies). A :meth:`RollingLimit.slot` therefore counts in full while in
flight and is stamped when it ends, never earlier than the server saw it, so our window always
holds at least what the server's does (the reasoning of the REST weight limiter,
``market_assets.sources.ratelimit``).

An attempt that never reached the server (connection refused, no DNS answer, a TCP connect that
timed out) was never counted there, so :meth:`Slot.refund` takes it out of ours too: without that,
a 21 s outage of the venue spent the whole allowance on refused connects and data resumed only
after ~58 s, when the minute let the sockets try again (issue 12).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from market_assets.sources.timing import AsyncClock

log = logging.getLogger(__name__)

MINUTE_MS = 60_000


class _Event:
    __slots__ = ("at_ms",)

    def __init__(self, at_ms: int | None) -> None:
        self.at_ms = at_ms
        """``None`` while in flight: it counts whatever the time."""


class Slot:
    """One event admitted by :meth:`RollingLimit.slot`, counted unless refunded."""

    __slots__ = ("_event", "_limit", "refunded")

    def __init__(self, limit: RollingLimit, event: _Event) -> None:
        self._limit = limit
        self._event = event
        self.refunded = False

    def refund(self) -> None:
        """The attempt never reached the server, which therefore never counted it: it leaves the
        window now and its room is free at once."""
        if not self.refunded:
            self.refunded = True
            self._limit._release(self._event)


class RollingLimit:
    """At most ``capacity`` events in any ``window_ms``; :meth:`acquire` waits for room.

    ``waits`` and ``waited_ms`` say how often and how long callers were held back; each wait is
    also one INFO line, naming the limit by ``name``.
    """

    def __init__(self, clock: AsyncClock, capacity: int, window_ms: int = MINUTE_MS, *, name: str = "limit") -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.name = name
        self.clock = clock
        self.capacity = capacity
        self.window_ms = window_ms
        self._events: list[_Event] = []
        self._lock = asyncio.Lock()
        self._settled = asyncio.Event()
        self.waits = 0
        self.waited_ms = 0

    def wait_ms(self, now_ms: int) -> int | None:
        """How long from ``now_ms`` until one more event fits: 0 if it fits now, ``None`` if
        only an event in flight can make room."""
        self._expire(now_ms)
        if len(self._events) < self.capacity:
            return 0
        stamped = sorted(e.at_ms for e in self._events if e.at_ms is not None)
        overflow = len(self._events) + 1 - self.capacity
        if len(stamped) < overflow:
            return None
        return stamped[overflow - 1] + self.window_ms - now_ms

    def record(self, now_ms: int) -> None:
        self._events.append(_Event(now_ms))

    async def acquire(self) -> None:
        """Wait until an event fits, then count it now (for sends: done when the call returns)."""
        event = await self._admit()
        event.at_ms = self.clock.now_ms()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait until an event fits; it counts from now and is stamped when the block ends,
        unless the block calls :meth:`Slot.refund` on what this yields."""
        event = await self._admit()
        slot = Slot(self, event)
        try:
            yield slot
        finally:
            if not slot.refunded:
                event.at_ms = self.clock.now_ms()
                self._settled.set()

    def _release(self, event: _Event) -> None:
        self._events.remove(event)
        self._settled.set()

    async def _admit(self) -> _Event:
        async with self._lock:
            started = self.clock.now_ms()
            held = False
            while (delay := self.wait_ms(self.clock.now_ms())) != 0:
                held = True
                if delay is None:
                    self._settled.clear()
                    await self._settled.wait()
                else:
                    await self.clock.sleep(delay / 1000)
            if held:
                waited_ms = self.clock.now_ms() - started
                self.waits += 1
                self.waited_ms += waited_ms
                log.info(
                    "%s: waited %.1f s for room under %d per %.0f s",
                    self.name, waited_ms / 1000, self.capacity, self.window_ms / 1000,
                )
            event = _Event(None)
            self._events.append(event)
            return event

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        self._events = [e for e in self._events if e.at_ms is None or e.at_ms > horizon]
