"""SQL of the ingestion ledger (``ingestion_runs``). The run API over it is ``market_assets.ledger``."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from market_assets.memory.connection import (
    MemoryConnection,
    pipelined,
    write_transaction,
)
from market_assets.memory.dialect import Dialect, dialect_of
from market_assets.registry import DataLocation

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RunRecord(msgspec.Struct, frozen=True):
    """One ledger row. A Struct, not a dataclass: health builds one per channel per request."""

    run_id: int
    source: str
    channel: str
    started_at_ms: int
    finished_at_ms: int | None
    status: RunStatus
    rows_written: int
    error: str | None
    retries: int
    throttles: int
    metadata_json: str = "{}"
    data_latest_ms: int | None = None
    """The channel's newest data timestamp when the run ended (``None``: none recorded)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """Decoded on demand: the health path never reads it."""
        return msgspec.json.decode(self.metadata_json, type=dict[str, Any])


_COLUMNS = (
    "run_id, source, channel, started_at_ms, finished_at_ms, status, "
    "rows_written, error, retries, throttles, metadata, data_latest_ms"
)

BACKFILL_KEY = "backfill"
"""Run metadata naming the UTC days a history backfill covers. A backfill is recorded under the
channel it fills, but it is not the channel's own cadence: health, the dashboard's last runs and
the catch-up's failure streak pass over it, so a backfill that succeeds cannot hide a failing
schedule, nor one that fails on an old day mark a live channel failed."""

OWN_RUNS_OF: dict[Dialect, str] = {
    Dialect.SQLITE: f"json_extract(metadata, '$.{BACKFILL_KEY}') IS NULL",
    Dialect.POSTGRES: f"(metadata::jsonb ->> '{BACKFILL_KEY}') IS NULL",
}
"""The condition of a channel's own runs (not backfills), per engine; read on the rows the index
seek yields, in practice the first one."""

def own_runs(conn: MemoryConnection) -> str:
    """:data:`OWN_RUNS_OF` for the engine holding ``conn``."""
    return OWN_RUNS_OF[dialect_of(conn)]


LATEST_RUN_SQL = (
    f"SELECT {_COLUMNS} FROM ingestion_runs WHERE source = ? AND channel = ? AND {OWN_RUNS_OF[Dialect.SQLITE]} "
    "ORDER BY started_at_ms DESC, run_id DESC LIMIT 1"
)
"""The latest own run of one channel on SQLite: the most recently started (ties: the later insert).
Its plan is checked by ``tests/test_memory.py``; ``bench/health.py`` times it. PostgreSQL asks
:func:`latest_runs_of` (one round trip for every channel)."""


PROCESS_KEY = "process"
"""Metadata key of a running run's owner (``{"host", "pid", "started"}``): what tells, once the
run is left ``running``, whether its process is gone. Finishing the run replaces it."""

ABANDONED = "abandoned"
"""The error that starts the text of a run reaped because its process is gone."""


def insert_running(
    conn: MemoryConnection,
    source: str,
    channel: str,
    started_at_ms: int,
    metadata: Mapping[str, Any],
) -> int:
    """Record a ``running`` run owned by this process (its :func:`this_process` in the metadata)."""
    with write_transaction(conn):
        (run_id,) = conn.execute(
            "INSERT INTO ingestion_runs (source, channel, started_at_ms, status, metadata) "
            "VALUES (?, ?, ?, 'running', ?) RETURNING run_id",
            (source, channel, started_at_ms, _json({**metadata, PROCESS_KEY: this_process()})),
        ).fetchone()
    return int(run_id)


def this_process() -> dict[str, Any]:
    """Who owns a run: host name, pid namespace (containers on one host share its name but not
    their pids), pid, and the process's start time (so a recycled pid is not taken for the owner)."""
    return {"host": socket.gethostname(), "pidns": _pid_namespace(), "pid": os.getpid(), "started": process_start(os.getpid())}


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``); ``None``
    where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])  # field 22; the name before ")" may hold spaces


