"""SQL of the Parquet archive (``market_assets.archive``): a day's rows to archive, and the stamps.

A stamp (``archived_days``) says "the archive's partition of this UTC day of this dataset holds
every row the memory holds of it, exactly": its row count and checksum as written. The schema's
V8 triggers delete a day's stamp in the statement that changes the day (a closed minute written,
revised, closed or confirmed; a funding hour upserted), so a stamp still present inside a write
transaction proves the day unchanged since it was stamped. Pruning deletes rows and keeps the
stamp: the archive is then the day's only copy.

The datasets' rows are read a coin at a time through the primary keys (a loose index scan over
the coins, as retention does), never by a scan of the whole table. The DuckDB statements that
write and read the Parquet partitions live here too, with the rest of the platform's SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import ORDERED_JOIN, Dialect, dialect_of
from market_assets.memory.rollups import DAY_MS, SUBJECTS_OF

if TYPE_CHECKING:
    import pyarrow as pa

# DuckDB is imported by the two functions that use it, not here: the streamer imports this module
# (through retention's WAL bound and the prune's ``Stamp``), and DuckDB with pyarrow would cost it
# 0.4 s at start and ~40 MB of memory it never uses (bench/stream_throughput.py's RSS figure).

Dataset = Literal["candles", "funding"]
DATASETS: tuple[Dataset, ...] = ("candles", "funding")

CANDLE_COLUMNS = ("coin", "open_time_ms", "open", "high", "low", "close", "volume", "trades", "confirmed")
"""The archived columns of a closed 1-minute candle, in the archive's order."""
FUNDING_COLUMNS = ("coin", "hour_ms", "funding_rate", "premium", "settled", "source_time_ms")
"""The archived columns of a funding hour, in the archive's order."""

def _select_day(dataset: Dataset, join: str) -> str:
    """A day's rows, after the dataset's ``SUBJECTS_OF`` (unordered); ``join``: :data:`ORDERED_JOIN`."""
    if dataset == "candles":
        return f"""SELECT {', '.join(f'c.{column}' for column in CANDLE_COLUMNS)}
    FROM subjects {join} candles AS c ON c.coin = subjects.subject AND c.interval = '1m'
        AND c.open_time_ms >= :start AND c.open_time_ms < :end
    WHERE c.closed = 1"""
    return f"""SELECT {', '.join(f'f.{column}' for column in FUNDING_COLUMNS)}
    FROM subjects {join} funding AS f ON f.coin = subjects.subject
        AND f.hour_ms >= :start AND f.hour_ms < :end"""


_SELECT_DAY: dict[Dialect, dict[Dataset, str]] = {
    dialect: {dataset: _select_day(dataset, join) for dataset in DATASETS} for dialect, join in ORDERED_JOIN.items()
}
_SUBJECTS: dict[Dataset, str] = {
    "candles": SUBJECTS_OF.format(table="candles", column="coin"),
    "funding": SUBJECTS_OF.format(table="funding", column="coin"),
}
_ORDER: dict[Dataset, str] = {"candles": "coin, open_time_ms", "funding": "coin, hour_ms"}
_DAY_ROWS: dict[Dialect, dict[Dataset, str]] = {
    dialect: {dataset: f"{_SUBJECTS[dataset]} {texts[dataset]} ORDER BY {_ORDER[dataset]}" for dataset in DATASETS}
    for dialect, texts in _SELECT_DAY.items()
}
_SNAPSHOT: dict[Dialect, dict[Dataset, str]] = {
    Dialect.SQLITE: {dataset: f"temp.archive_{dataset}" for dataset in DATASETS},
    Dialect.POSTGRES: {dataset: f"pg_temp.archive_{dataset}" for dataset in DATASETS},
}
"""Per connection, the rows of the day being archived as read (``snapshot_day``): a temporary
table, which neither engine shares with another connection."""
_SNAPSHOT_ORDER: dict[Dialect, dict[Dataset, str]] = {
    Dialect.SQLITE: {dataset: "rowid" for dataset in DATASETS},  # as inserted: the day's order
    Dialect.POSTGRES: _ORDER,  # a table has no order of its own
}

_HAS_ROWS: dict[Dialect, dict[Dataset, str]] = {
    dialect: {
        "candles": SUBJECTS_OF.format(table="candles", column="coin")
        + f"""SELECT EXISTS (SELECT 1 FROM subjects {join} candles AS c ON c.coin = subjects.subject
            AND c.interval = '1m' AND c.open_time_ms >= :start AND c.open_time_ms < :end WHERE c.closed = 1)""",
        "funding": SUBJECTS_OF.format(table="funding", column="coin")
        + f"""SELECT EXISTS (SELECT 1 FROM subjects {join} funding AS f ON f.coin = subjects.subject
            AND f.hour_ms >= :start AND f.hour_ms < :end)""",
    }
    for dialect, join in ORDERED_JOIN.items()
}

