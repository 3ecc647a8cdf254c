"""SQL of retention and file hygiene: pruning candles, rollups, gaps, features, funding and its
revisions, and ledger runs; optimize; checkpoint.

1-minute candles are pruned a whole day at a time and only for the coins whose rollups account
for every closed minute of that day at every interval (5m, 1h and 1d minute counts all equal the
minutes about to be deleted) with nothing of that day still queued for rolling. Each day is one
transaction: a run killed mid-way leaves every day either fully pruned or untouched.

1-minute candles and funding hours are pruned only from days the Parquet archive holds: the
caller verifies the day's partition against its stamp (``market_assets.archive.verify_day``) and
passes the stamp it verified; the prune's own transaction deletes nothing unless that stamp is
still there, unchanged. The V8 triggers delete a stamp in the statement that changes its day, so
a minute revised or confirmed between the verification and the prune keeps the whole day.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from market_assets.memory.archive import Stamp
from market_assets.memory.connection import (
    ANALYSIS_LIMIT,
    MemoryConnection,
    write_transaction,
)
from market_assets.memory.dialect import ORDERED_JOIN, Dialect, dialect_of
from market_assets.memory.rollups import SUBJECTS_OF
from market_assets.registry import DataLocation

CHECKPOINT_ATTEMPT_MS = 10
"""Busy timeout of one truncation attempt; :func:`checkpoint` repeats attempts until its wait is spent."""

CHECKPOINT_PAUSE_S = 0.001
"""Pause between two attempts, for the attempts SQLite refuses without waiting at all."""

WAL_BOUND_BYTES = 16 * 1024 * 1024
"""WAL size past which a continuous writer truncates it after its commit (:class:`WalBound`).

