"""SQL of the readiness probe: is every table the registry points at present in the memory?"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def missing_tables(conn: sqlite3.Connection, tables: Iterable[str]) -> list[str]:
    """The tables of ``tables`` the memory does not have, in the order given."""
    present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [table for table in tables if table not in present]
