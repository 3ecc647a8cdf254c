"""SQL of the candle rollups: closed 1-minute candles to 5m, then 5m to 1h, then 1h to 1d.

Each interval is computed from the one below it (1h from twelve 5m rows, not sixty minutes), so
a day costs 24 rows instead of 1,440, and a rollup whose minutes were pruned can still feed the
intervals above it. ``open`` is the first sub-bucket's open, ``close`` the last one's close,
``high``/``low`` the extremes, ``volume``/``trades``/``minutes``/``confirmed_minutes`` sums; ``complete`` = 0 when a
bucket has fewer minutes than its width (never hidden). A bucket is rolled only once *closed*:
its end has passed, none of its minutes is still forming, and none of its sub-buckets is still
queued. Volume sums are associated per level, so they can differ from a flat sum of the minutes
in the last bits (≤ 1e-15 relative), never more.

The incremental path works from ``pending_rollups`` (filled by triggers on ``candles``, one
entry per coin and hour since schema V6); the rebuild queues every hour of its range and rolls
it through the same statements, so the two cannot disagree. Per level, one statement computes
the ready buckets and one writes them (SQLite: into a temporary table, then into the rollups), then
the queue moves on.

The 1h and 1d buckets are one aggregation text on both engines (``min(a, b)`` vs ``LEAST``, the
forced join order, the volume's order written per engine); the 5m buckets are computed each
engine's own way (SQLite: steps walked in key order, no sorter; PostgreSQL: one index range per
hour, grouped), and so are the writes that keep the bucket holding more minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.dialect import ORDERED_JOIN, Dialect, dialect_of

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

HOUR_MS = LEVELS[1].width_ms
FIVE_MS = LEVELS[0].width_ms
_NEVER = 2**62
"""A time no minute reaches: the stop of an hour with no forming minute in it."""

ROLLING_CACHE_KIB = 65_536
"""SQLite page cache while rolling (KiB; the connection's own size is restored after). An hour of
200 coins dirties ~1,250 pages (each coin's 5m and 1h rows end inside the table, and a page that
fills splits into its neighbours); in the default 2 MB cache they spilled into the WAL mid-statement
and were written again at the commit (``bench/rollups.py``: the insert of an hour's rows 3x slower).
SQLite allocates the pages only as they are used."""

_DEFAULT_CACHE = -2000
"""SQLite's default page cache size (SQLITE_DEFAULT_CACHE_SIZE, KiB when negative)."""

_STEPS = "CREATE TEMP TABLE IF NOT EXISTS rollup_steps (step INTEGER PRIMARY KEY)"
_FILL_STEPS = "INSERT OR IGNORE INTO rollup_steps (step) VALUES " + ", ".join(f"({i})" for i in range(HOUR_MS // FIVE_MS))
"""SQLite: the twelve 5-minute buckets of an hour, as a table: walked by rowid, they keep the rows of
(coin, hour, step) in key order, so the 5m GROUP BY streams instead of sorting the minutes."""

_ROWS = """CREATE TEMP TABLE IF NOT EXISTS rollup_rows (coin TEXT NOT NULL, interval TEXT NOT NULL,
    open_time_ms INTEGER NOT NULL, open REAL, high REAL, low REAL, close REAL, volume REAL, trades INTEGER,
    minutes INTEGER, complete INTEGER, confirmed_minutes INTEGER)"""
"""SQLite: one level's buckets as computed, in key order (the rowid), before they are written."""

SUBJECTS_OF = """WITH RECURSIVE subjects (subject) AS (
        SELECT min({column}) FROM {table}
        UNION ALL
        SELECT (SELECT min({column}) FROM {table} WHERE {column} > subjects.subject)
        FROM subjects WHERE subjects.subject IS NOT NULL)
    """
"""A loose index scan: one seek per distinct value of the table's leading key column, so a range
query seeks each coin's rows instead of scanning the table (planner statistics may not exist yet)."""

_LEAST = {Dialect.SQLITE: "min", Dialect.POSTGRES: "LEAST"}
_VOLUME = {Dialect.SQLITE: "sum(s.volume)", Dialect.POSTGRES: "sum(s.volume ORDER BY s.open_time_ms)"}
"""A float sum in time order on both engines, so a bucket's volume is the same bits however it was
planned (SQLite's loops are in key order; PostgreSQL may hash or sort the rows otherwise)."""

# Where a queued hour's changed 5m buckets stop being ready: the end of its span, the last
# 5-minute boundary before ``now``, or the bucket of its coin's first forming minute at or after
# ``from_ms``, whichever comes first. Its buckets in [from_ms, stop) are rolled; the rest wait. The
# forming minutes are about one per coin, read once through their partial index.
_FORMING = {
    Dialect.SQLITE: """forming (coin, open_time_ms) AS MATERIALIZED (
        SELECT coin, open_time_ms FROM candles INDEXED BY candles_forming WHERE closed = 0 AND interval = '1m')""",
    Dialect.POSTGRES: """forming (coin, open_time_ms) AS MATERIALIZED (
        SELECT coin, open_time_ms FROM candles WHERE closed = 0 AND interval = '1m')""",
}
_STOP = """{least}(p.to_ms, :now - :now % {five}, coalesce((
        SELECT min(m.open_time_ms) - min(m.open_time_ms) % {five} FROM forming AS m
        WHERE m.coin = p.coin AND m.open_time_ms >= p.from_ms), {never}))"""


def _stop(dialect: Dialect) -> str:
    return _STOP.format(least=_LEAST[dialect], five=FIVE_MS, never=_NEVER)


_COLUMNS = "coin, interval, open_time_ms, open, high, low, close, volume, trades, minutes, complete, confirmed_minutes"
_VALUES = "open, high, low, close, volume, trades, minutes, complete, confirmed_minutes"

# The buckets of one level, as rows of ``_COLUMNS``. The first and last sub-bucket's open and close
# are correlated seeks into the pages just read, so the aggregate streams as a co-routine instead
# of being materialized for a join.
_SELECT = """SELECT g.coin, '{interval}', g.bucket_ms,
        (SELECT f.open FROM {table} AS f WHERE f.coin = g.coin AND f.interval = '{source}' AND f.open_time_ms = g.first_ms),
        g.high, g.low,
        (SELECT z.close FROM {table} AS z WHERE z.coin = g.coin AND z.interval = '{source}' AND z.open_time_ms = g.last_ms),
        g.volume, g.trades, g.minutes, CASE WHEN g.minutes = {expected} THEN 1 ELSE 0 END, g.confirmed_minutes
    FROM (SELECT p.coin, {bucket} AS bucket_ms, min(s.open_time_ms) AS first_ms, max(s.open_time_ms) AS last_ms,
            max(s.high) AS high, min(s.low) AS low, {volume} AS volume, sum(s.trades) AS trades,
            {minutes} AS minutes, {confirmed} AS confirmed_minutes
        FROM {source_rows}
        GROUP BY {group}) AS g"""

_READY = {
    "1h": "p.from_ms >= p.to_ms AND p.bucket_ms + {width} <= :now",
    "1d": """p.bucket_ms + {width} <= :now AND NOT EXISTS (
        SELECT 1 FROM pending_rollups AS q WHERE q.interval = '{source}' AND q.coin = p.coin
        AND q.bucket_ms >= p.bucket_ms AND q.bucket_ms < p.bucket_ms + {width})""",
}
"""A queued hour is ready once it has ended and all its 5m buckets are rolled; a queued day once
it has ended and none of its hours is still queued."""


# PostgreSQL has no loop order to force: without planner statistics (a fresh memory) it joined
# each queued hour to all of its coin's minutes and filtered them per step (11,520 minutes: 6 s).
# So its 5m buckets come from one index range per queued hour, [from_ms, stop) in whole buckets as
# SQLite's steps take them, grouped by bucket, the first open and last close by ordered array_agg.
_FIVE_POSTGRES = f"""WITH {_FORMING[Dialect.POSTGRES]}
    SELECT g.coin, '5m', g.bucket_ms, g.open, g.high, g.low, g.close, g.volume, g.trades, g.minutes,
        CASE WHEN g.minutes = {FIVE_MS // MINUTE_MS} THEN 1 ELSE 0 END, g.confirmed_minutes
    FROM (SELECT p.coin, s.open_time_ms - s.open_time_ms % {FIVE_MS} AS bucket_ms,
            (array_agg(s.open ORDER BY s.open_time_ms))[1] AS open, max(s.high) AS high, min(s.low) AS low,
            (array_agg(s.close ORDER BY s.open_time_ms DESC))[1] AS close, {_VOLUME[Dialect.POSTGRES]} AS volume,
            sum(s.trades) AS trades, count(*) AS minutes, sum(s.confirmed) AS confirmed_minutes
        FROM pending_rollups AS p
        CROSS JOIN LATERAL (SELECT {_stop(Dialect.POSTGRES)} AS stop_ms) AS t
        JOIN candles AS s ON s.coin = p.coin AND s.interval = '1m'
            AND s.open_time_ms >= p.from_ms - p.from_ms % {FIVE_MS} AND s.open_time_ms < t.stop_ms - t.stop_ms % {FIVE_MS}
            AND s.open_time_ms >= p.bucket_ms AND s.open_time_ms < p.bucket_ms + {HOUR_MS}
        WHERE p.interval = '1h' AND s.closed = 1
        GROUP BY p.coin, s.open_time_ms - s.open_time_ms % {FIVE_MS}) AS g"""

def _ready(level: RollupLevel) -> str:
    return _READY[level.interval].format(width=level.width_ms, source=level.source_interval)


def _buckets(level: RollupLevel, dialect: Dialect) -> str:
    """The ready buckets of ``level``: 5m from the minutes of each queued hour's ready steps, the
    levels above from the sub-bucket rows of each ready queued bucket."""
    join = ORDERED_JOIN[dialect]
    if level.interval == "5m" and dialect is Dialect.POSTGRES:
        return _FIVE_POSTGRES
    if level.interval == "5m":
        # Every queued hour (walked in key order), each of its ready steps (a rowid range), each
        # step's minutes (a primary-key range). All three loops are in key order, so the GROUP BY
        # needs no sorter; the first and last minute are two seeks into the pages just read.
        stop = _stop(dialect)
        return "WITH " + _FORMING[dialect] + " " + _SELECT.format(
            interval=level.interval, table="candles", source="1m", expected=level.minutes, volume=_VOLUME[dialect],
            bucket=f"p.bucket_ms + k.step * {FIVE_MS}", minutes="count(*)", confirmed="sum(s.confirmed)",
            source_rows=f"""pending_rollups AS p {join} rollup_steps AS k
                ON k.step >= (p.from_ms - p.bucket_ms) / {FIVE_MS} AND k.step < ({stop} - p.bucket_ms) / {FIVE_MS}
            {join} candles AS s ON s.coin = p.coin AND s.interval = '1m'
                AND s.open_time_ms >= p.bucket_ms + k.step * {FIVE_MS}
                AND s.open_time_ms < p.bucket_ms + (k.step + 1) * {FIVE_MS}
            WHERE p.interval = '1h' AND s.closed = 1""",
            group="p.coin, p.bucket_ms, k.step",
        )
    return _SELECT.format(
        interval=level.interval, table="candle_rollups", source=level.source_interval, expected=level.minutes,
        volume=_VOLUME[dialect],
        bucket="p.bucket_ms", minutes="sum(s.minutes)", confirmed="sum(s.confirmed_minutes)",
        source_rows=f"""pending_rollups AS p {join} candle_rollups AS s ON s.coin = p.coin
                AND s.interval = '{level.source_interval}'
                AND s.open_time_ms >= p.bucket_ms AND s.open_time_ms < p.bucket_ms + {level.width_ms}
            WHERE p.interval = '{level.interval}' AND {_ready(level)}""",
        group="p.coin, p.bucket_ms",
    )


# A bucket is never replaced by one of fewer minutes. Only retention removes minutes, and only
# once they are rolled (and archived), so fewer minutes than the bucket holds means the bucket
# was partly pruned and something (a manual backfill) wrote into it since: rolling what is left
# would lose every pruned minute from every interval above it; the bucket stays as it is.
#
# SQLite: computed into ``rollup_rows``, then the new buckets inserted and the stored ones updated,
# each statement ``OR IGNORE``. A statement that may abort halfway (a NOT NULL or key conflict
# under ABORT, as INSERT OR REPLACE and upserts have) keeps a statement journal of every page it
# changes, in a temporary file past 64 kB: an hour's 1,250 pages copied there before being changed
# (measured: half the insert's time, ~2,500 pwrite calls). ``OR IGNORE`` cannot abort, so SQLite
# keeps none. No value is ever NULL: every bucket aggregates at least one row. The write expected
# to cover every bucket runs first (the insert for new hours, the update for a rebuild), the other
# only when it did not: each costs a key seek per bucket.
# PostgreSQL: one upsert, whose WHERE keeps the bucket that holds more minutes.
_FILL = f"INSERT INTO rollup_rows ({_COLUMNS}) {{buckets}}"
_INSERT_NEW = f"""INSERT OR IGNORE INTO candle_rollups ({_COLUMNS}, rolled_up_at_ms)
    SELECT {_COLUMNS}, :now FROM rollup_rows ORDER BY rowid"""
_UPDATE_STORED = f"""UPDATE OR IGNORE candle_rollups SET {", ".join(f"{c} = n.{c}" for c in _VALUES.split(", "))},
        rolled_up_at_ms = :now
    FROM rollup_rows AS n
    WHERE candle_rollups.coin = n.coin AND candle_rollups.interval = n.interval
        AND candle_rollups.open_time_ms = n.open_time_ms AND n.minutes >= candle_rollups.minutes"""
_UPSERT = f"""INSERT INTO candle_rollups ({_COLUMNS}, rolled_up_at_ms)
    SELECT *, :now FROM ({{buckets}}) AS b
    ON CONFLICT (coin, interval, open_time_ms) DO UPDATE SET
        {", ".join(f"{c} = excluded.{c}" for c in _VALUES.split(", "))}, rolled_up_at_ms = excluded.rolled_up_at_ms
    WHERE excluded.minutes >= candle_rollups.minutes"""

_ADVANCE = {
    dialect: f"""WITH {_FORMING[dialect]} UPDATE pending_rollups AS p SET from_ms = {_stop(dialect)}
    WHERE p.interval = '1h' AND {_stop(dialect)} > p.from_ms"""
    for dialect in Dialect
}
"""Move each queued hour past the 5m buckets just rolled."""

_QUEUE_UP = {
    "1h": f"""INSERT INTO pending_rollups (interval, coin, bucket_ms, from_ms, to_ms)
        SELECT DISTINCT '1d', p.coin, p.bucket_ms - p.bucket_ms % {DAY_MS}, p.bucket_ms - p.bucket_ms % {DAY_MS},
            p.bucket_ms - p.bucket_ms % {DAY_MS}
        FROM pending_rollups AS p WHERE p.interval = '1h' AND {_ready(LEVELS[1])}
        ON CONFLICT DO NOTHING""",
}
_DEQUEUE = {level.interval: f"DELETE FROM pending_rollups AS p WHERE p.interval = '{level.interval}' AND {_ready(level)}"
            for level in LEVELS[1:]}


_COMPUTE = {
    Dialect.SQLITE: {level.interval: _FILL.format(buckets=_buckets(level, Dialect.SQLITE)) for level in LEVELS},
    Dialect.POSTGRES: {level.interval: _UPSERT.format(buckets=_buckets(level, Dialect.POSTGRES)) for level in LEVELS},
}
"""Per engine and level: SQLite, the statement filling ``rollup_rows``; PostgreSQL, the upsert."""


def roll_pending(conn: MemoryConnection, now_ms: int) -> dict[str, int]:
    """Roll every queued bucket that is ready, finest interval first, in one transaction.

    Returns the buckets written per interval. A bucket not ready yet stays queued.
    """
    _prepare(conn)
    with _rolling_cache(conn), write_transaction(conn):
        return _roll(conn, now_ms)


def _roll(conn: MemoryConnection, now_ms: int, *, rebuilding: bool = False) -> dict[str, int]:
    dialect = dialect_of(conn)
    params = {"now": now_ms}
    rolled: dict[str, int] = {}
    for level in LEVELS:
        compute = _COMPUTE[dialect][level.interval]
        if dialect is Dialect.POSTGRES:
            rolled[level.interval] = conn.execute(compute, params).rowcount
        else:
            conn.execute("DELETE FROM rollup_rows")
            rolled[level.interval] = _write(conn, conn.execute(compute, params).rowcount, params, rebuilding=rebuilding)
        if level.interval == "5m":
            conn.execute(_ADVANCE[dialect], params)
        else:
            if level.interval in _QUEUE_UP:
                conn.execute(_QUEUE_UP[level.interval], params)
            conn.execute(_DEQUEUE[level.interval], params)
    return rolled


def _write(conn: MemoryConnection, buckets: int, params: dict[str, int], *, rebuilding: bool) -> int:
    """SQLite: write the ``buckets`` rows of ``rollup_rows``; the buckets written."""
    if rebuilding:
        updated = conn.execute(_UPDATE_STORED, params).rowcount
        return updated if updated == buckets else updated + conn.execute(_INSERT_NEW, params).rowcount
    inserted = conn.execute(_INSERT_NEW, params).rowcount
    # The update also rewrites the rows just inserted (same values): it counts every bucket written.
    return inserted if inserted == buckets else conn.execute(_UPDATE_STORED, params).rowcount


def rebuild_range(conn: MemoryConnection, start_ms: int, end_ms: int, now_ms: int) -> dict[str, int]:
    """Recompute every closed bucket of every interval inside ``[start_ms, end_ms)``, in one transaction.

    ``start_ms``/``end_ms`` should be day boundaries. Every hour of the range that has begun
    and holds minutes or rollups is queued from its start, then rolled exactly as
    :func:`roll_pending` rolls (the same statements, so the two cannot disagree); what else was
    queued and is ready is rolled with it. Buckets whose minutes are gone (pruned) are left as
    they are, and the intervals above them are recomputed from them.
    """
    _prepare(conn)
    with _rolling_cache(conn), write_transaction(conn):
        conn.execute(_QUEUE_RANGE, {"start": start_ms, "end": min(end_ms, now_ms)})
        return _roll(conn, now_ms, rebuilding=True)


_QUEUE_RANGE = SUBJECTS_OF.format(table="candle_rollups", column="coin") + f""", coins (coin) AS (
        SELECT subject FROM subjects WHERE subject IS NOT NULL
        UNION SELECT subject FROM ({SUBJECTS_OF.format(table="candles", column="coin")}
            SELECT subject FROM subjects WHERE subject IS NOT NULL) AS minute_subjects),
    hours (hour_ms) AS (
        SELECT :start - :start % {HOUR_MS} UNION ALL SELECT hour_ms + {HOUR_MS} FROM hours WHERE hour_ms + {HOUR_MS} < :end)
    INSERT INTO pending_rollups (interval, coin, bucket_ms, from_ms, to_ms)
    SELECT '1h', c.coin, h.hour_ms, h.hour_ms, h.hour_ms + {HOUR_MS} FROM coins AS c CROSS JOIN hours AS h
    WHERE EXISTS (SELECT 1 FROM candles AS m WHERE m.coin = c.coin AND m.interval = '1m'
            AND m.open_time_ms >= h.hour_ms AND m.open_time_ms < h.hour_ms + {HOUR_MS})
        OR EXISTS (SELECT 1 FROM candle_rollups AS r WHERE r.coin = c.coin AND r.interval = '5m'
            AND r.open_time_ms >= h.hour_ms AND r.open_time_ms < h.hour_ms + {HOUR_MS})
        OR EXISTS (SELECT 1 FROM candle_rollups AS r WHERE r.coin = c.coin AND r.interval = '1h' AND r.open_time_ms = h.hour_ms)
    ON CONFLICT (interval, coin, bucket_ms) DO UPDATE SET from_ms = excluded.from_ms, to_ms = excluded.to_ms"""
"""Queue every begun hour of ``[start, end)`` with minutes or rollups, for every coin, from its start."""


def _prepare(conn: MemoryConnection) -> None:
    if dialect_of(conn) is Dialect.SQLITE:
        conn.execute(_STEPS)
        conn.execute(_FILL_STEPS)
        conn.execute(_ROWS)


@contextmanager
def _rolling_cache(conn: MemoryConnection) -> Iterator[None]:
    """SQLite: :data:`ROLLING_CACHE_KIB` of page cache inside the block for the memory and for the
    temporary database (``rollup_rows``: a rebuilt day's 57,600 5m rows would spill to a file in
    its default 2 MB), the connection's own sizes after it."""
    if dialect_of(conn) is not Dialect.SQLITE:
        yield
        return
    # A temporary database reports 0 until its size is set: its pager runs at SQLite's default size.
    previous = {schema: int(conn.execute(f"PRAGMA {schema}.cache_size").fetchone()[0]) or _DEFAULT_CACHE
                for schema in ("main", "temp")}
    for schema in previous:
        conn.execute(f"PRAGMA {schema}.cache_size = -{ROLLING_CACHE_KIB}")
    try:
        yield
    finally:
        for schema, pages in previous.items():
            conn.execute(f"PRAGMA {schema}.cache_size = {pages}")


_TIME_SPAN = SUBJECTS_OF.format(table="candles", column="coin") + """
    SELECT min((SELECT min(m.open_time_ms) FROM candles AS m WHERE m.coin = s.subject AND m.interval = '1m')),
        max((SELECT max(m.open_time_ms) FROM candles AS m WHERE m.coin = s.subject AND m.interval = '1m'))
    FROM subjects AS s WHERE s.subject IS NOT NULL"""
"""Two seeks per coin (SQLite has no time index on candles: a plain min/max read every row, 0.3 s
at 2M minutes in ``bench/rollups.py``'s rebuild)."""


def candle_time_span(conn: MemoryConnection) -> tuple[int, int] | None:
    """Oldest and newest open time of the stored 1-minute candles; ``None`` when there are none."""
    row = conn.execute(_TIME_SPAN).fetchone()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def queued_rollups(conn: MemoryConnection) -> int:
    """Buckets still queued (not ready yet): reported so a bucket held back for long is visible.

    Each queued day and hour counts once, and an hour's 5m buckets still to roll once more.
    """
    return int(conn.execute(
        "SELECT count(*) + sum(CASE WHEN interval = '1h' AND from_ms < to_ms THEN 1 ELSE 0 END) FROM pending_rollups"
    ).fetchone()[0] or 0)


def rollups_of(conn: MemoryConnection, coin: str, interval: str) -> list[tuple[object, ...]]:
    """``(open_time_ms, open, high, low, close, volume, trades, minutes, complete)``, oldest first."""
    return conn.execute(
        "SELECT open_time_ms, open, high, low, close, volume, trades, minutes, complete "
        "FROM candle_rollups WHERE coin = ? AND interval = ? ORDER BY open_time_ms",
        (coin, interval),
    ).fetchall()