One 1,000-row flush of 200 coins adds 2.4 MB of WAL (615 pages: each coin's last leaf and the
index and queue pages, rewritten whole), and it grew 13 MB during one 2.6 s maintenance run
(``bench/wal.py``): 16 MB leaves room for both, and for a refused attempt, under the 64 MB
goal (23.5 MB measured at 1M rows; a 32 MB bound reached 69–203 MB)."""

WAL_BOUND_WAIT_MS = 250
"""How long that writer waits for readers to let go of the WAL: its own writes wait meanwhile."""

WAL_BOUND_RETRY_WAIT_MS = 50
"""How long it waits on a short attempt after a refused one (:class:`WalBound`)."""


class DayPrune(NamedTuple):
    deleted: int
    """Closed 1-minute rows deleted: every one of them is counted in its 5m, 1h and 1d rollups."""
    held_back: int
    """1-minute rows of the day still stored: not yet (or not fully) rolled up, or still forming."""


class Checkpoint(NamedTuple):
    mode: str
    """The mode that produced this result: ``TRUNCATE``, or ``PASSIVE`` when readers held it back."""
    busy: bool
    """True when readers (or a writer) kept the checkpoint from completing within the wait."""
    wal_frames: int
    checkpointed_frames: int
    wal_bytes_before: int
    wal_bytes_after: int


NO_CHECKPOINT = Checkpoint("NONE", False, 0, 0, 0, 0)
"""What :func:`checkpoint` returns on PostgreSQL, whose server manages its own WAL."""


def oldest_candle_ms(conn: MemoryConnection) -> int | None:
    """Open time of the oldest stored 1-minute candle of any coin.

    A loose index scan (one seek per coin, then one per coin for its oldest minute) instead of a
    scan of every candle: the cost follows the number of coins, not the history held.
    """
    row = conn.execute(
        SUBJECTS_OF.format(table="candles", column="coin")
        + "SELECT min((SELECT min(open_time_ms) FROM candles AS c WHERE c.coin = subjects.subject "
        "AND c.interval = '1m')) FROM subjects WHERE subject IS NOT NULL"
    ).fetchone()
    return None if row[0] is None else int(row[0])


_STILL_STAMPED = """EXISTS (SELECT 1 FROM archived_days WHERE dataset = :dataset AND day_ms = :start
    AND rows = :rows AND checksum = :checksum)"""


_ROLLED_UP = """SELECT d.coin FROM candle_rollups AS d
    WHERE d.interval = '1d' AND d.open_time_ms = :start
    AND d.minutes = (
        SELECT count(*) FROM candles AS c WHERE c.coin = d.coin AND c.interval = '1m'
        AND c.closed = 1 AND c.open_time_ms >= :start AND c.open_time_ms < :end)
    AND d.minutes = (
        SELECT coalesce(sum(h.minutes), 0) FROM candle_rollups AS h WHERE h.coin = d.coin
        AND h.interval = '1h' AND h.open_time_ms >= :start AND h.open_time_ms < :end)
    AND d.minutes = (
        SELECT coalesce(sum(f.minutes), 0) FROM candle_rollups AS f WHERE f.coin = d.coin
        AND f.interval = '5m' AND f.open_time_ms >= :start AND f.open_time_ms < :end)
    AND NOT EXISTS (
        SELECT 1 FROM pending_rollups AS p WHERE p.interval IN ('5m', '1h', '1d')
        AND p.coin = d.coin AND p.bucket_ms >= :start AND p.bucket_ms < :end)"""
"""The coins whose day (``:start``, ``:end``) is rolled up whole at every level and queued nowhere."""

_CARRIED_ABOVE = """SELECT d.coin FROM candle_rollups AS d
    WHERE d.interval = '1d' AND d.open_time_ms = :start
    AND (SELECT coalesce(sum(f.minutes), 0) FROM candle_rollups AS f WHERE f.coin = d.coin
        AND f.interval = :interval AND f.open_time_ms >= :start AND f.open_time_ms < :end)
    = (SELECT coalesce(sum(c.minutes), 0) FROM candle_rollups AS c WHERE c.coin = d.coin
        AND c.interval = :coarser AND c.open_time_ms >= :start AND c.open_time_ms < :end)
    AND NOT EXISTS (
        SELECT 1 FROM candles AS m WHERE m.coin = d.coin AND m.interval = '1m'
        AND m.open_time_ms >= :start AND m.open_time_ms < :end)
    AND NOT EXISTS (
        SELECT 1 FROM pending_rollups AS p WHERE p.coin = d.coin
        AND p.bucket_ms >= :start AND p.bucket_ms < :end)"""
"""The coins whose day of ``:interval`` rollups the ``:coarser`` ones carry whole, no minute of it left."""


def _in_coins(conn: MemoryConnection, delete: str, coins: str) -> str:
    """``delete`` restricted to the coins ``coins`` selects. On PostgreSQL they are selected first,
    once (a ``MATERIALIZED`` CTE): as a ``coin IN (correlated subquery)`` planned from statistics
    older than the rows (a day just written, a memory just emptied) it re-ran the per-coin counts
    for every row, 23 s for a 2-coin day where it takes 0.1 s. SQLite runs the subquery once already
    (and reports no ``rowcount`` for a ``WITH … DELETE``)."""
    if dialect_of(conn) is Dialect.POSTGRES:
        return f"WITH chosen (coin) AS MATERIALIZED ({coins}) {delete} AND coin IN (SELECT coin FROM chosen)"
    return f"{delete} AND coin IN ({coins})"


def prune_candle_day(conn: MemoryConnection, day_start_ms: int, day_end_ms: int, archived: Stamp) -> DayPrune:
    """Delete one day's closed 1-minute candles of every coin whose rollups cover all of them, if
    the day is still stamped ``archived`` (the stamp its partition was verified against)."""
    span = {
        "start": day_start_ms, "end": day_end_ms, "dataset": "candles",
        "rows": archived.rows, "checksum": archived.checksum,
    }
    with write_transaction(conn):
        deleted = conn.execute(
            _in_coins(
                conn, "DELETE FROM candles WHERE interval = '1m' AND closed = 1 AND open_time_ms >= :start "
                f"AND open_time_ms < :end AND {_STILL_STAMPED}", _ROLLED_UP,
            ),
            span,
        ).rowcount
        held_back = conn.execute(
            SUBJECTS_OF.format(table="candles", column="coin")
            + f"SELECT count(*) FROM subjects {ORDERED_JOIN[dialect_of(conn)]} candles AS c ON c.coin = subjects.subject "
            "AND c.interval = '1m' AND c.open_time_ms >= :start AND c.open_time_ms < :end",
            span,
        ).fetchone()[0]
    return DayPrune(deleted, int(held_back))


def oldest_rollup_ms(conn: MemoryConnection, interval: str) -> int | None:
    """Open time of the oldest stored rollup of ``interval`` (a loose index scan, as for candles)."""
    row = conn.execute(
        SUBJECTS_OF.format(table="candle_rollups", column="coin")
        + "SELECT min((SELECT min(open_time_ms) FROM candle_rollups AS r WHERE r.coin = subjects.subject "
        "AND r.interval = ?)) FROM subjects WHERE subject IS NOT NULL",
        (interval,),
    ).fetchone()
    return None if row[0] is None else int(row[0])


def prune_rollup_day(
    conn: MemoryConnection, interval: str, coarser: str, day_start_ms: int, day_end_ms: int
) -> DayPrune:
    """Delete one day's ``interval`` rollups of every coin whose ``coarser`` rollups carry all of them.

    A coin's day goes only when its day is rolled to the top (its ``1d`` row exists), nothing of
    it is queued for rolling, none of its 1-minute rows is still stored (they are pruned first,
    and only once rolled), and the ``coarser`` rows of the day count the same minutes: a reader
    asking for that day at the coarser interval gets everything the finer rows held.
    """
    span = {"start": day_start_ms, "end": day_end_ms, "interval": interval, "coarser": coarser}
    with write_transaction(conn):
        deleted = conn.execute(
            _in_coins(
                conn, "DELETE FROM candle_rollups WHERE interval = :interval AND open_time_ms >= :start "
                "AND open_time_ms < :end", _CARRIED_ABOVE,
            ),
            span,
        ).rowcount
        (held_back,) = conn.execute(
            SUBJECTS_OF.format(table="candle_rollups", column="coin")
            + f"SELECT count(*) FROM subjects {ORDERED_JOIN[dialect_of(conn)]} candle_rollups AS r "
            "ON r.coin = subjects.subject AND r.interval = :interval AND r.open_time_ms >= :start AND r.open_time_ms < :end",
            span,
        ).fetchone()
    return DayPrune(deleted, int(held_back))


def prune_gaps(conn: MemoryConnection, before_ms: int, interval: str = "1m") -> int:
    """Delete the gap runs that ended before ``before_ms`` and none of whose minutes is still stored."""
    with write_transaction(conn):
        return conn.execute(
            """DELETE FROM candle_gaps AS g WHERE g.interval = ? AND g.end_ms <= ? AND NOT EXISTS (
                SELECT 1 FROM candles AS c WHERE c.coin = g.coin AND c.interval = g.interval
                AND c.open_time_ms >= g.start_ms AND c.open_time_ms < g.end_ms)""",
            (interval, before_ms),
        ).rowcount


def prune_repairs(conn: MemoryConnection, before_ms: int, interval: str = "1m") -> int:
    """Delete repair-queue entries for minutes before ``before_ms``: long past candleSnapshot's
    reach, owed by a streamer that no longer follows the coin, about minutes pruned with their day."""
    with write_transaction(conn):
        return conn.execute(
            "DELETE FROM candle_repairs WHERE interval = ? AND open_time_ms < ?", (interval, before_ms)
        ).rowcount


def prune_funding_day(conn: MemoryConnection, day_start_ms: int, day_end_ms: int, archived: Stamp) -> int:
    """Delete one day's funding hours if the day is still stamped ``archived``; the rows deleted."""
    span = {
        "start": day_start_ms, "end": day_end_ms, "dataset": "funding",
        "rows": archived.rows, "checksum": archived.checksum,
    }
    with write_transaction(conn):
        return conn.execute(
            f"""DELETE FROM funding WHERE coin IN ({SUBJECTS_OF.format(table="funding", column="coin")}
                SELECT subject FROM subjects WHERE subject IS NOT NULL)
                AND hour_ms >= :start AND hour_ms < :end AND {_STILL_STAMPED}""",
            span,
        ).rowcount


