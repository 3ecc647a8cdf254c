"""One migrated PostgreSQL memory per test process, emptied for each test that takes it.

A fresh database per test costs its CREATE, the schema's migration and its DROP: 0.5-0.7 s of
setup on the 2-core test machine, for tests whose own work is a few ms. Emptying one migrated
database (``TRUNCATE`` of every table but ``memory_info``, identities restarted) costs 0.1 s and
leaves the same state: the schema, its triggers and indexes, no row. Import ``memory_target``
(and ``reused_postgres``) into a conftest to run that package's ``memory_target`` /
``memory_conn`` tests this way; schema and migration tests keep the root's fresh databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from market_assets.memory import connect
from market_assets.memory.target import MemoryTarget, PostgresUrl
from tests.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def reused_postgres(postgres_server: PostgresServer) -> Iterator[PostgresUrl]:
    """A migrated memory for the whole test process."""
    url = postgres_server.create_database()
    connect(url).close()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def memory_target(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryTarget:
    """The root conftest's ``memory_target``, its PostgreSQL memory the reused one, emptied. This
    host's folder (``MARKET_HOME``: the archive by default, beside a PostgreSQL memory) is the test's."""
    if request.param == "sqlite":
        return tmp_path / "memory" / "market.db"
    monkeypatch.setenv("MARKET_HOME", str(tmp_path / "home"))
    url: PostgresUrl = request.getfixturevalue("reused_postgres")
    empty(url)
    return url


SQLITE_ONLY = pytest.mark.parametrize("memory_target", ["sqlite"], indirect=True)
"""For a test whose fault is injected through a hook only sqlite3 has (``set_trace_callback``:
a statement seen, another connection writes before the next one)."""


def empty(url: PostgresUrl) -> None:
    """Delete every row of the memory at ``url`` but its ``memory_info`` (schema version, creation)."""
    with psycopg.connect(url.libpq, autocommit=True) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'memory_info'")]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
