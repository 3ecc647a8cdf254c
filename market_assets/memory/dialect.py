"""Which engine holds a connection, for the few statements whose text differs between them.

Most of the memory's SQL is one text for both engines. Where they differ (DDL types, triggers,
``PRAGMA``, JSON access), a module keeps both texts side by side and picks one with
:func:`dialect_of`, or with :func:`pick`.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


def dialect_of(conn: Any) -> Dialect:
    """The engine behind a memory connection."""
    return Dialect.SQLITE if isinstance(conn, sqlite3.Connection) else Dialect(conn.dialect)


def pick(conn: Any, *, sqlite: T, postgres: T) -> T:
    """``sqlite`` or ``postgres``, whichever engine holds ``conn``."""
    return sqlite if dialect_of(conn) is Dialect.SQLITE else postgres


ORDERED_JOIN: dict[Dialect, str] = {Dialect.SQLITE: "CROSS JOIN", Dialect.POSTGRES: "JOIN"}
"""The join whose left side is looped over first: SQLite's ``CROSS JOIN`` forces that order (after a
loose index scan, the coins, then a seek each); PostgreSQL's takes no ``ON`` and plans the order itself."""
