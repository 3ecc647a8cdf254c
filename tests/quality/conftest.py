"""Seeded memories for the asset checks: rows written through the memory's own writers, faults
added by the tests themselves with a direct ``UPDATE``/``INSERT`` (what a bug or a manual write
would leave). Every check runs on both engines: ``conn`` is a SQLite memory, then a PostgreSQL
one (the root conftest's ``memory_conn``); the clock is the root conftest's ``clock``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from market_assets.memory.candles import CandleRow
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from tests.conftest import FrozenClock
from tests.postgres.reuse import memory_target, reused_postgres

__all__ = ["memory_target", "reused_postgres"]  # the PostgreSQL memory reused, emptied per test
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, random_walk, series, store

NOW_MS = DAY0_MS + 2 * DAY_MS + 30 * MINUTE_MS + 20_000
"""Twenty seconds into a minute, two days and a half hour after the day-aligned series start."""

SeedCandles = Callable[..., dict[str, list[CandleRow]]]


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The memory the checks read, on each engine in turn (the root conftest's ``memory_conn``)."""
    return memory_conn


@pytest.fixture
def now_ms(clock: FrozenClock) -> int:
    clock.now_ms = NOW_MS
    return NOW_MS


@pytest.fixture
def seed_candles(conn: MemoryConnection, now_ms: int) -> SeedCandles:
    """``seed(coins, minutes=…, start_price=…)``: per coin, confirmed closed 1-minute candles of
    a seeded random walk ending with the last minute closed before ``now_ms`` (plus the forming
    minute, unconfirmed), and every coin listed in the perp universe."""

    def seed(coins: Sequence[str] = ("BTC", "ETH", "SOL"), *, minutes: int = 1_500, start_price: float = 100.0) -> dict[str, list[CandleRow]]:
        forming_ms = now_ms - now_ms % MINUTE_MS
        first_ms = forming_ms - minutes * MINUTE_MS
        seeded: dict[str, list[CandleRow]] = {}
        for i, coin in enumerate(coins):
            closes = random_walk(i + 1, minutes + 1, start_price * (i + 1))
            rows = [r._replace(confirmed=True) for r in series(coin, first_ms, closes[:-1], seed=i)]
            rows += series(coin, forming_ms, closes[-1:], seed=i)
            rows[-1] = rows[-1]._replace(closed=False)
            store(conn, rows, now_ms)
            seeded[coin] = rows
        upsert_universe(conn, [UniverseRow(coin, "", i, 2, 20, False) for i, coin in enumerate(coins)], now_ms)
        return seeded

    return seed
