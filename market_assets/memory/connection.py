"""The one connection factory for the market memory: a SQLite file in WAL mode, or PostgreSQL.

A target (``MARKET_DB``, ``--db``) is a path or a ``postgresql://`` URL
(:mod:`market_assets.memory.target`); the PostgreSQL connection and how it keeps SQLite's
meaning (one writer at a time, snapshots, busy errors) are in :mod:`market_assets.memory.postgres`.
The rest of this docstring is about SQLite.

Every process (streamer, Dagster runs, API, CLI) opens the memory here, so every connection
carries the same pragmas: WAL so readers never block the single writer, ``synchronous=NORMAL``
(durable at each checkpoint, 20x the per-commit rate of FULL: peers.md §3), and a busy timeout
long enough that a competing writer's short transaction is waited out instead of failing with
``database is locked``. Write transactions begin ``IMMEDIATE``: a deferred transaction that
upgrades from read to write inside WAL gets ``SQLITE_BUSY`` at once, without the busy handler.
The switch to WAL can meet the same answer when processes open a file at the same moment, so
:func:`enable_wal` retries it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from market_assets.clock import Clock, wall_clock_ms
from market_assets.memory.dialect import Dialect, dialect_of
from market_assets.memory.errors import (
    MarketMemoryError,
    MemoryBusyError,
    MemoryMissingError,
)
from market_assets.memory.schema import SCHEMA_VERSION, migrate, refuse_newer_schema
from market_assets.memory.target import (
    MemoryTarget,
    PostgresUrl,
    describe,
    parse_target,
)

if TYPE_CHECKING:
    from market_assets.memory.postgres import PostgresConnection

BUSY_TIMEOUT_SEC = 10.0
"""How long a connection waits for another process's write lock before giving up."""

ANALYSIS_LIMIT = 400
"""Rows sampled per index by ``PRAGMA optimize`` (SQLite's recommended bound for short connections)."""

_SQLITE_HEADER = b"SQLite format 3\x00"


class Cursor(Protocol):
    """What the memory reads from a statement, on either engine."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class MemoryConnection(Protocol):
    """A connection to the memory: ``sqlite3.Connection`` or :class:`PostgresConnection`."""

    def execute(self, sql: str, params: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Any, /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


def connect(
    target: MemoryTarget | str, *, clock: Clock = wall_clock_ms, readonly: bool = False, any_thread: bool = False
) -> Any:
    """Open (creating and migrating if needed) the memory at ``target``: a SQLite file, or a
    PostgreSQL database (which must exist; its tables are created and migrated here).

    Refuses, without writing a byte, a file that is not SQLite or that a newer version of this
    program has migrated; raises :class:`MarketMemoryError` with a one-line reason.
    ``readonly`` opens an existing, current memory that this connection cannot change at all
    (every reader's and a dry run's promise to write nothing); it creates nothing, and raises
    :class:`MemoryMissingError` when there is no memory at ``path``. ``any_thread`` lets another
    thread than the opening one use (or close) the connection; never two at once.
    """
    target = parse_target(target)
    if isinstance(target, PostgresUrl):
        return _connect_postgres(target, clock, readonly, any_thread)
    path = target
    _check_existing_file(path)
    if readonly:
        return _connect_readonly(path, any_thread)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MarketMemoryError(
            f"cannot create the directory of the market memory {path}: {exc.strerror}"
        ) from exc
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SEC, isolation_level=None, check_same_thread=not any_thread)
    except sqlite3.Error as exc:
        raise MarketMemoryError(f"cannot open the market memory {path}: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SEC * 1000)}")
        refuse_newer_schema(conn)  # before switching to WAL, which rewrites the file header
        mode = enable_wal(conn)
        if mode != "wal":
            raise MarketMemoryError(f"the market memory {path} cannot use WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, clock())
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_busy(exc):
            raise busy_error(path) from exc
        raise MarketMemoryError(f"cannot use the market memory {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_postgres(target: PostgresUrl, clock: Clock, readonly: bool, any_thread: bool) -> PostgresConnection:
    # Imported here: psycopg costs ~300 ms to import, which no SQLite process should pay.
    import psycopg

    from market_assets.memory import postgres

    conn = postgres.connect_postgres(target, readonly=readonly, any_thread=any_thread)
    try:
        if readonly:
            version = refuse_newer_schema(conn)
            if version == 0:
                raise MemoryMissingError(f"no market memory at {target.redacted}: the database has no market tables")
            if version != SCHEMA_VERSION:
                raise MarketMemoryError(
                    f"the market memory {target.redacted} has schema version {version}; "
                    "open it once for writing to migrate it"
                )
        else:
            migrate(conn, clock())
    except psycopg.Error as exc:
        conn.close()
        if is_busy(exc):
            raise busy_error(target) from exc
        raise MarketMemoryError(f"cannot use the market memory {target.redacted}: {postgres.first_line(exc)}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def enable_wal(conn: sqlite3.Connection) -> str:
    """Put the file in WAL mode (it stays so); returns the journal mode SQLite reports.

    The switch needs the file to itself. When another connection is opening or closing it at the
    same moment (two processes starting, the last connection deleting its ``-wal``), SQLite
    answers ``SQLITE_BUSY`` without calling the busy handler, since waiting could deadlock both;
    so the switch is retried, jittered, for as long as a write lock would be waited for.
    """
    switch = Retrying(
        retry=retry_if_exception(is_busy),
        stop=stop_after_delay(BUSY_TIMEOUT_SEC),
        wait=wait_random(0.002, 0.02),
        reraise=True,
    )
    return str(switch(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])).lower()


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's ``database is locked`` (a busy timeout ran out), or
    PostgreSQL's write lock waited for past its lock timeout."""
    if isinstance(exc, sqlite3.OperationalError):
        return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    psycopg = sys.modules.get("psycopg")  # not loaded: no PostgreSQL connection raised it
    return psycopg is not None and isinstance(exc, psycopg.errors.LockNotAvailable)


