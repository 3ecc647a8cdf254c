"""SQL of sharded streamers (``market stream --shard I/N``), on both engines.

A shard is one of N streamers that together follow the universe, each its own share of the coins
(``streamer.universe``). Each records its own ledger windows, marked with :data:`SHARD_KEY` in the
run metadata (as a backfill is marked with ``backfill``): health reads every shard's latest window
(:func:`latest_shard_windows`) and is ``ok`` only when each reported within the threshold.

Each shard also keeps its own open-window marker (the window a killed shard left open is recorded
``failed`` by that shard's next start, never by another shard's) and, on PostgreSQL, its own
session advisory lock: streamers on several hosts share no file to ``flock``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.dialect import pick
from market_assets.memory.runs import _COLUMNS, RunRecord, _record

SHARD_KEY = "shard"
"""Run metadata of a sharded streamer's window: the shard's ``I/N`` text."""

MAX_SHARDS = 1000
"""More shards than coins is no use; the bound keeps a shard's lock key in PostgreSQL's int4."""

_SHARD_TEXT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class ShardError(ValueError):
    """A shard that is not ``I/N`` with 0 < I <= N; one line for a person."""


@dataclass(frozen=True, order=True)
class Shard:
    index: int
    """1-based: shard ``index`` of ``count``."""
    count: int

    def __post_init__(self) -> None:
        if not 0 < self.index <= self.count <= MAX_SHARDS:
            raise ShardError(f"shard {self.index}/{self.count}: must be I/N with 0 < I <= N <= {MAX_SHARDS}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/3"`` -> shard 2 of 3; anything else raises :class:`ShardError`."""
        match = _SHARD_TEXT.fullmatch(text)
        if match is None:
            raise ShardError(f"shard {text!r}: expected I/N, e.g. 2/3 (shard 2 of 3)")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of_metadata(cls, metadata: object) -> Shard | None:
        """The shard a window's metadata names; ``None`` for an unsharded streamer's (or a
        text this version cannot read, which is then judged as unsharded)."""
        if not isinstance(metadata, str):
            return None
        try:
            return cls.parse(metadata)
        except ShardError:
            return None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


# Open-window markers -------------------------------------------------------------------------


def _open_window_key(shard: Shard) -> str:
    """Beside the unsharded streamer's ``streamer_open_window_ms`` (``memory.open_window``)."""
    return f"streamer_open_window_ms:{shard}"


def shard_open_window_ms(conn: MemoryConnection, shard: Shard) -> int | None:
    """The start of the window ``shard`` opened and has not closed, if any."""
    row = conn.execute("SELECT value FROM memory_info WHERE key = ?", (_open_window_key(shard),)).fetchone()
    return None if row is None else int(row[0])


def mark_shard_open_window(conn: MemoryConnection, shard: Shard, started_at_ms: int) -> None:
    with write_transaction(conn):
        conn.execute(
            "INSERT INTO memory_info (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_open_window_key(shard), str(started_at_ms)),
        )


def clear_shard_open_window(conn: MemoryConnection, shard: Shard) -> None:
    with write_transaction(conn):
        conn.execute("DELETE FROM memory_info WHERE key = ?", (_open_window_key(shard),))


# Latest window of each shard (health, dashboard) -----------------------------------------------

_SHARD_OF_RUN = {
    "sqlite": f"json_extract(metadata, '$.{SHARD_KEY}')",
    "postgres": f"(metadata::jsonb ->> '{SHARD_KEY}')",
}


def _newest_first_sql(shard_of_run: str, limited: bool) -> str:
    return (
        f"SELECT {shard_of_run}, {_COLUMNS} FROM ingestion_runs WHERE source = ? AND channel = ? AND started_at_ms >= ?"
        " ORDER BY started_at_ms DESC, run_id DESC" + (" LIMIT ?" if limited else "")
    )


_NEWEST_FIRST = {
    (dialect, limited): _newest_first_sql(expr, limited) for dialect, expr in _SHARD_OF_RUN.items() for limited in (True, False)
}