_OLDEST: dict[Dataset, str] = {
    "candles": SUBJECTS_OF.format(table="candles", column="coin")
    + "SELECT min((SELECT min(open_time_ms) FROM candles AS c WHERE c.coin = subjects.subject "
    "AND c.interval = '1m')) FROM subjects WHERE subject IS NOT NULL",
    "funding": SUBJECTS_OF.format(table="funding", column="coin")
    + "SELECT min((SELECT min(hour_ms) FROM funding AS f WHERE f.coin = subjects.subject)) "
    "FROM subjects WHERE subject IS NOT NULL",
}


class Stamp(NamedTuple):
    rows: int
    checksum: str
    archived_at_ms: int


def day_rows(conn: MemoryConnection, dataset: Dataset, day_ms: int) -> list[tuple]:
    """The rows of ``dataset`` of the UTC day starting ``day_ms`` (candles: closed 1-minute rows
    only), columns as :data:`CANDLE_COLUMNS` / :data:`FUNDING_COLUMNS`, sorted by coin then time."""
    return conn.execute(_DAY_ROWS[dialect_of(conn)][dataset], {"start": day_ms, "end": day_ms + DAY_MS}).fetchall()


def snapshot_day(conn: MemoryConnection, dataset: Dataset, day_ms: int) -> list[tuple]:
    """The day's rows as :func:`day_rows` returns them, also kept in a temporary table of this
    connection (one statement: one snapshot of the memory; writing the connection's temporary
    database takes no lock on the memory) for :func:`unchanged_since_snapshot`."""
    dialect = dialect_of(conn)
    table = _SNAPSHOT[dialect][dataset]
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE {table} AS {_DAY_ROWS[dialect][dataset]}", {"start": day_ms, "end": day_ms + DAY_MS})
    return conn.execute(f"SELECT * FROM {table} ORDER BY {_SNAPSHOT_ORDER[dialect][dataset]}").fetchall()


def _matched(snapshot: Mapping[Dataset, str]) -> dict[Dataset, str]:
    """Snapshot rows still in the memory with the same values: a primary-key seek each."""
    return {
        "candles": f"""SELECT count(*) FROM {snapshot['candles']} AS s JOIN candles AS c ON c.coin = s.coin
        AND c.interval = '1m' AND c.open_time_ms = s.open_time_ms AND c.closed = 1
        {''.join(f' AND c.{column} IS NOT DISTINCT FROM s.{column}' for column in CANDLE_COLUMNS[2:])}""",
        "funding": f"""SELECT count(*) FROM {snapshot['funding']} AS s JOIN funding AS f ON f.coin = s.coin
        AND f.hour_ms = s.hour_ms
        {''.join(f' AND f.{column} IS NOT DISTINCT FROM s.{column}' for column in FUNDING_COLUMNS[2:])}""",
    }


_MATCHED: dict[Dialect, dict[Dataset, str]] = {dialect: _matched(tables) for dialect, tables in _SNAPSHOT.items()}


def unchanged_since_snapshot(conn: MemoryConnection, dataset: Dataset, day_ms: int) -> bool:
    """Whether the day's rows are still exactly those of the last :func:`snapshot_day`: as many
    rows, and every snapshot row still there with the same values; compared inside the database.

    Run in the write transaction that stamps the day: the lock is held for one scan of the day
    and a key seek per row (a 200-coin day: 0.34-0.61 s on the loaded 2-core test machine, where
    reading it back into Python and comparing took 1.07-1.81 s)."""
    dialect = dialect_of(conn)
    span = {"start": day_ms, "end": day_ms + DAY_MS}
    (now,) = conn.execute(
        f"{_SUBJECTS[dataset]} SELECT count(*) FROM ({_SELECT_DAY[dialect][dataset]}) AS held", span
    ).fetchone()
    (then,) = conn.execute(f"SELECT count(*) FROM {_SNAPSHOT[dialect][dataset]}").fetchone()
    (matched,) = conn.execute(_MATCHED[dialect][dataset]).fetchone()
    return bool(now == then == matched)


def drop_snapshot(conn: MemoryConnection, dataset: Dataset) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {_SNAPSHOT[dialect_of(conn)][dataset]}")


def forming_minutes(conn: MemoryConnection, day_ms: int) -> int:
    """The 1-minute rows of the day still forming (``closed = 0``)."""
    (count,) = conn.execute(
        SUBJECTS_OF.format(table="candles", column="coin")
        + f"""SELECT count(*) FROM subjects {ORDERED_JOIN[dialect_of(conn)]} candles AS c ON c.coin = subjects.subject
            AND c.interval = '1m' AND c.open_time_ms >= :start AND c.open_time_ms < :end WHERE c.closed = 0""",
        {"start": day_ms, "end": day_ms + DAY_MS},
    ).fetchone()
    return int(count)


def has_rows(conn: MemoryConnection, dataset: Dataset, day_ms: int) -> bool:
    """Whether the memory holds any row of the day (candles: any closed 1-minute row)."""
    sql = _HAS_ROWS[dialect_of(conn)][dataset]
    return bool(conn.execute(sql, {"start": day_ms, "end": day_ms + DAY_MS}).fetchone()[0])