def prune_funding_revisions(conn: MemoryConnection, before_ms: int) -> int:
    """Delete the revisions of funding hours before ``before_ms`` whose hour is no longer stored:
    they go with the hours they revised (an hour kept past retention, its day not archived yet,
    keeps its revisions). Returns the rows deleted."""
    with write_transaction(conn):
        return conn.execute(
            """DELETE FROM funding_revisions AS r WHERE r.hour_ms < ? AND NOT EXISTS (
                SELECT 1 FROM funding AS f WHERE f.coin = r.coin AND f.hour_ms = r.hour_ms)""",
            (before_ms,),
        ).rowcount


def prune_before(conn: MemoryConnection, data: DataLocation, before_ms: int) -> int:
    """Delete a channel's rows observed before ``before_ms``; returns the rows deleted.

    Table and column names come from the registry's :class:`DataLocation`, never from input.
    Each subject's old rows are a key-range seek when the subject leads the primary key (as
    for features and funding), whether or not planner statistics exist yet.
    """
    scope = "".join(f" AND {column} = ?" for column in data.scope)
    subjects = SUBJECTS_OF.format(table=data.table, column=data.subject_column)
    with write_transaction(conn):
        return conn.execute(
            f"DELETE FROM {data.table} WHERE {data.subject_column} IN ({subjects} "
            "SELECT subject FROM subjects WHERE subject IS NOT NULL) "
            f"AND {data.time_column} < ?{scope}",
            (before_ms, *data.scope.values()),
        ).rowcount


