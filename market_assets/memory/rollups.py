"""SQL of the candle rollups: closed 1-minute candles to 5m, then 5m to 1h, then 1h to 1d.

Each interval is computed from the one below it (1h from twelve 5m rows, not sixty minutes), so
a day costs 24 rows instead of 1,440, and a rollup whose minutes were pruned can still feed the
intervals above it. ``open`` is the first sub-bucket's open, ``close`` the last one's close,
``high``/``low`` the extremes, ``volume``/``trades``/``minutes`` sums; ``complete`` = 0 when a
bucket has fewer minutes than its width (never hidden). A bucket is rolled only once *closed*:
its end has passed, none of its minutes is still forming, and none of its sub-buckets is still
queued. Volume sums are associated per level, so they can differ from a flat sum of the minutes
in the last bits (≤ 1e-15 relative), never more.

The incremental path works from ``pending_rollups`` (filled by triggers on ``candles``, schema
V2); the rebuild path from every source row of a time range. Both go through the same batch
table and the same upsert, so they cannot disagree.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

from market_assets.memory.connection import write_transaction

MINUTE_MS = 60_000


class RollupLevel(NamedTuple):
    interval: str
    width_ms: int
    source_interval: str
    """``1m`` reads the candles table; anything else reads ``candle_rollups`` of that interval."""
    next_interval: str | None
    next_width_ms: int | None

    @property
    def minutes(self) -> int:
        return self.width_ms // MINUTE_MS


LEVELS: tuple[RollupLevel, ...] = (
    RollupLevel("5m", 300_000, "1m", "1h", 3_600_000),  # 300,000 ms: the triggers of schema V2
    RollupLevel("1h", 3_600_000, "5m", "1d", 86_400_000),
    RollupLevel("1d", 86_400_000, "1h", None, None),
)
"""The rollup intervals, finest first; each is computed from the previous one."""

DAY_MS = LEVELS[-1].width_ms
"""The coarsest rollup: pruning works in whole days, so every bucket keeps all or none of its minutes."""

_BATCH = (
    "CREATE TEMP TABLE IF NOT EXISTS rollup_batch ("
    "coin TEXT NOT NULL, bucket_ms INTEGER NOT NULL, PRIMARY KEY (coin, bucket_ms)) WITHOUT ROWID"
)

# A queued bucket is ready when it has ended, no minute in it is forming and no sub-bucket of it
# is still queued (held back itself). Both exclusions are one pass over a small set (the forming
# minutes through their partial index, the queued sub-buckets), not one seek per bucket.
_QUEUED_READY = """INSERT OR IGNORE INTO temp.rollup_batch (coin, bucket_ms)
    SELECT p.coin, p.bucket_ms FROM pending_rollups AS p
    WHERE p.interval = :interval AND p.bucket_ms + :width <= :now
    AND (p.coin, p.bucket_ms) NOT IN (
        SELECT c.coin, c.open_time_ms - c.open_time_ms % :width FROM candles AS c INDEXED BY candles_forming
        WHERE c.closed = 0 AND c.interval = '1m' AND :source = '1m')
    AND (p.coin, p.bucket_ms) NOT IN (
        SELECT q.coin, q.bucket_ms - q.bucket_ms % :width FROM pending_rollups AS q WHERE q.interval = :source)"""

SUBJECTS_OF = """WITH RECURSIVE subjects (subject) AS (
        SELECT min({column}) FROM {table}
        UNION ALL
        SELECT (SELECT min({column}) FROM {table} WHERE {column} > subjects.subject)
        FROM subjects WHERE subjects.subject IS NOT NULL)
    """
"""A loose index scan: one seek per distinct value of the table's leading key column, so a range
query seeks each coin's rows instead of scanning the table (planner statistics may not exist yet)."""

_RANGE_FROM_CANDLES = """INSERT OR IGNORE INTO temp.rollup_batch (coin, bucket_ms) """ + SUBJECTS_OF.format(table="candles", column="coin") + """
    SELECT c.coin, c.open_time_ms - c.open_time_ms % :width AS bucket
    FROM subjects CROSS JOIN candles AS c ON c.coin = subjects.subject AND c.interval = '1m'
        AND c.open_time_ms >= :start AND c.open_time_ms < :end
    GROUP BY c.coin, bucket HAVING max(c.closed = 0) = 0 AND bucket + :width <= :now"""

_RANGE_FROM_ROLLUPS = """INSERT OR IGNORE INTO temp.rollup_batch (coin, bucket_ms) """ + SUBJECTS_OF.format(table="candle_rollups", column="coin") + """
    SELECT DISTINCT r.coin, r.open_time_ms - r.open_time_ms % :width AS bucket
    FROM subjects CROSS JOIN candle_rollups AS r ON r.coin = subjects.subject AND r.interval = :source
        AND r.open_time_ms >= :start AND r.open_time_ms < :end
    WHERE r.open_time_ms - r.open_time_ms % :width + :width <= :now
    AND NOT EXISTS (
        SELECT 1 FROM pending_rollups AS q WHERE q.interval = :source AND q.coin = r.coin
        AND q.bucket_ms >= r.open_time_ms - r.open_time_ms % :width
        AND q.bucket_ms < r.open_time_ms - r.open_time_ms % :width + :width)"""

_UPSERT_TAIL = """
    JOIN {table} AS f ON f.coin = g.coin AND f.interval = :source AND f.open_time_ms = g.first_ms
    JOIN {table} AS z ON z.coin = g.coin AND z.interval = :source AND z.open_time_ms = g.last_ms
    WHERE true
    ON CONFLICT (coin, interval, open_time_ms) DO UPDATE SET open = excluded.open,
        high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume,
        trades = excluded.trades, minutes = excluded.minutes, complete = excluded.complete,
        rolled_up_at_ms = excluded.rolled_up_at_ms"""