def process_gone(owner: Mapping[str, Any]) -> bool | None:
    """Whether the process recorded as ``owner`` has ended: ``None`` when this host cannot tell
    (another host, or no pid recorded)."""
    here = owner.get("host") == socket.gethostname() and owner.get("pidns") == _pid_namespace()
    if not here or not isinstance(owner.get("pid"), int):
        return None
    pid = owner["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, as another user
    started = owner.get("started")
    return started is not None and process_start(pid) not in (None, started)


def reap_abandoned(
    conn: MemoryConnection,
    stale_after_ms: Mapping[tuple[str, str], int],
    now_ms: int,
    *,
    since_ms: int | None = None,
    gone: Callable[[Mapping[str, Any]], bool | None] = process_gone,
) -> list[int]:
    """Fail, with an error starting :data:`ABANDONED`, every ``running`` run of the channels in
    ``stale_after_ms`` whose process is gone, or, when ``gone`` cannot tell, that has been
    running for longer than its channel's stale window; returns their run ids.

    ``since_ms`` bounds the search to runs started since then (an index range: a channel's next
    run looks back a little, maintenance everywhere).
    """
    reaped: list[int] = []
    for (source, channel), stale_ms in stale_after_ms.items():
        rows = conn.execute(
            "SELECT run_id, started_at_ms, metadata FROM ingestion_runs WHERE source = ? AND channel = ? "
            "AND started_at_ms >= ? AND status = 'running'",
            (source, channel, since_ms if since_ms is not None else -(2**62)),
        ).fetchall()
        for run_id, started_at_ms, metadata in rows:
            why = _abandoned_because(json.loads(metadata or "{}"), now_ms - started_at_ms, stale_ms, gone)
            if why is not None and _fail_abandoned(conn, run_id, now_ms, f"{ABANDONED}: {why}"):
                reaped.append(run_id)
    return reaped


def _abandoned_because(
    metadata: Mapping[str, Any], running_ms: int, stale_ms: int, gone: Callable[[Mapping[str, Any]], bool | None]
) -> str | None:
    owner = metadata.get(PROCESS_KEY)
    if not isinstance(owner, Mapping):
        owner = {}
    verdict = gone(owner) if owner else None
    if verdict:
        return f"its process (pid {owner['pid']} on {owner['host']}) ended without finishing it"
    if verdict is None and running_ms > stale_ms:
        return (
            f"still running {running_ms // 1000}s after it started, past its channel's "
            f"{stale_ms // 1000}s stale window, and its process cannot be checked from here"
        )
    return None


def _fail_abandoned(conn: MemoryConnection, run_id: int, now_ms: int, error: str) -> bool:
    with write_transaction(conn):
        cursor = conn.execute(
            "UPDATE ingestion_runs SET status = 'failed', finished_at_ms = ?, error = ? "
            "WHERE run_id = ? AND status = 'running'",
            (now_ms, error, run_id),
        )
    return cursor.rowcount == 1


def finish(
    conn: MemoryConnection,
    run_id: int,
    *,
    status: RunStatus,
    finished_at_ms: int,
    rows_written: int,
    error: str | None,
    retries: int,
    throttles: int,
    metadata: Mapping[str, Any],
    data_latest_ms: int | None,
) -> None:
    with write_transaction(conn):
        cursor = conn.execute(
            "UPDATE ingestion_runs SET status = ?, finished_at_ms = ?, rows_written = ?, "
            "error = ?, retries = ?, throttles = ?, metadata = ?, data_latest_ms = ? "
            "WHERE run_id = ? AND status = 'running'",
            (
                status.value,
                finished_at_ms,
                rows_written,
                error,
                retries,
                throttles,
                _json(metadata),
                data_latest_ms,
                run_id,
            ),
        )
    if cursor.rowcount != 1:
        raise RuntimeError(f"ledger run {run_id} is not running; it cannot be finished twice")


def newest_data_ms(conn: MemoryConnection, data: DataLocation, since_ms: int) -> int | None:
    """The newest data timestamp of a channel's rows at or after ``since_ms`` (``None``: none).

    A table keyed (subject, …, time) is walked subject by subject (a loose index scan, then one
    seek per subject): a plain ``max`` over the time range reads every row unless planner
    statistics exist (8M feature rows: 1.2 s of every features run). A table whose time column
    leads an index (Polymarket's) is one seek; any other is read over the range.
    """
    names = (data.table, data.time_column, data.subject_column, *data.scope)
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain SQL identifier")
    scope = "".join(f"{column} = ? AND " for column in data.scope)
    time_range = f"{scope}{data.time_column} >= ?"
    if _leads_an_index(conn, data.table, data.subject_column) and not _leads_an_index(conn, data.table, data.time_column):
        subjects = _SUBJECTS.format(table=data.table, column=data.subject_column)
        statement = (
            f"{subjects} SELECT max((SELECT max({data.time_column}) FROM {data.table} "
            f"WHERE {data.subject_column} = subjects.subject AND {time_range})) FROM subjects"
        )
    else:
        statement = f"SELECT max({data.time_column}) FROM {data.table} WHERE {time_range}"
    row = conn.execute(statement, (*data.scope.values(), since_ms)).fetchone()
    return None if row[0] is None else int(row[0])


_SUBJECTS = """WITH RECURSIVE subjects (subject) AS (
        SELECT min({column}) FROM {table}
        UNION ALL
        SELECT (SELECT min({column}) FROM {table} WHERE {column} > subjects.subject)
        FROM subjects WHERE subjects.subject IS NOT NULL)"""
"""One seek per distinct value of a column that leads an index (``rollups.SUBJECTS_OF``'s walk)."""


def _leads_an_index(conn: MemoryConnection, table: str, column: str) -> bool:
    """Whether ``column`` is the first column of a whole (not partial) index of ``table``, its
    primary key included."""
    if dialect_of(conn) is Dialect.POSTGRES:
        return conn.execute(
            "SELECT 1 FROM pg_index AS i JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = ?::regclass AND i.indpred IS NULL AND a.attname = ?",
            (table, column),
        ).fetchone() is not None
    for _, name, _, _, partial in conn.execute(f"PRAGMA index_list({table})").fetchall():
        if partial:
            continue
        first = conn.execute(f"PRAGMA index_info({name})").fetchone()
        if first is not None and first[2] == column:
            return True
    return False


def latest_runs(
    conn: MemoryConnection, channels: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], RunRecord]:
    """The latest run of each (source, channel) that has one; one index seek per channel (on
    PostgreSQL all in one round trip, :func:`latest_runs_of`)."""
    keys = list(channels)
    if dialect_of(conn) is Dialect.POSTGRES:
        found = latest_runs_of(conn, [RunQuery(source, channel) for source, channel in keys])
        return {key: run for key, run in zip(keys, found, strict=True) if run is not None}
    latest: dict[tuple[str, str], RunRecord] = {}
    for key in keys:
        row = conn.execute(LATEST_RUN_SQL, key).fetchone()
        if row is not None:
            latest[key] = _record(row)
    return latest