def prune_ledger(conn: MemoryConnection, before_ms: int) -> int:
    """Delete ledger runs started before ``before_ms``, except each channel's latest run.

    The latest run is what health evaluates: dropping it would turn a channel that has been
    stale for months into ``missing``, which means something else (never set up).
    """
    with write_transaction(conn):
        return conn.execute(
            """DELETE FROM ingestion_runs WHERE started_at_ms < ? AND EXISTS (
                SELECT 1 FROM ingestion_runs AS newer
                WHERE newer.source = ingestion_runs.source AND newer.channel = ingestion_runs.channel
                AND (newer.started_at_ms, newer.run_id) > (ingestion_runs.started_at_ms, ingestion_runs.run_id))""",
            (before_ms,),
        ).rowcount


def optimize(conn: MemoryConnection) -> None:
    """Refresh the planner statistics of the tables this connection touched.

    Without them the dashboard's time-window queries over (coin, interval, open_time_ms) are
    full scans: 850 ms vs 3.3 ms at 10M rows (peers.md §3).

    On PostgreSQL, ``ANALYZE`` of every table (sampled, a fraction of a second at 10M rows).

    Inside a write transaction taken first: alone, ``PRAGMA optimize`` reads, then upgrades to
    write for its ANALYZE, and a streamer commit in between makes SQLite refuse the upgrade at
    once (``database is locked``, no busy wait): it failed a maintenance run under ``bench/wal.py``.
    """
    if dialect_of(conn) is Dialect.POSTGRES:
        # Autovacuum analyzes a table once a tenth of it changed; a day pruned of 30 is less.
        conn.execute("ANALYZE")
        return
    conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
    with write_transaction(conn):
        conn.execute("PRAGMA optimize")


