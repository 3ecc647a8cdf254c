"""Rolling-minute limits shared by every socket of the streamer: new connections and messages sent.

Hyperliquid counts both per IP over a minute (30 new connections, 2,000 messages); the server's
window is not documented as fixed or rolling, and a rolling one is the stricter reading: no
60-second span ever holds more than ``capacity`` events, whichever way the server slices time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from market_assets.sources.timing import AsyncClock

MINUTE_MS = 60_000


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
        self._events: deque[int] = deque()
        self._lock = asyncio.Lock()
        self.waits = 0
        self.waited_ms = 0

    def wait_ms(self, now_ms: int, count: int = 1) -> int:
        """How long from ``now_ms`` until ``count`` more events fit (0: they fit now)."""
        count = min(count, self.capacity)
        self._expire(now_ms)
        overflow = len(self._events) + count - self.capacity
        if overflow <= 0:
            return 0
        # The oldest ``overflow`` events must leave the window first.
        return self._events[overflow - 1] + self.window_ms - now_ms

    def record(self, now_ms: int, count: int = 1) -> None:
        self._events.extend([now_ms] * count)

    async def acquire(self, count: int = 1) -> None:
        """Wait (on the injected clock) until ``count`` events fit, then record them."""
        async with self._lock:
            started = self.clock.now_ms()
            held = False
            while (delay := self.wait_ms(self.clock.now_ms(), count)) > 0:
                held = True
                await self.clock.sleep(delay / 1000)
            now_ms = self.clock.now_ms()
            if held:
                self.waits += 1
                self.waited_ms += now_ms - started
            self.record(now_ms, min(count, self.capacity))

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        while self._events and self._events[0] <= horizon:
            self._events.popleft()