class RunQuery(NamedTuple):
    """What :func:`latest_run` is asked: the latest own run of a channel with one of
    ``statuses``, started at or after ``since_ms``."""

    source: str
    channel: str
    statuses: tuple[RunStatus, ...] = tuple(RunStatus)
    since_ms: int | None = None


def latest_runs_of(conn: MemoryConnection, queries: Sequence[RunQuery]) -> list[RunRecord | None]:
    """:func:`latest_run`'s answer to each query, in order. On PostgreSQL the seeks go in one
    round trip (pipelined), each planned for its own values: the dashboard asks 28, and one by one
    their round trips were 12 of its 33 ms (``bench/postgres.py``'s memory); as one LATERAL
    statement the generic plan read every run of each channel and sorted them, slower still."""
    if dialect_of(conn) is not Dialect.POSTGRES:  # in process: no round trip to save
        return [_first_record(_latest_run_cursor(conn, query)) for query in queries]
    with pipelined(conn):
        cursors = [_latest_run_cursor(conn, query) for query in queries]
    return [_first_record(cursor) for cursor in cursors]


def _first_record(cursor: Any) -> RunRecord | None:
    row = cursor.fetchone()
    return None if row is None else _record(row)


def _since(since_ms: int | None) -> int:
    return since_ms if since_ms is not None else -(2**62)


def latest_run(
    conn: MemoryConnection,
    source: str,
    channel: str,
    *,
    statuses: Collection[RunStatus] = tuple(RunStatus),
    since_ms: int | None = None,
) -> RunRecord | None:
    """The most recently started run of one channel with one of ``statuses``, started at or
    after ``since_ms``; the same index seek as :data:`LATEST_RUN_SQL`."""
    return _first_record(_latest_run_cursor(conn, RunQuery(source, channel, tuple(statuses), since_ms)))


def _latest_run_cursor(conn: MemoryConnection, query: RunQuery) -> Any:
    marks = ", ".join("?" for _ in query.statuses)
    return conn.execute(
        f"SELECT {_COLUMNS} FROM ingestion_runs WHERE source = ? AND channel = ? AND started_at_ms >= ? "
        f"AND status IN ({marks}) AND {own_runs(conn)} ORDER BY started_at_ms DESC, run_id DESC LIMIT 1",
        (query.source, query.channel, _since(query.since_ms), *(s.value for s in query.statuses)),
    )


def get_run(conn: MemoryConnection, run_id: int) -> RunRecord | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM ingestion_runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _record(row)


def runs_of(conn: MemoryConnection, source: str, channel: str) -> list[RunRecord]:
    """Every run of one channel, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ingestion_runs WHERE source = ? AND channel = ? "
        "ORDER BY started_at_ms, run_id",
        (source, channel),
    ).fetchall()
    return [_record(row) for row in rows]


def runs_after(
    conn: MemoryConnection, source: str, channel: str, after_run_id: int, limit: int
) -> list[RunRecord]:
    """Runs of one channel recorded after ``after_run_id``, in the order they started.

    A range on the rowid: the cost follows the runs recorded since the cursor, not the ledger size.
    """
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ingestion_runs WHERE run_id > ? AND source = ? AND channel = ? "
        "ORDER BY run_id LIMIT ?",
        (after_run_id, source, channel, limit),
    ).fetchall()
    return [_record(row) for row in rows]


def memory_created_at_ms(conn: MemoryConnection) -> int:
    row = conn.execute("SELECT value FROM memory_info WHERE key = 'created_at_ms'").fetchone()
    return int(row[0])


def _json(metadata: Mapping[str, Any]) -> str:
    return json.dumps(metadata, separators=(",", ":"), sort_keys=True, default=str)


_STATUS = {status.value: status for status in RunStatus}


def _record(row: tuple[Any, ...]) -> RunRecord:
    run_id, source, channel, started, finished, status, rows, error, retries, throttles, metadata, latest = row
    return RunRecord(run_id, source, channel, started, finished, _STATUS[status], rows, error, retries, throttles, metadata, latest)
