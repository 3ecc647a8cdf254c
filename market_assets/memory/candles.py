"""SQL of the candles table: the streamer's batched upserts, bucket closing and gap queries.

A bucket is *forming* (``closed = 0``) until a later bucket arrives for its coin or its close
time has passed; forming rows are re-sent with growing volume and simply upserted. A closed
bucket is *confirmed* (``confirmed = 1``) once its final state is known (SPEC §8), *unverified*
until then. A row is replaced only by one at least as final: forming < closed < confirmed, so a
late forming frame never overwrites a closed minute and an unverified one never overwrites a
confirmed minute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from functools import cache
from itertools import chain
from typing import NamedTuple

from market_assets.memory.connection import (
    MemoryConnection,
    is_refused_value,
    pipelined,
    write_transaction,
)
from market_assets.memory.dialect import Dialect, dialect_of

Price = float
"""A candle value as the memory stores it (REAL); the sources' parsers give candles as doubles."""


class CandleRow(NamedTuple):
    coin: str
    interval: str
    open_time_ms: int
    close_time_ms: int
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Price
    trades: int
    closed: bool
    confirmed: bool = False


_UPSERT = (
    "INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, "
    "volume, trades, closed, confirmed, ingested_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (coin, interval, open_time_ms) DO UPDATE SET close_time_ms = excluded.close_time_ms, "
    "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume, trades = excluded.trades, closed = excluded.closed, "
    "confirmed = excluded.confirmed, ingested_at_ms = excluded.ingested_at_ms "
    "WHERE candles.closed + candles.confirmed <= excluded.closed + excluded.confirmed"
)


_UPSERT_COLUMNS = _UPSERT.replace(
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::float8[], ?::float8[], ?::float8[], "
    "?::float8[], ?::float8[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])",
)
"""PostgreSQL's batch upsert: the rows as one array per column."""


def upsert_params(row: CandleRow, now_ms: int) -> tuple[object, ...]:
    """``_UPSERT``'s parameters: the row as it is (its fields are the statement's columns, in
    order) and the time it was written. No per-value conversion: the streamer's hot path."""
    return row + (now_ms,)


_ROW_PLACES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_MOST_ROWS_PER_STATEMENT = 1024
"""13,312 parameters, under SQLite's 32,766."""


@cache
def _upsert_of(count: int) -> str:
    """``_UPSERT`` with ``count`` rows of values: one statement, one ``sqlite3_step``."""
    return _UPSERT.replace(f"VALUES {_ROW_PLACES}", "VALUES " + ", ".join([_ROW_PLACES] * count))


_COLUMN_KINDS = ("text", "text", "int", "int", "float", "float", "float", "float", "float", "int", "int", "int")
"""How each ``CandleRow`` field is written into its array literal (flags as 0/1)."""


