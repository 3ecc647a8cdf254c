"""A slow read kept per app: taken while the first request waits, afterwards again after a
response once it is due, one read at a time, so no later request waits for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from litestar.background_tasks import BackgroundTask

from api.readers import Readers
from market_assets.clock import Clock
from market_assets.memory.connection import MemoryConnection

T = TypeVar("T")


class KeptRead(Generic[T]):
    """One per app instance (``create_app``), never shared between apps."""

    def __init__(self, read: Callable[[MemoryConnection, int], T], due: Callable[[T, int], bool]) -> None:
        self._read = read
        self._due = due
        """Whether a kept value is old enough at ``now_ms`` to be read again."""
        self._value: T | None = None
        self._lock = threading.Lock()
        self._reading = False

    def value(self, conn: MemoryConnection, now_ms: int) -> T:
        """The value as last read; read now, while the caller waits, only the first time."""
        with self._lock:
            if self._value is None:
                self._value = self._read(conn, now_ms)
            return self._value

    def refresh_task(self, readers: Readers, clock: Clock, now_ms: int) -> BackgroundTask | None:
        """A task reading again after the response, when the value is due and no read runs."""
        with self._lock:
            if self._reading or self._value is None or not self._due(self._value, now_ms):
                return None
            self._reading = True
        return BackgroundTask(self._refresh, readers, clock)

    def _refresh(self, readers: Readers, clock: Clock) -> None:
        try:
            with readers.connection() as conn:
                fresh = self._read(conn, clock())
            with self._lock:
                self._value = fresh
        finally:
            with self._lock:
                self._reading = False
