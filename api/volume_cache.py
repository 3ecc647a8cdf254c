"""Whole-table counts kept per app, so no dashboard request pays for a scan of every row.

Total rows and the last 24 hours' rows and subjects are counted once, on the first request of
the process; afterwards a response older than ``VOLUME_RECOUNT_AFTER`` schedules one recount
that runs after it is sent. At 10M candles the count takes ~0.7 s, every other dashboard read
a few milliseconds (peers.md §3). The counts cover data older than an hour before them; each
request adds the newer rows it reads with the last hour (``market_assets.dashboard``).
"""

from __future__ import annotations

from api.kept_read import KeptRead
from market_assets.dashboard import count_volumes
from market_assets.memory.dashboard import VolumeCounts
from market_assets.registry import VOLUME_RECOUNT_AFTER, Channel

_RECOUNT_AFTER_MS = int(VOLUME_RECOUNT_AFTER.total_seconds() * 1000)


def _due(counts: dict[Channel, VolumeCounts], now_ms: int) -> bool:
    return now_ms - min(v.counted_at_ms for v in counts.values()) >= _RECOUNT_AFTER_MS


class VolumeCache(KeptRead[dict[Channel, VolumeCounts]]):
    def __init__(self) -> None:
        super().__init__(count_volumes, _due)
