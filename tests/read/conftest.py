from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from market_assets.read import MarketReader
from tests.conftest import FrozenClock
from tests.read.seeding import Market, seed_market
from tests.read.truth import minutes_frame


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """The seeded memory, built once and only ever read (tests that change one copy it)."""
    return seed_market(tmp_path_factory.mktemp("read") / "market.db")


@pytest.fixture(scope="session")
def minutes(market: Market) -> pd.DataFrame:
    """The market's 1-minute truth as a frame (built once: :func:`truth.expected_bars` filters it)."""
    return minutes_frame(market.history.rows())


@pytest.fixture(scope="session")
def reader(market: Market) -> Iterator[MarketReader]:
    """One reader of the market at its clock, shared (the reader is thread-safe and read-only)."""
    with MarketReader(market.path, clock=FrozenClock(market.now_ms)) as opened:
        yield opened