@contextmanager
def checkpoint_at_the_end(conn: MemoryConnection) -> Iterator[None]:
    """No automatic checkpoint on this connection's commits inside the block; the caller checkpoints after it.

    Once the WAL holds 1,000 pages, SQLite checkpoints on every commit (copy, then fsync of WAL
    and file): for a job that ends with its own :func:`checkpoint` that is the same pages copied
    twice. Measured on one hour of 200 coins: the rollup's commit took 50–68 ms with it, 4 ms without.
    """
    if dialect_of(conn) is Dialect.POSTGRES:
        yield  # PostgreSQL checkpoints its own WAL
        return
    previous = int(conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA wal_autocheckpoint = {previous}")


def checkpoint(conn: MemoryConnection, wait_ms: int) -> Checkpoint:
    """Copy the WAL into the database and truncate it, waiting at most ``wait_ms`` for readers.

    With readers always in flight the WAL never resets by itself (2.56 GB for 70 MB of rows,
    peers.md §3). TRUNCATE must wait until no reader uses an older snapshot; the busy timeout
    bounds that wait. When readers outlast it, a PASSIVE checkpoint copies what they do not pin
    and the result says ``busy``: the WAL is reused from its start once they move on.

    The wait is spent in short attempts (:data:`CHECKPOINT_ATTEMPT_MS`): a streaming writer takes
    the write lock back a few ms after each commit, and SQLite's busy handler, whose sleeps grow
    to 100 ms, mostly wakes while the writer holds it again. One 2 s wait failed to truncate in
    2 of 5 maintenance runs under ``bench/wal.py``'s stream; polling every few ms catches the
    gap between two of its transactions.

    On PostgreSQL, nothing: the server checkpoints and recycles its WAL itself (:data:`NO_CHECKPOINT`).
    """
    if dialect_of(conn) is Dialect.POSTGRES:
        return NO_CHECKPOINT
    path = database_path(conn)
    wal_before = _size(f"{path}-wal")
    previous_timeout = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute(f"PRAGMA busy_timeout = {min(int(wait_ms), CHECKPOINT_ATTEMPT_MS)}")
    deadline = time.monotonic() + wait_ms / 1000
    try:
        mode = "TRUNCATE"
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        while busy and time.monotonic() < deadline:
            # While another connection checkpoints, SQLite refuses at once, without the busy
            # handler: unpaced, this loop ran the pragma ~1,000 times per ms against the
            # streamer's own truncation (bench/wal.py trace), taking a core from it.
            time.sleep(CHECKPOINT_PAUSE_S)
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            mode = "PASSIVE"
            busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            busy = 1  # PASSIVE never reports busy; the truncation it stands in for was refused
    finally:
        conn.execute(f"PRAGMA busy_timeout = {previous_timeout}")
    return Checkpoint(mode, bool(busy), int(frames), int(done), wal_before, _size(f"{path}-wal"))


class WalBound:
    """A continuous writer's own bound on the WAL, checked after each of its commits.

    With readers always in flight SQLite's automatic checkpoint never lets the WAL restart: it
    runs right after the commit, while readers still hold the snapshot before it, so the
    commit's own frames stay uncopied and the next transaction appends instead of wrapping
    (a PASSIVE checkpoint after every 1,000-row commit copied all but the last one's 615
    pages, and the WAL reached 532 MB at 300k rows, ``bench/wal.py``). The writer knows when it
    has just committed, so once the file passes ``limit_bytes`` it truncates it itself between
    two of its transactions, waiting at most ``wait_ms`` for readers on older snapshots.

    When that wait runs out, the next waited attempt comes only after another ``limit_bytes`` of
    growth, so a reader that holds a snapshot for minutes costs one wait per ``limit_bytes``,
    not one per commit. Meanwhile a short attempt (``retry_wait_ms``) is made at every quarter
    of it: most refusals are brief (maintenance's rollup transaction holds the write lock for
    0.3–1 s: every refusal traced in ``bench/wal.py`` was one) and, with only the waited attempts
    every 32 MB, three of them let the WAL reach 69 MB, and 203 MB in the issue's run.

    Never inside the caller's transaction: SQLite refuses a checkpoint there (``SQLITE_LOCKED``),
    so the bound then does nothing and stays due for the call after the commit.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        limit_bytes: int = WAL_BOUND_BYTES,
        wait_ms: int = WAL_BOUND_WAIT_MS,
        retry_wait_ms: int = WAL_BOUND_RETRY_WAIT_MS,
    ) -> None:
        self.wal_path = f"{os.fspath(db_path)}-wal"
        self.limit_bytes = limit_bytes
        self.wait_ms = wait_ms
        self.retry_wait_ms = retry_wait_ms
        self._attempt_at_bytes = limit_bytes
        self._retry_at_bytes: int | None = None
        self.truncations = 0
        self.held_back = 0
        """Waited attempts that readers (or another writer) kept from truncating within the wait."""
        self.retries_refused = 0
        """Short attempts, between two waited ones, refused too."""

    def due(self) -> bool:
        """Whether the WAL has grown past the point of the next attempt (a ``stat``, no SQL)."""
        return _size(self.wal_path) >= self._next_at_bytes()

    def __call__(self, conn: MemoryConnection) -> Checkpoint | None:
        """Truncate the WAL if :meth:`due`; call it on the writer's connection, after its commit.

        Returns the checkpoint of a waited attempt or of a truncation; ``None`` when nothing was
        due, when called inside a transaction, or when a short attempt was refused.
        """
        if conn.in_transaction:
            return None
        size = _size(self.wal_path)
        if size >= self._attempt_at_bytes:
            result = checkpoint(conn, self.wait_ms)
            if result.busy:
                self.held_back += 1
                self._attempt_at_bytes = result.wal_bytes_after + self.limit_bytes
                self._retry_at_bytes = result.wal_bytes_after + self._retry_step()
        elif self._retry_at_bytes is not None and size >= self._retry_at_bytes:
            result = checkpoint(conn, self.retry_wait_ms)
            if result.busy:
                self.retries_refused += 1
                self._retry_at_bytes = result.wal_bytes_after + self._retry_step()
                return None
        else:
            return None
        if not result.busy:
            self.truncations += 1
            self._attempt_at_bytes = self.limit_bytes
            self._retry_at_bytes = None
        return result

    def _retry_step(self) -> int:
        return max(1, self.limit_bytes // 4)

    def _next_at_bytes(self) -> int:
        if self._retry_at_bytes is None:
            return self._attempt_at_bytes
        return min(self._attempt_at_bytes, self._retry_at_bytes)


def database_path(conn: MemoryConnection) -> str:
    """The file of the connection's main database (SQLite only: a PostgreSQL memory has none)."""
    if dialect_of(conn) is Dialect.POSTGRES:
        raise ValueError("a PostgreSQL memory has no database file")
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0
