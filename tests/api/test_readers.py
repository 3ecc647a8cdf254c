"""The API keeps one memory connection per worker thread and replaces one that failed."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from api.readers import Readers
from market_assets.memory.runs import memory_created_at_ms


def test_a_thread_reuses_its_connection_and_other_threads_get_their_own(memory: Path) -> None:
    readers = Readers(memory)
    with readers.connection() as first:
        pass
    with readers.connection() as again:
        assert again is first
    seen: list[sqlite3.Connection] = []

    def elsewhere() -> None:
        with readers.connection() as conn:
            seen.append(conn)
            memory_created_at_ms(conn)

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert seen and seen[0] is not first


def test_a_connection_that_raised_a_database_error_is_replaced(memory: Path) -> None:
    readers = Readers(memory)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with readers.connection() as broken:
            broken.execute("SELECT * FROM no_such_table")
    with readers.connection() as fresh:
        assert fresh is not broken
        assert memory_created_at_ms(fresh) > 0