WINDOWS_FIRST_READ = 3
"""Windows per shard read first (newest first): the latest of every shard is among them while all
report each minute; the rest of the range is read only when one is not."""


def latest_shard_windows(
    conn: MemoryConnection, source: str, channel: str, since_ms: int, count: int
) -> dict[Shard, RunRecord]:
    """The latest window of each shard of ``count`` that started one at or after ``since_ms``;
    windows of another layout are passed over.

    Health reads this per request: the channel's newest ``WINDOWS_FIRST_READ * count`` runs (a
    seek on its time index), and the whole range since ``since_ms`` only while a shard is missing
    from them.
    """
    engine = pick(conn, sqlite="sqlite", postgres="postgres")
    first = _latest_of(conn.execute(_NEWEST_FIRST[engine, True], (source, channel, since_ms, WINDOWS_FIRST_READ * count)), count)
    if len(first) == count:
        return first
    return _latest_of(conn.execute(_NEWEST_FIRST[engine, False], (source, channel, since_ms)), count)


def _latest_of(rows: Iterable[Any], count: int) -> dict[Shard, RunRecord]:
    """The first row of each shard of ``count`` in ``rows`` (newest first)."""
    latest: dict[Shard, RunRecord] = {}
    for row in rows:
        shard = Shard.of_metadata(row[0])
        if shard is not None and shard.count == count and shard not in latest:
            latest[shard] = _record(tuple(row[1:]))
            if len(latest) == count:
                break
    return dict(sorted(latest.items()))


# PostgreSQL: one streamer per shard across hosts -----------------------------------------------

STREAMER_LOCK_CLASS = 0x6D6B7473
"""First half of every streamer advisory lock key (``'mkts'``). Two-int4 keys live apart from the
single-bigint key of the memory's write lock (``memory.postgres.WRITE_LOCK_KEY``)."""

LAYOUT_LOCK = 0
"""Second half of the lock that keeps an unsharded streamer (exclusive) and shards (shared) apart."""


def shard_lock_key(shard: Shard) -> int:
    """Second half of ``shard``'s own lock: distinct for every I/N (I <= N <= 1000)."""
    return shard.count * MAX_SHARDS + shard.index


def shard_of_lock_key(key: int) -> Shard:
    return Shard(key % MAX_SHARDS, key // MAX_SHARDS)


def try_streamer_lock(conn: MemoryConnection, key: int, *, shared: bool = False) -> bool:
    """Take the session advisory lock ``(STREAMER_LOCK_CLASS, key)`` if free; held until the
    session ends, however the process ends (the server drops a dead client's session)."""
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    return bool(conn.execute(f"SELECT {function}(?, ?)", (STREAMER_LOCK_CLASS, key)).fetchone()[0])


LOCK_KEEPALIVE = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
"""The server's TCP keepalives on a lock's session: a host that dies without closing its socket
(power, network) has its locks released in about a minute, not after the kernel's two hours, so
its shard can be started on another host."""


def hold_session(conn: MemoryConnection, name: str) -> None:
    """Prepare a lock's session: named ``name`` (``application_name``, what
    :func:`streamer_lock_holders` reports) and kept alive by :data:`LOCK_KEEPALIVE`."""
    conn.execute("SELECT set_config('application_name', ?, false)", (name[:63],))
    for setting, value in LOCK_KEEPALIVE.items():
        conn.execute("SELECT set_config(?, ?, false)", (setting, str(value)))


def streamer_lock_holders(conn: MemoryConnection) -> list[tuple[int, str]]:
    """``(key, application_name)`` of every streamer lock held now, on any host; takes no lock."""
    rows = conn.execute(
        "SELECT l.objid::bigint, COALESCE(a.application_name, '') FROM pg_locks AS l"
        " LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted AND l.classid::bigint = ?"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " ORDER BY 1, 2",
        (STREAMER_LOCK_CLASS,),
    ).fetchall()
    return [(int(key), str(name)) for key, name in rows]
