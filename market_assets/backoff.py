"""When a failed channel is retried: a capped exponential backoff over its failure streak (pure).

The base and the cap are the registry's (``RETRY_BACKOFF_BASE``, ``Channel.retry_backoff_cap_sec``);
the clock is the caller's.
"""

from __future__ import annotations

import math

from market_assets.memory.failures import FailureStreak
from market_assets.registry import RETRY_BACKOFF_BASE, Channel

BASE_SEC = int(RETRY_BACKOFF_BASE.total_seconds())


def streak_limit(channel: Channel) -> int:
    """How many consecutive failures can still lengthen the channel's backoff: counting further
    changes nothing, so the ledger is read no deeper."""
    return max(1, math.ceil(math.log2(max(1, channel.retry_backoff_cap_sec / BASE_SEC)))) + 1


def backoff_sec(channel: Channel, failures: int) -> int:
    """The wait after ``failures`` consecutive failures: base × 2^(failures - 1), capped."""
    if failures <= 0:
        return 0
    doublings = min(failures - 1, streak_limit(channel))
    return min(BASE_SEC * 2**doublings, channel.retry_backoff_cap_sec)


def retry_due_at_ms(channel: Channel, streak: FailureStreak) -> int | None:
    """When the failed channel may run again; ``None`` when its latest run did not fail."""
    if streak.failures == 0 or streak.last_failed_at_ms is None:
        return None
    return streak.last_failed_at_ms + backoff_sec(channel, streak.failures) * 1000


def retry_is_due(channel: Channel, streak: FailureStreak, now_ms: int) -> bool:
    due = retry_due_at_ms(channel, streak)
    return due is not None and now_ms >= due
