"""Whole-table counts kept per app, so no dashboard request pays for a scan of every row.

Total rows and the last 24 hours' rows and subjects are counted once, on the first request of
the process; afterwards a response older than ``VOLUME_RECOUNT_AFTER`` schedules one recount
that runs after it is sent. At 10M candles the count takes ~0.7 s, every other dashboard read
a few milliseconds (peers.md §3). The counts cover data older than an hour before them; each
request adds the newer rows it reads with the last hour (``market_assets.dashboard``).
"""

from __future__ import annotations

import sqlite3
import threading

from litestar.background_tasks import BackgroundTask

from api.readers import Readers
from market_assets.clock import Clock
from market_assets.dashboard import count_volumes
from market_assets.memory.dashboard import VolumeCounts
from market_assets.registry import VOLUME_RECOUNT_AFTER, Channel

_RECOUNT_AFTER_MS = int(VOLUME_RECOUNT_AFTER.total_seconds() * 1000)


class VolumeCache:
    """One per app instance (``create_app``), never shared between apps."""

    def __init__(self) -> None:
        self._volumes: dict[Channel, VolumeCounts] | None = None
        self._lock = threading.Lock()
        self._recounting = False

    def volumes(self, conn: sqlite3.Connection, now_ms: int) -> dict[Channel, VolumeCounts]:
        """The counts as last taken; taken now, while the caller waits, only the first time."""
        with self._lock:
            if self._volumes is None:
                self._volumes = count_volumes(conn, now_ms)
            return self._volumes

    def recount_task(self, readers: Readers, clock: Clock, now_ms: int) -> BackgroundTask | None:
        """A task recounting after the response, when the counts are due and no recount runs."""
        with self._lock:
            counts = self._volumes
            if self._recounting or counts is None:
                return None
            counted_at = min(v.counted_at_ms for v in counts.values())
            if now_ms - counted_at < _RECOUNT_AFTER_MS:
                return None
            self._recounting = True
        return BackgroundTask(self._recount, readers, clock)

    def _recount(self, readers: Readers, clock: Clock) -> None:
        try:
            with readers.connection() as conn:
                volumes = count_volumes(conn, clock())
            with self._lock:
                self._volumes = volumes
        finally:
            with self._lock:
                self._recounting = False
