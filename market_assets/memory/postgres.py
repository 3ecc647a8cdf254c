"""The market memory on PostgreSQL: a connection that speaks the memory's SQL as SQLite's does.

Every statement of ``market_assets.memory`` is written once, in the dialect SQLite and
PostgreSQL share (``INSERT … ON CONFLICT … DO UPDATE``, ``RETURNING``, window functions); the
few that differ pick their text by :func:`market_assets.memory.dialect.dialect_of`. What stays
the same for every caller is the connection's surface, so the modules above the memory never
know which engine holds it: :class:`PostgresConnection` offers the calls of ``sqlite3`` that the
memory uses (``execute``, ``executemany``, ``in_transaction``, ``close``) over psycopg 3, and
translates the qmark (``?``) and named (``:name``) parameters of the shared text into psycopg's
``%s`` / ``%(name)s`` once per statement text.

Why psycopg 3 rather than SQLAlchemy Core: the SQL is already written and tested as text, and
what the hot path needs is psycopg's own pipelined ``executemany`` and ``COPY``; an expression
layer would rewrite every statement for no gain in either engine.

Writers are serialized as SQLite serializes them (one write transaction at a time, waited for
up to :data:`BUSY_TIMEOUT_SEC`): :meth:`PostgresConnection.begin_write` takes a transaction-scoped advisory lock, so
every read-modify-write of the memory (the ledger, the queues, the repair bookkeeping) keeps the
meaning it has on SQLite, on any number of hosts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.types.numeric import FloatDumper

from market_assets.memory.errors import MarketMemoryError, MemoryMissingError
from market_assets.memory.target import PostgresUrl

BUSY_TIMEOUT_SEC = 10.0
"""How long a writer waits for another's write lock (``lock_timeout``), as on SQLite."""

WRITE_LOCK_KEY = 0x6D61726B6574  # "market"
"""The advisory lock every write transaction holds: one writer at a time, as in SQLite."""

CONNECT_TIMEOUT_SEC = 10

_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|--[^\n]*|\?|(?<![:\w]):([A-Za-z_]\w*)|%")


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """The shared SQL text with psycopg's placeholders: ``?`` → ``%s``, ``:name`` →
    ``%(name)s``, a literal ``%`` → ``%%``; quoted text, comments and ``::`` casts are kept."""

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if match.group(1) is not None:
            return f"%({match.group(1)})s"
        return text.replace("%", "%%") if text[0] in "'\"-" else text

    return _TOKEN.sub(token, sql)


class _BoolAsInteger(Dumper):
    """Booleans are stored as 0/1 integers, as SQLite stores them (flags are INTEGER columns)."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _NaNAsNull(FloatDumper):
    """NaN is sent as NULL, as sqlite3 stores it: a NOT NULL column refuses it and a nullable
    one keeps NULL, on both engines (PostgreSQL would store NaN in a float column)."""

    def dump(self, obj: float) -> Buffer | None:
        return None if math.isnan(obj) else super().dump(obj)


class _NumericAsNumber(Loader):
    """``numeric`` results (PostgreSQL's ``sum`` of integers, ``avg``) as ``int`` or ``float``,
    the types SQLite returns for the same expressions, never ``Decimal``."""

    def load(self, data: Any) -> int | float:
        text = bytes(data)
        try:
            return int(text)
        except ValueError:
            return float(text)


class PostgresConnection:
    """One psycopg connection in autocommit mode, used as the memory uses a ``sqlite3`` one:
    statements outside ``BEGIN``/``COMMIT`` commit alone, and transactions are opened and ended
    by the memory's own helpers (:func:`market_assets.memory.connection.write_transaction`)."""

    dialect = "postgres"

    def __init__(self, raw: psycopg.Connection[Any], target: PostgresUrl) -> None:
        self.raw = raw
        self.target = target

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> psycopg.Cursor[Any]:
        if not params:  # sent as written: psycopg reads placeholders (and %%) only with parameters
            return self.raw.execute(sql, None, prepare=False)
        return self.raw.execute(translate(sql), params, prepare=False)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> psycopg.Cursor[Any]:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), rows)
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()

    @property
    def lost(self) -> bool:
        """The server or the network closed the connection: it must be opened again."""
        return bool(self.raw.closed or self.raw.broken)

    def begin_write(self) -> None:
        """Open a write transaction holding the memory's write lock (waits up to the lock timeout)."""
        try:
            self.raw.execute(_BEGIN_WRITE)  # one round trip: no parameters, so one simple query
        except BaseException:
            self.execute("ROLLBACK")  # a lock waited for in vain leaves no transaction behind
            raise


def connect_postgres(target: PostgresUrl, *, readonly: bool = False, any_thread: bool = False) -> PostgresConnection:
    """A connection to the database at ``target`` (which must exist: databases are created by
    their operator, not by this program). ``readonly`` refuses every change in the server itself
    (``default_transaction_read_only``). ``any_thread`` is accepted for symmetry with SQLite:
    a psycopg connection may be used from any one thread at a time."""
    del any_thread
    options = f"-c lock_timeout={int(BUSY_TIMEOUT_SEC * 1000)} -c TimeZone=UTC"
    if readonly:
        options += " -c default_transaction_read_only=on"
    try:
        raw = psycopg.connect(
            target.libpq, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SEC, options=options,
            application_name="market",
        )
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            raise MemoryMissingError(f"no market memory at {target.redacted}: {first_line(exc)}") from exc
        raise MarketMemoryError(f"cannot open the market memory {target.redacted}: {first_line(exc)}") from exc
    raw.adapters.register_dumper(bool, _BoolAsInteger)
    raw.adapters.register_dumper(float, _NaNAsNull)
    raw.adapters.register_loader("numeric", _NumericAsNumber)
    return PostgresConnection(raw, target)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg's carry DETAIL and HINT lines after it)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