def _array_literal(values: Sequence[object], kind: str) -> str:
    """A column as PostgreSQL's array text (``{1.5,2.25}``), joined by C-level ``str``/``repr``:
    psycopg dumps a list element by element in Python, which took two thirds of the streamer's
    flush time on PostgreSQL (1,000 rows of 13 columns: 36 ms as lists, 13 ms as literals, the
    server's work included). ``repr`` keeps every double exactly; an infinity goes as ``inf``
    and is stored, as SQLite stores it; a NaN goes as ``nan`` and the columns' ``<> 'NaN'``
    check refuses the batch, whose rows are then written one by one, the NaN refused as on
    SQLite. Text is quoted and escaped."""
    if kind == "float":
        return "{" + ",".join(map(repr, map(float, values))) + "}"  # type: ignore[arg-type]
    if kind == "int":
        return "{" + ",".join(map(str, map(int, values))) + "}"  # type: ignore[call-overload,arg-type]
    joined = '","'.join(map(str, values))
    if '"' in joined or "\\" in joined:  # a quote or backslash to escape: never a coin or an interval seen yet
        joined = '","'.join(str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + joined + '"}' if values else "{}"


_ROWS_PER_ARRAY_STATEMENT = 2048
"""PostgreSQL: rows per ``unnest`` statement. In a pipeline (the streamer's flush) the server
upserts one part while this process writes the next one's arrays, instead of idling through the
whole batch's text first (a 37,000-row flush beside a busy socket thread: ``bench/postgres.py``)."""


def upsert_candles(conn: MemoryConnection, rows: Sequence[CandleRow], now_ms: int) -> None:
    """Upsert ``rows`` inside the caller's transaction (a row only replaces one as final or less).

    On SQLite, up to 1,024 rows a statement, not ``executemany``: Python's sqlite3 releases the
    GIL around each ``sqlite3_step`` and must take it back for the next row, and while the
    streamer's socket thread is busy that wait is up to the interpreter's switch interval (5 ms)
    a row: ``executemany`` fell from 26,000 to 204 rows/s beside a busy thread, a 1,024-row
    statement held 26,000-42,000. Statements come in power-of-two sizes, so a few stay prepared.
    On PostgreSQL, one statement per :data:`_ROWS_PER_ARRAY_STATEMENT` rows over their columns
    as arrays (``unnest``), so the candles' statement-level triggers queue the batch set-based: 5,000 closed minutes at
    8,000-11,700 rows/s here, ~3x psycopg's pipelined ``executemany`` (2,200-3,800) and on a
    par with ``COPY`` into a temporary table then ``INSERT … SELECT`` (6,700-9,800), for one
    round trip. One statement may not touch a row twice, so a batch holding a key twice (the
    streamer's never does: it keeps one row per key) is upserted row by row, in order, as
    SQLite does."""
    if dialect_of(conn) is Dialect.POSTGRES:
        if len({(row.coin, row.interval, row.open_time_ms) for row in rows}) < len(rows):
            conn.executemany(_UPSERT, [row + (now_ms,) for row in rows])
        else:
            for start in range(0, len(rows), _ROWS_PER_ARRAY_STATEMENT):
                columns = list(zip(*rows[start : start + _ROWS_PER_ARRAY_STATEMENT]))
                texts = [_array_literal(column, kind) for column, kind in zip(columns, _COLUMN_KINDS, strict=True)]
                conn.execute(_UPSERT_COLUMNS, [*texts, "{" + ",".join([str(now_ms)] * len(columns[0])) + "}"])
        return
    stamp = (now_ms,)
    start = 0
    while start < len(rows):
        count = min(_MOST_ROWS_PER_STATEMENT, 1 << ((len(rows) - start).bit_length() - 1))
        part = rows[start : start + count]
        conn.execute(_upsert_of(count), list(chain.from_iterable(row + stamp for row in part)))
        start += count


class RepairReason(StrEnum):
    """Why a minute is owed to REST (``candle_repairs``, read by ``memory.repairs``)."""

    UNVERIFIED = "unverified"
    """Stored, but its final state is unknown."""
    MISSING = "missing"
    """Not stored: the stream skipped it."""
    REJECTED = "rejected"
    """Its frame carried impossible values, or the memory refused the row."""


Repair = tuple[str, int, RepairReason]
"""``(coin, open_time_ms, reason)``: one owed minute."""


def queue_repairs(conn: MemoryConnection, interval: str, repairs: Iterable[Repair], now_ms: int) -> None:
    """Queue ``repairs`` inside the caller's transaction; a minute already queued keeps its entry."""
    conn.executemany(
        "INSERT INTO candle_repairs (coin, interval, open_time_ms, reason, queued_at_ms) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (coin, interval, open_time_ms) DO NOTHING",
        [(coin, interval, open_ms, reason.value, now_ms) for coin, open_ms, reason in repairs],
    )


class RefusedRow(NamedTuple):
    row: CandleRow
    error: str


def write_candles(
    conn: MemoryConnection,
    rows: Sequence[CandleRow],
    *,
    newest_open_by_coin: Mapping[str, int],
    interval: str,
    close_ended_before_ms: int,
    now_ms: int,
    repairs: Sequence[Repair] = (),
) -> tuple[int, list[RefusedRow]]:
    """One flush of the streamer, in one transaction: upsert ``rows``, queue ``repairs`` (the
    minutes these rows revealed as owed to REST), then close every forming bucket older than its
    coin's newest bucket and every one whose close time is before ``close_ended_before_ms``.

    A row the memory refuses (a value SQLite will not store) is set aside with its error and the
    rest of the batch is written without it. Returns the rows upserted and the rows refused.
    A lock or I/O error rolls the whole flush back and raises.
    """
    refused: list[RefusedRow] = []
    with write_transaction(conn):
        # Under a savepoint: a refused row aborts a PostgreSQL transaction, and on either engine
        # the batch's rows before it (and what their triggers queued) are undone with it. On
        # PostgreSQL each block's statements go in one round trip (their errors surface as it ends).
        try:
            with pipelined(conn):
                conn.execute("SAVEPOINT candle_batch")
                upsert_candles(conn, rows, now_ms)
            written = len(rows)
        except Exception as exc:
            if not is_refused_value(exc):
                raise
            conn.execute("ROLLBACK TO candle_batch")
            written = _upsert_one_by_one(conn, rows, now_ms, refused)
        with pipelined(conn):
            conn.execute("RELEASE candle_batch")
            queue_repairs(conn, interval, [*repairs, *((r.row.coin, r.row.open_time_ms, RepairReason.REJECTED) for r in refused)], now_ms)
            _close_older(conn, interval, newest_open_by_coin)
            _close_ended(conn, interval, close_ended_before_ms)
    return written, refused


def _close_older(conn: MemoryConnection, interval: str, newest_open_by_coin: Mapping[str, int]) -> None:
    """Close each coin's forming buckets that ended before its newest one began.

    Through the forming index this visits only the few forming rows; the primary key would walk
    every stored minute of the coin (100 ms per 171-coin flush at 5,000 minutes of history).
    SQLite is told so (``INDEXED BY``); PostgreSQL takes every coin in one statement, joined
    to the forming rows the partial index holds."""
    if dialect_of(conn) is Dialect.POSTGRES:
        conn.execute(
            "UPDATE candles AS c SET closed = 1 FROM unnest(?::text[], ?::bigint[]) AS n (coin, open_ms) "
            "WHERE c.closed = 0 AND c.coin = n.coin AND c.interval = ? AND c.close_time_ms < n.open_ms",
            (list(newest_open_by_coin), list(newest_open_by_coin.values()), interval),
        )
        return
    conn.executemany(
        "UPDATE candles INDEXED BY candles_forming SET closed = 1 "
        "WHERE closed = 0 AND close_time_ms < ? AND coin = ? AND interval = ?",
        [(open_ms, coin, interval) for coin, open_ms in newest_open_by_coin.items()],
    )


def _upsert_one_by_one(conn: MemoryConnection, rows: Sequence[CandleRow], now_ms: int, refused: list[RefusedRow]) -> int:
    """The batch failed on some row: write each under its own savepoint, set aside the ones refused."""
    written = 0
    for row in rows:
        conn.execute("SAVEPOINT candle_row")
        try:
            conn.execute(_UPSERT, upsert_params(row, now_ms))
        except Exception as exc:
            if not is_refused_value(exc):
                raise
            conn.execute("ROLLBACK TO candle_row")
            refused.append(RefusedRow(row, f"{type(exc).__name__}: {_first_line(exc)}"))
        else:
            written += 1
        conn.execute("RELEASE candle_row")
    return written


def _first_line(exc: BaseException) -> str:
    """psycopg's messages carry DETAIL lines (the whole row) after the first."""
    return str(exc).strip().split("\n", 1)[0]


def close_ended_candles(conn: MemoryConnection, interval: str, before_ms: int) -> None:
    """Close every forming bucket whose close time is before ``before_ms``: what a flush does
    besides its rows, for a writer stopping with no rows left to flush."""
    with write_transaction(conn):
        _close_ended(conn, interval, before_ms)


def _close_ended(conn: MemoryConnection, interval: str, before_ms: int) -> None:
    conn.execute(
        "UPDATE candles SET closed = 1 WHERE closed = 0 AND close_time_ms < ? AND interval = ?",
        (before_ms, interval),
    )


def candles_of(conn: MemoryConnection, coin: str, interval: str) -> list[CandleRow]:
    """Every stored bucket of one coin, oldest first (values as stored, REAL)."""
    rows = conn.execute(
        "SELECT coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume, trades, closed, "
        "confirmed FROM candles WHERE coin = ? AND interval = ? ORDER BY open_time_ms",
        (coin, interval),
    ).fetchall()
    return [
        CandleRow(coin, interval_, open_ms, close_ms, o, h, low, c, v, n, bool(closed), bool(confirmed))
        for coin, interval_, open_ms, close_ms, o, h, low, c, v, n, closed, confirmed in rows
    ]
