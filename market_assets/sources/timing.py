"""Clocks that can also sleep, so retries, rate limits and replayed streams run on injected time.

Every wait in the source clients and the replay servers goes through one of these. Tests use an
:class:`AcceleratedClock` (a ten-minute outage passes in a fraction of a second of real time, and
concurrent tasks, threads and the replay servers all agree on "now") or a :class:`VirtualClock`
(time moves only when something sleeps: fully deterministic for single-task logic).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class AsyncClock(Protocol):
    def now_ms(self) -> int:
        """Current epoch time in milliseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Wall-clock time; the default everywhere outside tests."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class AcceleratedClock:
    """Real time running ``speed`` times faster, from ``start_ms`` (default: now).

    Safe to share between threads and event loops: it holds no state that changes.
    """

    def __init__(self, speed: float, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.start_ms = time.time_ns() // 1_000_000 if start_ms is None else start_ms
        self._origin = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._origin) * self.speed * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class VirtualClock:
    """Time that stands still until someone sleeps; a sleep moves it forward at once.

    Meant for one task at a time: two concurrent sleepers each move the clock by their own
    amount, so elapsed time over-counts, which only ever makes a rolling window look emptier.
    """

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms
        self.slept_s: list[float] = []
        """Every sleep requested, in order, so a test can check a backoff schedule."""

    def now_ms(self) -> int:
        return self._now_ms

    def advance(self, seconds: float) -> None:
        self._now_ms += round(seconds * 1000)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.slept_s.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