def stamp_of(conn: MemoryConnection, dataset: Dataset, day_ms: int) -> Stamp | None:
    row = conn.execute(
        "SELECT rows, checksum, archived_at_ms FROM archived_days WHERE dataset = ? AND day_ms = ?", (dataset, day_ms)
    ).fetchone()
    return None if row is None else Stamp(int(row[0]), str(row[1]), int(row[2]))


def stamped_days(conn: MemoryConnection, dataset: Dataset, start_ms: int, end_ms: int) -> dict[int, Stamp]:
    """The stamps of ``dataset``'s UTC days overlapping ``[start_ms, end_ms)``, by day start."""
    rows = conn.execute(
        "SELECT day_ms, rows, checksum, archived_at_ms FROM archived_days "
        "WHERE dataset = ? AND day_ms > ? AND day_ms < ? ORDER BY day_ms",
        (dataset, start_ms - DAY_MS, end_ms),
    ).fetchall()
    return {int(day): Stamp(int(n), str(checksum), int(at)) for day, n, checksum, at in rows}


def write_stamp(conn: MemoryConnection, dataset: Dataset, day_ms: int, stamp: Stamp) -> None:
    """Stamp the day (replacing its stamp); inside the caller's write transaction."""
    conn.execute(
        "INSERT INTO archived_days (dataset, day_ms, rows, checksum, archived_at_ms) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (dataset, day_ms) DO UPDATE SET rows = excluded.rows, checksum = excluded.checksum, "
        "archived_at_ms = excluded.archived_at_ms",
        (dataset, day_ms, stamp.rows, stamp.checksum, stamp.archived_at_ms),
    )


def oldest_day_ms(conn: MemoryConnection, dataset: Dataset) -> int | None:
    """Start of the UTC day of the oldest stored row of ``dataset`` (a loose index scan)."""
    (oldest,) = conn.execute(_OLDEST[dataset]).fetchone()
    return None if oldest is None else int(oldest) - int(oldest) % DAY_MS


def unstamped_days(conn: MemoryConnection, dataset: Dataset, before_ms: int, limit: int) -> list[int]:
    """Oldest first, at most ``limit`` finished UTC days (ended by ``before_ms``) of ``dataset``
    that have rows in the memory but no stamp: days never archived, and days whose stamp a change
    removed. One existence seek per coin for each unstamped day from the oldest stored row on."""
    oldest = oldest_day_ms(conn, dataset)
    if oldest is None:
        return []
    stamped = set(stamped_days(conn, dataset, oldest, before_ms))
    found: list[int] = []
    day = oldest
    while day + DAY_MS <= before_ms and len(found) < limit:
        if day not in stamped and has_rows(conn, dataset, day):
            found.append(day)
        day += DAY_MS
    return found


def copy_to_parquet(
    table: pa.Table, path: Path, *, sort_by: Sequence[str], row_group_rows: int, metadata: Mapping[str, str]
) -> None:
    """Write ``table`` sorted by ``sort_by`` to the Parquet file ``path``: zstd, row groups of
    ``row_group_rows``, ``metadata`` as the file's key-value metadata (DuckDB ``COPY``; keys and
    values are the archive's own, quoted here as SQL text)."""
    pairs = ", ".join(f"{_text(key)}: {_text(value)}" for key, value in metadata.items())
    order = ", ".join(_name(column) for column in sort_by)
    import duckdb

    with duckdb.connect() as db:
        db.register("day_rows", table)
        db.execute(
            f"COPY (SELECT * FROM day_rows ORDER BY {order}) TO {_text(str(path))} (FORMAT parquet, "
            f"COMPRESSION zstd, ROW_GROUP_SIZE {int(row_group_rows)}, KV_METADATA {{{pairs}}})"
        )


def read_parquet(
    paths: Sequence[Path], columns: Sequence[str], time_column: str, coins: Sequence[str] | None, start_ms: int, end_ms: int,
    *, ordered: bool = True,
) -> pa.Table:
    """``columns`` of the rows of the Parquet files ``paths`` with ``time_column`` in
    ``[start_ms, end_ms)`` and ``coin`` in ``coins`` (``None``: all), sorted by coin then time
    when ``ordered`` (else in the files' order, each file's rows in their order: DuckDB keeps
    insertion order without ORDER BY); an in-memory DuckDB connection of its own (thread-safe).
    Raises ``duckdb.Error`` as DuckDB does."""
    where = f"{_name(time_column)} >= $start AND {_name(time_column)} < $end"
    params: dict[str, object] = {"files": [str(path) for path in paths], "start": start_ms, "end": end_ms}
    if coins is not None:
        where += " AND coin IN (SELECT unnest($coins))"
        params["coins"] = list(coins)
    selected = ", ".join(_name(column) for column in columns)
    import duckdb

    with duckdb.connect() as db:
        return db.sql(
            f"SELECT {selected} FROM read_parquet($files) WHERE {where}"
            + (f" ORDER BY coin, {_name(time_column)}" if ordered else ""),
            params=params,
        ).to_arrow_table()


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'
