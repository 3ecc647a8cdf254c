"""The features job's tests run on both engines: ``conn`` is a SQLite memory, then a PostgreSQL one."""

from __future__ import annotations

import pytest

from market_assets.memory.connection import MemoryConnection
from tests.postgres.reuse import memory_target, reused_postgres

__all__ = ["memory_target", "reused_postgres"]  # the PostgreSQL memory reused, emptied per test


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The root conftest's ``memory_conn``: each test once per engine."""
    return memory_conn
