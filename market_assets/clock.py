"""The one wall clock. Everything that decides a status takes ``now_ms`` as an argument instead."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Returns the current time as integer epoch milliseconds (the unit every table uses)."""


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