def is_refused_value(exc: BaseException) -> bool:
    """Whether ``exc`` is the memory refusing one row's values (a constraint, a value of the wrong
    type or out of range) rather than the memory failing: the row is set aside, the rest kept."""
    if isinstance(exc, (sqlite3.IntegrityError, sqlite3.InterfaceError, OverflowError, ValueError, TypeError)):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, (psycopg.IntegrityError, psycopg.DataError))


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from the database engine (``sqlite3.DatabaseError``, or ``psycopg.Error``
    when psycopg is loaded): the connection that raised it may be unusable, drop it."""
    if isinstance(exc, sqlite3.DatabaseError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


def busy_error(target: MemoryTarget) -> MemoryBusyError:
    """The one-line error for a write lock that another process held past the busy timeout."""
    return MemoryBusyError(
        f"the market memory {describe(target)} is busy: another process has held its write lock for over "
        f"{BUSY_TIMEOUT_SEC:g} s; try again"
    )


def open_reader(path: Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """A connection to the existing SQLite file at ``path`` that can neither change it nor leave a
    file behind; raises ``sqlite3.Error`` as SQLite does.

    A read-only (``mode=ro``) connection to a WAL file with no writer attached creates the
    ``-wal`` and ``-shm`` files and, being read-only, cannot delete them on close. So when there
    is no ``-wal`` (no writer is attached, nothing waits to be checkpointed) the file is opened
    read-write with ``PRAGMA query_only``: SQLite removes its own ``-wal``/``-shm`` when this
    last connection closes, and every statement that would change the file is refused. With a
    ``-wal`` present, ``mode=ro`` shares the writer's files and leaves them as they were. (A
    long-lived reader opened the first way that outlives every writer checkpoints, as it closes,
    what they committed to the WAL: SQLite's own housekeeping, no content of its own.)
    """
    mode = "ro" if Path(f"{path}-wal").exists() or not os.access(path, os.W_OK) else "rw"
    conn = sqlite3.connect(
        f"{path.as_uri()}?mode={mode}", uri=True, timeout=BUSY_TIMEOUT_SEC, isolation_level=None,
        check_same_thread=not any_thread,
    )
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SEC * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_readonly(path: Path, any_thread: bool) -> sqlite3.Connection:
    if not path.is_file():
        raise MemoryMissingError(f"no market memory at {path}")
    try:
        conn = open_reader(path.absolute(), any_thread=any_thread)
    except sqlite3.Error as exc:
        raise MarketMemoryError(f"cannot read the market memory {path}: {exc}") from exc
    try:
        version = refuse_newer_schema(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise MarketMemoryError(f"cannot read the market memory {path}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    if version != SCHEMA_VERSION:
        conn.close()
        raise MarketMemoryError(
            f"the market memory {path} has schema version {version}; open it once for writing to migrate it"
        )
    return conn


@contextmanager
def open_memory(path: MemoryTarget | str, *, clock: Clock = wall_clock_ms, readonly: bool = False) -> Iterator[Any]:
    """A connection for the length of a ``with`` block, optimized and closed on the way out.

    ``PRAGMA optimize`` before closing keeps planner statistics current; without them the
    dashboard's time-window queries are full scans (850 ms vs 3.3 ms at 10M rows, peers.md §3).
    A read-only connection is closed as it is: it may not write statistics either.
    ``database is locked`` leaving the block becomes :class:`MemoryBusyError` naming the memory.
    """
    target = parse_target(path)
    conn = connect(target, clock=clock, readonly=readonly)
    try:
        yield conn
    except Exception as exc:
        if is_busy(exc):
            raise busy_error(target) from exc
        raise
    finally:
        if readonly or dialect_of(conn) is Dialect.POSTGRES:
            conn.close()
        else:
            close(conn)


def is_lost(conn: MemoryConnection, exc: BaseException) -> bool:
    """Whether ``exc`` left ``conn`` unusable: a PostgreSQL connection the server or the network
    closed (a SQLite connection, a file, is never lost)."""
    if dialect_of(conn) is not Dialect.POSTGRES:
        return False
    psycopg = sys.modules["psycopg"]
    return isinstance(exc, psycopg.OperationalError) and cast("PostgresConnection", conn).lost


def close_any(conn: MemoryConnection) -> None:
    """Close a connection as :func:`open_memory` does: SQLite's updates its statistics first."""
    if isinstance(conn, sqlite3.Connection):
        close(conn)
    else:
        conn.close()


