"""A SQLite memory's rows copied into a PostgreSQL memory, as they are.

The read tests' memories are built once through the product's writers and maintenance on SQLite
(``tests.read.seeding``); the same memory on PostgreSQL is that one copied table by table, with
the triggers off (the rows already hold what the triggers did: the queues, the stamps), so both
engines are read over exactly the same rows and every read must return exactly the same answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from market_assets.memory import connect
from market_assets.memory.target import PostgresUrl
from tests.postgres_server import PostgresServer

_IDENTITY = {"ingestion_runs": "run_id", "pending_features": "change_id"}
"""The rowid aliases, identity columns on PostgreSQL: their sequences resume after the copied ids."""


def copy_memory(source: Path, target: PostgresUrl) -> None:
    """Every row of the SQLite memory at ``source`` into the empty database at ``target`` (migrated here)."""
    connect(target).close()  # the schema
    sqlite = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
    # psycopg's own C dumpers: the memory connection's NaN-as-NULL float dumper is Python, 4x slower,
    # and a SQLite memory holds no NaN to turn into NULL.
    raw = psycopg.connect(target.libpq, autocommit=True)
    try:
        tables = [name for (name,) in sqlite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('memory_info') AND name NOT LIKE 'sqlite%'")]
        for table in tables:
            columns = ", ".join(row[1] for row in sqlite.execute(f"PRAGMA table_info({table})"))
            raw.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in sqlite.execute(f"SELECT {columns} FROM {table}"):
                    copy.write_row(row)
            raw.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        for table, column in _IDENTITY.items():
            raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"coalesce(max({column}), 0) + 1, false) FROM {table}")
        raw.execute("ANALYZE")
    finally:
        sqlite.close()
        raw.close()


@contextmanager
def on_postgres(path: Path, server: PostgresServer) -> Iterator[PostgresUrl]:
    """The SQLite memory at ``path`` copied into a fresh PostgreSQL database, dropped after."""
    url = server.create_database()
    try:
        copy_memory(path, url)
        yield url
    finally:
        server.drop_database(url)