# CROSS JOIN makes SQLite walk the batch and seek each bucket's rows: without statistics on the
# temp table it otherwise scans the whole source table once per run.
_UPSERT_HEAD = """INSERT INTO candle_rollups (coin, interval, open_time_ms, open, high, low, close,
        volume, trades, minutes, complete, rolled_up_at_ms)
    SELECT g.coin, :interval, g.bucket_ms, f.open, g.high, g.low, z.close, g.volume, g.trades,
        g.minutes, g.minutes = :expected, :now
    FROM (SELECT b.coin, b.bucket_ms, min(s.open_time_ms) AS first_ms, max(s.open_time_ms) AS last_ms,
            max(s.high) AS high, min(s.low) AS low, sum(s.volume) AS volume, sum(s.trades) AS trades,
            {minutes} AS minutes
        FROM temp.rollup_batch AS b CROSS JOIN {table} AS s ON s.coin = b.coin AND s.interval = :source
            AND s.open_time_ms >= b.bucket_ms AND s.open_time_ms < b.bucket_ms + :width
        {closed_only}
        GROUP BY b.coin, b.bucket_ms) AS g"""

_ROLL_FROM_CANDLES = (
    _UPSERT_HEAD.format(table="candles", minutes="count(*)", closed_only="WHERE s.closed = 1")
    + _UPSERT_TAIL.format(table="candles")
)
_ROLL_FROM_ROLLUPS = (
    _UPSERT_HEAD.format(table="candle_rollups", minutes="sum(s.minutes)", closed_only="")
    + _UPSERT_TAIL.format(table="candle_rollups")
)


def roll_pending(conn: sqlite3.Connection, now_ms: int) -> dict[str, int]:
    """Roll every queued bucket that is ready, finest interval first, in one transaction.

    Returns the buckets written per interval. A bucket not ready yet stays queued.
    """
    rolled: dict[str, int] = {}
    conn.execute(_BATCH)
    with write_transaction(conn):
        for level in LEVELS:
            conn.execute("DELETE FROM temp.rollup_batch")
            conn.execute(_QUEUED_READY, _params(level, now_ms))
            rolled[level.interval] = _roll_batch(conn, level, now_ms)
            if level.next_interval is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO pending_rollups (coin, interval, bucket_ms) "
                    "SELECT coin, :next, bucket_ms - bucket_ms % :next_width FROM temp.rollup_batch",
                    {"next": level.next_interval, "next_width": level.next_width_ms},
                )
            conn.execute(
                "DELETE FROM pending_rollups WHERE interval = ? "
                "AND (coin, bucket_ms) IN (SELECT coin, bucket_ms FROM temp.rollup_batch)",
                (level.interval,),
            )
    return rolled


def rebuild_range(conn: sqlite3.Connection, start_ms: int, end_ms: int, now_ms: int) -> dict[str, int]:
    """Recompute every closed bucket of every interval inside ``[start_ms, end_ms)``, in one transaction.

    ``start_ms``/``end_ms`` should be day boundaries. Buckets whose minutes are gone (pruned)
    are left as they are; the queue is left alone (what it holds is re-rolled to the same values).
    """
    rolled: dict[str, int] = {}
    conn.execute(_BATCH)
    with write_transaction(conn):
        for level in LEVELS:
            conn.execute("DELETE FROM temp.rollup_batch")
            params = {**_params(level, now_ms), "start": start_ms, "end": end_ms}
            conn.execute(_RANGE_FROM_CANDLES if level.source_interval == "1m" else _RANGE_FROM_ROLLUPS, params)
            rolled[level.interval] = _roll_batch(conn, level, now_ms)
    return rolled


def _roll_batch(conn: sqlite3.Connection, level: RollupLevel, now_ms: int) -> int:
    # Statistics on the batch tell the planner it is small. Without them, once the source table
    # has statistics (maintenance runs PRAGMA optimize), SQLite guesses a million batch rows and
    # first builds a Bloom filter by scanning the whole source table: 174 ms instead of a few ms
    # for one hour of 200 coins over 400k minutes, growing with the history held.
    conn.execute("ANALYZE temp.rollup_batch")
    sql = _ROLL_FROM_CANDLES if level.source_interval == "1m" else _ROLL_FROM_ROLLUPS
    return conn.execute(sql, {**_params(level, now_ms), "expected": level.minutes}).rowcount


def _params(level: RollupLevel, now_ms: int) -> dict[str, object]:
    return {"interval": level.interval, "source": level.source_interval, "width": level.width_ms, "now": now_ms}


def candle_time_span(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """Oldest and newest open time of the stored 1-minute candles; ``None`` when there are none."""
    row = conn.execute(
        "SELECT min(open_time_ms), max(open_time_ms) FROM candles WHERE interval = '1m'"
    ).fetchone()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def queued_rollups(conn: sqlite3.Connection) -> int:
    """Buckets still queued (not ready yet): reported so a bucket held back for long is visible."""
    return int(conn.execute("SELECT count(*) FROM pending_rollups").fetchone()[0])


def rollups_of(conn: sqlite3.Connection, coin: str, interval: str) -> list[tuple[object, ...]]:
    """``(open_time_ms, open, high, low, close, volume, trades, minutes, complete)``, oldest first."""
    return conn.execute(
        "SELECT open_time_ms, open, high, low, close, volume, trades, minutes, complete "
        "FROM candle_rollups WHERE coin = ? AND interval = ? ORDER BY open_time_ms",
        (coin, interval),
    ).fetchall()