def close(conn: sqlite3.Connection) -> None:
    try:
        conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
        conn.execute("PRAGMA optimize")
    except sqlite3.Error:
        pass  # statistics are an optimisation; a busy or read-only memory must still close
    finally:
        conn.close()


@contextmanager
def snapshot(conn: Any) -> Iterator[Any]:
    """One read transaction: every statement inside sees the same state of the memory (WAL on
    SQLite, a repeatable-read transaction on PostgreSQL)."""
    if dialect_of(conn) is Dialect.POSTGRES:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    else:
        conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


@contextmanager
def pipelined(conn: MemoryConnection) -> Iterator[None]:
    """On PostgreSQL, the statements of the block are sent without waiting for each answer
    (psycopg's pipeline mode: one round trip), and an error of any of them is raised as the block
    ends; on SQLite, in process, nothing to save: the block runs as it is."""
    if dialect_of(conn) is Dialect.POSTGRES:
        with cast("PostgresConnection", conn).raw.pipeline():
            yield
    else:
        yield


_WRITING: set[int] = set()
"""The connections (``id``) inside a write transaction, while it is open."""


@contextmanager
def write_transaction(conn: Any) -> Iterator[Any]:
    """One short write transaction: everything inside commits together or not at all, and no
    other writer runs meanwhile (SQLite's write lock; PostgreSQL's advisory write lock).

    Begun inside another on the same connection, it joins that one: its changes commit or roll
    back with the enclosing transaction's (so a caller can make several writes one, as the
    streamer does with a ledger window and the marker of the next)."""
    if id(conn) in _WRITING:
        yield conn
        return
    if dialect_of(conn) is Dialect.POSTGRES:
        conn.begin_write()
    else:
        conn.execute("BEGIN IMMEDIATE")
    _WRITING.add(id(conn))
    try:
        yield conn
    except BaseException:
        _WRITING.discard(id(conn))
        conn.execute("ROLLBACK")
        raise
    _WRITING.discard(id(conn))
    conn.execute("COMMIT")


def _check_existing_file(path: Path) -> None:
    if path.is_dir():
        raise MarketMemoryError(f"the market memory path {path} is a directory, not a file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise MarketMemoryError(f"cannot read the market memory {path}: {exc.strerror}") from exc
    if header and header != _SQLITE_HEADER:
        raise MarketMemoryError(f"{path} is not a SQLite database; refusing to touch it")
