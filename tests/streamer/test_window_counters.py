"""SPEC §3–4: each candles window carries the retry and throttle counts the dashboard's
``throttled`` warning ("HTTP 429") reads; the pacing of our own weight limiter is counted apart."""

from __future__ import annotations

from pathlib import Path

from market_assets.memory import open_memory
from market_assets.memory.runs import runs_of
from market_assets.sources.http import RequestStats
from streamer.windows import WindowRecorder

from .conftest import MINUTE_MS, T0_MS


def test_a_window_counts_the_hosts_429s_as_throttles_and_our_limiters_waits_apart(memory_path: Path) -> None:
    stats = RequestStats()
    start = T0_MS - T0_MS % MINUTE_MS
    recorder = WindowRecorder(MINUTE_MS, lambda: start, stats)
    with open_memory(memory_path) as conn:
        recorder.roll(conn, start, {}, None)
        stats.rate_limited, stats.retries, stats.budget_waits = 2, 2, 7  # a backfill hit two 429s
        recorder.roll(conn, start + MINUTE_MS, {}, None)
        stats.budget_waits += 40  # a backfill the limiter spread over the minute: no 429
        recorder.roll(conn, start + 2 * MINUTE_MS, {}, None)
        windows = runs_of(conn, "hyperliquid", "candles")
    assert [(w.retries, w.throttles, w.metadata["budget_waits"]) for w in windows] == [(2, 2, 7), (0, 0, 40)]
