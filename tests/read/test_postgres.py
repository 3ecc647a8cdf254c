"""Issue 17: the read API over a PostgreSQL memory returns what it returns over SQLite, row for
row, with the same columns, dtypes and flags (the same rows in both: ``tests.postgres.memory_copy``).

The reads' meaning is tested against the truth on SQLite (every module of this package) and, for
the representative tests, on PostgreSQL too (``BOTH_ENGINES``); this module compares every kind
of read between the engines, cheaply, where recomputing the truth would double the suite's time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from market_assets.memory.target import PostgresUrl
from market_assets.read import INTERVALS, MarketReader
from tests.conftest import FrozenClock
from tests.read.seeding import (
    COINS,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    NOW_MS,
    ROLLED_MS,
    START_MS,
    Market,
)

Read = Callable[[MarketReader], pd.DataFrame | pa.Table]

AS_OF = (None, START_MS + 2 * DAY_MS + 5 * HOUR_MS + 31 * MINUTE_MS + 17, ROLLED_MS + 7 * MINUTE_MS, NOW_MS - 30_001)


def reads() -> Iterator[tuple[str, Read]]:
    """Every kind of read, with the arguments that change what it composes from."""
    for index, interval in enumerate(INTERVALS):
        # Each interval at one moment, the moments in turn: every interval and every moment read.
        as_of, forming = AS_OF[index % len(AS_OF)], index % 3 != 0
        yield (f"candles {interval} as_of={as_of} forming={forming}",
               lambda r, i=interval, a=as_of, f=forming: r.candles(None, i, START_MS - DAY_MS, as_of=a, include_forming=f))
        yield (f"candles {interval} verified only, two coins, off-grid range",
               lambda r, i=interval: r.candles(["SOL", "BTC"], i, START_MS + 2 * DAY_MS + 7_777, NOW_MS - 3 * HOUR_MS + 5,
                                               verified_only=True))
    yield "features, all history (the warm-up's NULLs)", lambda r: r.features(None, START_MS)
    for as_of in AS_OF:
        around = START_MS if as_of is None else as_of - DAY_MS
        yield f"features as_of={as_of}", lambda r, a=as_of, s=around: r.features(None, s, s + 2 * DAY_MS, as_of=a)
        yield f"funding as_of={as_of}", lambda r, a=as_of: r.funding(None, START_MS - DAY_MS, as_of=a)
    for as_of in AS_OF[1::2]:
        yield f"frame 1h as_of={as_of}", lambda r, a=as_of: r.frame("ETH", "1h", START_MS, as_of=a)
    yield "features, two columns of one coin", lambda r: r.features("BTC", START_MS + DAY_MS, START_MS + 2 * DAY_MS,
                                                                    columns=["macd", "rsi_14"])
    yield "arrow candles", lambda r: r.candles(list(COINS), "15m", START_MS, output="arrow")
    yield "arrow features", lambda r: r.features(None, NOW_MS - DAY_MS, output="arrow")
    yield "markets", lambda r: r.polymarket_markets()
    yield "series", lambda r: r.defillama_series()
    yield "empty", lambda r: r.candles("DOGE", "1h", START_MS)


@pytest.fixture(scope="module")
def on_both(market: Market, market_on_postgres: PostgresUrl) -> Iterator[tuple[MarketReader, MarketReader]]:
    archive = market.path.parent / "archive"
    with MarketReader(market.path, archive=archive, clock=FrozenClock(market.now_ms)) as sqlite, \
            MarketReader(market_on_postgres, archive=archive, clock=FrozenClock(market.now_ms)) as postgres:
        yield sqlite, postgres


def assert_same_read(sqlite: pd.DataFrame | pa.Table, postgres: pd.DataFrame | pa.Table, what: str) -> None:
    if isinstance(sqlite, pa.Table):
        assert isinstance(postgres, pa.Table), what
        assert postgres.schema == sqlite.schema, what
        assert postgres.equals(sqlite), what
    else:
        pd.testing.assert_frame_equal(postgres, sqlite, check_exact=True, obj=what)


def test_every_read_from_postgresql_is_the_sqlite_read_row_for_row(on_both: tuple[MarketReader, MarketReader]) -> None:
    sqlite, postgres = on_both
    assert postgres.coins() == sqlite.coins()
    read = 0
    for what, call in reads():
        expected = call(sqlite)
        assert_same_read(expected, call(postgres), what)
        read += len(expected)
    assert read > 100_000  # the reads held rows, not only the empty one


def test_a_bad_argument_is_the_same_value_error_on_postgresql(on_both: tuple[MarketReader, MarketReader]) -> None:
    for call in (lambda r: r.candles("NOPE", "1h", START_MS), lambda r: r.candles(None, "2m", START_MS),
                 lambda r: r.features(None, NOW_MS, START_MS), lambda r: r.frame("BTC", "1h", START_MS, as_of="yesterday")):
        errors = []
        for reader in on_both:
            with pytest.raises(ValueError) as raised:
                call(reader)
            errors.append(str(raised.value))
        assert errors[0] == errors[1]


def test_reads_from_threads_on_postgresql_equal_the_same_reads_in_turn(on_both: tuple[MarketReader, MarketReader]) -> None:
    """One connection per thread, each in its own snapshot."""
    from concurrent.futures import ThreadPoolExecutor

    _, postgres = on_both
    calls = [lambda r, i=interval: r.candles(None, i, START_MS, as_of=NOW_MS - DAY_MS) for interval in ("1m", "5m", "1h", "1d")] * 3
    alone = [call(postgres) for call in calls]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda call: call(postgres), calls))
    for one, other in zip(alone, together, strict=True):
        pd.testing.assert_frame_equal(one, other)
    assert not np.isnan(alone[0].close.to_numpy()).any()
