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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from market_assets.sources.timing import AsyncClock

MINUTE_MS = 60_000


class _Event:
    __slots__ = ("at_ms",)

    def __init__(self, at_ms: int | None) -> None:
        self.at_ms = at_ms
        """``None`` while in flight: it counts whatever the time."""


class RollingLimit:
    """At most ``capacity`` events in any ``window_ms``; :meth:`acquire` waits for room.

    ``waits`` and ``waited_ms`` say how often and how long callers were held back.
    """

    def __init__(self, clock: AsyncClock, capacity: int, window_ms: int = MINUTE_MS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
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
    async def slot(self) -> AsyncIterator[None]:
        """Wait until an event fits; it counts from now and is stamped when the block ends."""
        event = await self._admit()
        try:
            yield
        finally:
            event.at_ms = self.clock.now_ms()
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
                self.waits += 1
                self.waited_ms += self.clock.now_ms() - started
            event = _Event(None)
            self._events.append(event)
            return event

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        self._events = [e for e in self._events if e.at_ms is None or e.at_ms > horizon]
