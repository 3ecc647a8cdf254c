from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from market_assets.memory.target import MemoryTarget, PostgresUrl
from market_assets.read import MarketReader
from tests.conftest import FrozenClock
from tests.postgres.memory_copy import on_postgres
from tests.postgres_server import PostgresServer
from tests.read.seeding import Market, seed_market
from tests.read.truth import minutes_frame

BOTH_ENGINES = pytest.mark.parametrize("reader", ["sqlite", "postgres"], indirect=True)
"""A read test run on each engine: ``reader`` reads the seeded market from its SQLite file, then
from the same rows in PostgreSQL. The representative tests carry it; the rest read SQLite only."""


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """The seeded memory, built once and only ever read (tests that change one copy it)."""
    return seed_market(tmp_path_factory.mktemp("read") / "market.db")


@pytest.fixture(scope="session")
def minutes(market: Market) -> pd.DataFrame:
    """The market's 1-minute truth as a frame (built once: :func:`truth.expected_bars` filters it)."""
    return minutes_frame(market.history.rows())


@pytest.fixture(scope="session")
def market_on_postgres(market: Market, postgres_server: PostgresServer) -> Iterator[PostgresUrl]:
    """The seeded market's rows in a PostgreSQL database (copied as they are, once)."""
    with on_postgres(market.path, postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def reader(request: pytest.FixtureRequest, market: Market) -> Iterator[MarketReader]:
    """One reader of the market at its clock, shared (the reader is thread-safe and read-only):
    of its SQLite file, or (``BOTH_ENGINES``) of its copy in PostgreSQL, the archive beside the file."""
    target: MemoryTarget = market.path
    if getattr(request, "param", "sqlite") == "postgres":
        target = request.getfixturevalue("market_on_postgres")
    with MarketReader(target, archive=market.path.parent / "archive", clock=FrozenClock(market.now_ms)) as opened:
        yield opened
