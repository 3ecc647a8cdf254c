"""SQL of the request-weight ledger: one host's rolling-minute budget, shared by every process.

Hyperliquid allows 1,200 weight per minute per IP, and on one machine the streamer (REST
backfills, universe polls) and the Dagster runs (funding, candle history) call it from processes
of their own, so a budget kept in each process lets them spend it twice. Each request's charge is
a row here, in a small SQLite file of the host rather than in the memory: a reservation must not
queue behind the streamer's flushes, a dry run, which leaves the memory byte-identical, still
spends real weight, and a PostgreSQL memory is shared by hosts that each have an IP, and so a
budget, of their own (the file is then in the host's folder, ``Settings.home``).

A charge counts in full from its reservation until it is settled, then until ``window_ms`` after
its settlement (the limiter's rule: never less than the server counts). A process that dies
mid-request leaves a charge never settled: it stops counting ``abandoned_ms`` after its reservation.

A dry run writes nothing anywhere, this file included: inside :func:`private_weight_ledger` the
charges go to an in-memory copy of the ledger, seeded with the charges the file holds, so the
dry run still stays inside what the other processes left of the budget.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import NamedTuple

from market_assets.memory.connection import (
    BUSY_TIMEOUT_SEC,
    enable_wal,
    open_reader,
    write_transaction,
)
from market_assets.memory.target import MemoryTarget, PostgresUrl

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS weight_charges (
        charge_id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        weight INTEGER NOT NULL,
        reserved_at_ms INTEGER NOT NULL,
        settled_at_ms INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS weight_charges_by_host ON weight_charges (host, settled_at_ms)",
)


class Admission(NamedTuple):
    charge_id: int | None
    """The charge recorded for the request; ``None`` when the budget had no room for it."""
    room_at_ms: int | None
    """When refused: the first moment a settled charge leaves the window (``None``: only
    requests still in flight hold the budget, so room comes when one of them settles)."""


POSTGRES_LEDGER_NAME = "hyperliquid.weight"
"""The ledger's file in the host's folder when the memory is a PostgreSQL database."""


def weight_ledger_path(target: MemoryTarget, home: Path) -> Path:
    """This host's ledger: beside a SQLite memory (``market.db`` -> ``market.db.weight``), which
    is one host's; in the host's own folder ``home`` (``Settings.home``) when the memory is a
    PostgreSQL database that many hosts share, since each host's IP has its own budget."""
    if isinstance(target, PostgresUrl):
        return home / POSTGRES_LEDGER_NAME
    return target.with_name(f"{target.name}.weight")


_PRIVATE: ContextVar[tuple[Path, str] | None] = ContextVar("private_weight_ledger", default=None)
"""(ledger file, URI of its in-memory copy) while a dry run is in progress in this context."""


@contextmanager
def private_weight_ledger(target: MemoryTarget, home: Path) -> Iterator[None]:
    """Within this block (and the tasks and threads it starts), charges against this host's
    ledger (:func:`weight_ledger_path`) go to an in-memory copy of it that vanishes at the end;
    the file is only read.

    The copy lives in SQLite's ``memdb`` VFS: one database shared by this process's connections,
    with ordinary locking (the busy timeout applies, unlike a shared-cache ``:memory:``).
    """
    path = weight_ledger_path(target, home)
    uri = f"file:/weight-{uuid.uuid4().hex}?vfs=memdb"
    keeper = sqlite3.connect(uri, uri=True, isolation_level=None)  # the copy lives while it is open
    try:
        for statement in _SCHEMA:
            keeper.execute(statement)
        keeper.executemany(
            "INSERT INTO weight_charges (host, weight, reserved_at_ms, settled_at_ms) VALUES (?, ?, ?, ?)",
            _charges_in(path),
        )
        token = _PRIVATE.set((path, uri))
        try:
            yield
        finally:
            _PRIVATE.reset(token)
    finally:
        keeper.close()


def _charges_in(path: Path) -> list[tuple[str, int, int, int | None]]:
    if not path.is_file():
        return []
    reader = open_reader(path.absolute())
    try:
        return reader.execute("SELECT host, weight, reserved_at_ms, settled_at_ms FROM weight_charges").fetchall()
    except sqlite3.OperationalError:
        return []  # a file created a moment ago, before its table
    finally:
        reader.close()


def open_weight_ledger(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the ledger file; WAL, so a reader never waits on a charge.

    Inside :func:`private_weight_ledger` for ``path``, its in-memory copy instead.
    """
    private = _PRIVATE.get()
    if private is not None and private[0] == path:
        conn = sqlite3.connect(private[1], uri=True, timeout=BUSY_TIMEOUT_SEC, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SEC * 1000)}")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SEC, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SEC * 1000)}")
        enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        for statement in _SCHEMA:
            conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    return conn


def admit(
    conn: sqlite3.Connection, host: str, weight: int, *, capacity: int, now_ms: int, window_ms: int, abandoned_ms: int
) -> Admission:
    """Record a charge of ``weight`` if the host's rolling window has room for it, in one transaction."""
    with write_transaction(conn):
        conn.execute(
            "DELETE FROM weight_charges WHERE host = ? AND (settled_at_ms <= ? "
            "OR (settled_at_ms IS NULL AND reserved_at_ms <= ?))",
            (host, now_ms - window_ms, now_ms - abandoned_ms),
        )
        used, oldest_settled = conn.execute(
            "SELECT coalesce(sum(weight), 0), min(settled_at_ms) FROM weight_charges WHERE host = ?", (host,)
        ).fetchone()
        if used + weight > capacity:
            return Admission(None, None if oldest_settled is None else oldest_settled + window_ms + 1)
        cursor = conn.execute(
            "INSERT INTO weight_charges (host, weight, reserved_at_ms) VALUES (?, ?, ?)", (host, weight, now_ms)
        )
        return Admission(cursor.lastrowid, None)


def settle(conn: sqlite3.Connection, charge_id: int, weight: int, now_ms: int) -> None:
    """The request is answered: its charge is what the server counted, from now."""
    conn.execute(
        "UPDATE weight_charges SET weight = ?, settled_at_ms = ? WHERE charge_id = ?", (weight, now_ms, charge_id)
    )


def used_weight(conn: sqlite3.Connection, host: str, now_ms: int, window_ms: int, abandoned_ms: int) -> int:
    """Weight the host's rolling window holds at ``now_ms``, requests in flight included."""
    return int(
        conn.execute(
            "SELECT coalesce(sum(weight), 0) FROM weight_charges WHERE host = ? AND (settled_at_ms > ? "
            "OR (settled_at_ms IS NULL AND reserved_at_ms > ?))",
            (host, now_ms - window_ms, now_ms - abandoned_ms),
        ).fetchone()[0]
    )
