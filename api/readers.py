"""The API's connections to the memory: read-only, one per worker thread, kept open for the app's life.

Read-only (SQLite ``mode=ro``; on PostgreSQL ``default_transaction_read_only``): the API never creates, migrates or changes the memory. With no
memory at the path yet, or one a writer has not migrated, :meth:`Readers.connection` raises
:class:`~market_assets.memory.MarketMemoryError` (503 with the reason, ``api.errors``) and the
next request tries again, so the API starts before the first writer and serves once it has run.

Opening a connection runs the connection factory's pragmas and schema check and closing it runs
``PRAGMA optimize``: ~0.4 ms, more than the health evaluation itself (0.06 ms), which held the
health endpoint to 0.3x the requests/s of a hello-world endpoint (bench/api.py). SQLite
connections belong to the thread that opened them, so each of the server's worker threads (and
the event loop's, which serves health) keeps its own (``threading.local``); one per app instance, none shared between apps. A connection
that raised a database error is dropped, so the next request opens a fresh one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection, is_database_error
from market_assets.memory.target import MemoryTarget


class Readers:
    def __init__(self, path: MemoryTarget) -> None:
        self.path = path
        self._local = threading.local()

    @contextmanager
    def connection(self) -> Iterator[MemoryConnection]:
        conn: MemoryConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path, readonly=True)
        try:
            yield conn
        except Exception as exc:
            if not is_database_error(exc):
                raise
            self._local.conn = None
            conn.close()
            raise
