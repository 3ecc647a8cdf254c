"""SPEC §11: one reader shared by threads (the API's worker threads) returns what it returns alone,
and closes cleanly after them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from market_assets.read import MarketReader
from tests.conftest import FrozenClock
from tests.read.seeding import DAY_MS, START_MS, Market

READS = [(coins, interval, START_MS + offset * DAY_MS) for coins, interval, offset in [
    (None, "1m", 6), ("BTC", "5m", 1), (["ETH", "SOL"], "1h", 0), (None, "3m", 4), ("SOL", "1d", 0), (None, "15m", 2),
    ("BTC", "1w", -7), (None, "1m", 8),
]]


def test_concurrent_reads_from_threads_equal_the_same_reads_in_turn(market: Market) -> None:
    reader = MarketReader(market.path, clock=FrozenClock(market.now_ms))
    alone = [reader.candles(coins, interval, start, start + 2 * DAY_MS) for coins, interval, start in READS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda args: reader.candles(args[0], args[1], args[2], args[2] + 2 * DAY_MS), READS * 3))
    for i, frame in enumerate(together):
        pd.testing.assert_frame_equal(frame, alone[i % len(READS)])
    reader.close()  # from the thread that opened it, after worker threads opened their own connections
