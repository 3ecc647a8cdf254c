from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection, close
from market_assets.memory.target import MemoryTarget, PostgresUrl
from market_assets.replay import ReplayConfig, ReplayServers
from market_assets.sources.timing import AcceleratedClock
from tests.postgres_server import PostgresServer, running_server

MARKET = Path(sys.executable).parent / "market"
"""The installed console script, run as a subprocess like an operator would."""


class FrozenClock:
    """A clock the test moves by hand (epoch milliseconds)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, *, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


T0_MS = 1_795_000_000_000
"""An arbitrary fixed instant (2026-11-18) the injected clocks start from."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def replay_speed() -> float:
    """How many times faster than real time the replay runs; a test package may override it."""
    return 1000.0


@pytest.fixture
def replay_clock(replay_speed: float) -> AcceleratedClock:
    return AcceleratedClock(replay_speed, T0_MS)


@pytest.fixture
async def replay(replay_clock: AcceleratedClock) -> AsyncIterator[ReplayServers]:
    """The loopback replay servers on the running event loop, sharing ``replay_clock``."""
    async with ReplayServers(ReplayConfig(clock=replay_clock, tick_s=5.0)) as servers:
        yield servers


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0_MS)


@pytest.fixture
def memory_path(tmp_path: Path) -> Path:
    return tmp_path / "memory" / "market.db"


@pytest.fixture
def conn(memory_path: Path, clock: FrozenClock) -> Iterator[sqlite3.Connection]:
    connection = connect(memory_path, clock=clock)
    yield connection
    close(connection)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server per test process (tests/postgres_server.py), started on first use."""
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[PostgresUrl]:
    """A fresh, empty database for one test, dropped after it."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def memory_target(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryTarget:
    """The memory of a contract test, once on each backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "memory" / "market.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def memory_conn(memory_target: MemoryTarget, clock: FrozenClock) -> Iterator[MemoryConnection]:
    """A connection to a fresh memory, once on each backend (``memory_target``). A contract test
    module runs its ``conn`` tests on both with ``conn = memory_conn`` under its own name."""
    connection = connect(memory_target, clock=clock)
    yield connection
    close_memory(connection)


def close_memory(connection: MemoryConnection) -> None:
    """Close as the program does: SQLite optimizes its statistics first."""
    if isinstance(connection, sqlite3.Connection):
        close(connection)
    else:
        connection.close()
