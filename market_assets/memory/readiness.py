"""SQL of the readiness probe: is every table the registry points at present in the memory?"""

from __future__ import annotations

from collections.abc import Iterable

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import pick

_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgres": "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
}


def table_names(conn: MemoryConnection) -> set[str]:
    """Every table the memory holds."""
    return {row[0] for row in conn.execute(pick(conn, **_TABLES))}


def missing_tables(conn: MemoryConnection, tables: Iterable[str]) -> list[str]:
    """The tables of ``tables`` the memory does not have, in the order given."""
    present = table_names(conn)
    return [table for table in tables if table not in present]
