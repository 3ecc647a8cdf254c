"""SQL of the read API (``market_assets.read``): candles as *units*, features, funding, markets, series.

A unit is a stored piece of a bar: one closed 1-minute row, or one rollup bucket (5m, 1h, 1d),
in one shape, ``(range, open_time_ms, open, high, low, close, volume, trades, minutes,
confirmed_minutes)``, so the reader composes any interval from whichever holds it. Units are
asked for by *ranges*, ``(coin, from_ms, to_ms)`` passed as one JSON array: one statement
seeks each range's rows through the primary key, in the ranges' order, and names a row's range
by its index in the array: every value of a unit is a number, which is what lets the reader
hold 864,000 of them as one float64 matrix, and a small integer, which Python does not
allocate per row as it would the coin's name.

On SQLite the matrix is filled as the cursor steps (``numpy.fromiter``). On PostgreSQL no
Python row is made at all: the server packs each column of each range's day into one bytea of
float8s (``string_agg(float8send(…))``), a ``numpy.frombuffer`` each. 864,000 minutes (20 coins
× 30 days, a 2-core machine under load): 2.1-2.5 s, against 4.6 s fetching rows into
``numpy.fromiter``, 10.5 s for COPY as CSV into pyarrow and 12.1 s for COPY binary parsed as
records (psycopg returns COPY data a row at a time); the server's own scan is 0.6-1.4 s of it.

A rollup bucket is a unit only while it is *current*: a queued change (``pending_rollups``)
that touches it means its minutes changed since it was rolled, so the reader takes the bucket
from finer units instead. Every function here runs inside the caller's read transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import ORDERED_JOIN, Dialect, dialect_of, pick
from market_assets.memory.rollups import DAY_MS, HOUR_MS, SUBJECTS_OF

Range = tuple[str, int, int]
"""``(coin, from_ms, to_ms)``: the units of ``coin`` opening in ``[from_ms, to_ms)``."""

UNIT_COLUMNS = ("range", "open_time_ms", "open", "high", "low", "close", "volume", "trades", "minutes", "confirmed_minutes")

_RANGES = {
    Dialect.SQLITE: "ranges (i, coin, from_ms, to_ms) AS (SELECT key, value ->> 0, value ->> 1, value ->> 2 "
    "FROM json_each(:ranges))",
    Dialect.POSTGRES: "ranges (i, coin, from_ms, to_ms) AS (SELECT t.n - 1, t.r ->> 0, (t.r ->> 1)::bigint, "
    "(t.r ->> 2)::bigint FROM jsonb_array_elements(CAST(:ranges AS jsonb)) WITH ORDINALITY AS t (r, n))",
}
def _units_select(columns: Sequence[str]) -> str:
    return ", ".join(f"{column} AS u{index}" for index, column in enumerate(columns))


def _packed(units: str, width: int = len(UNIT_COLUMNS)) -> str:
    """PostgreSQL's text of a unit statement: each column as one bytea of big-endian float8s
    (``float8send``), in the same row order in every column (each aggregate is fed the rows in
    one sequence). A plain aggregate streams the rows as they are joined: grouped by range and
    day, the rows were sorted first (on disk at 864,000 rows: 6 s instead of 2)."""
    columns = ", ".join(f"string_agg(float8send(CAST(u{i} AS float8)), ''::bytea)" for i in range(width))
    return f"SELECT {columns} FROM ({units}) AS units"


def _minutes(dialect: Dialect) -> str:
    columns = ("r.i", "m.open_time_ms", "m.open", "m.high", "m.low", "m.close", "m.volume", "m.trades", "1", "m.confirmed")
    units = f"""WITH {_RANGES[dialect]}
    SELECT {_units_select(columns)}
    FROM ranges AS r {ORDERED_JOIN[dialect]} candles AS m ON m.coin = r.coin AND m.interval = '1m'
        AND m.open_time_ms >= r.from_ms AND m.open_time_ms < r.to_ms
    WHERE m.closed = 1 OR :forming = 1"""
    return units if dialect is Dialect.SQLITE else _packed(units)


_MINUTES = {dialect: _minutes(dialect) for dialect in Dialect}

_CURRENT = {
    # A 5m bucket is queued when its hour's span of changed buckets holds it.
    "5m": f"""NOT EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1h' AND p.coin = u.coin
        AND p.bucket_ms = u.open_time_ms - u.open_time_ms % {HOUR_MS}
        AND u.open_time_ms >= p.from_ms AND u.open_time_ms < p.to_ms)""",
    # An hour is queued from the moment one of its minutes changes until it is rolled.
    "1h": """NOT EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1h' AND p.coin = u.coin
        AND p.bucket_ms = u.open_time_ms)""",
    # A day is queued itself, or through any of its hours.
    "1d": f"""NOT EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1d' AND p.coin = u.coin
            AND p.bucket_ms = u.open_time_ms)
        AND NOT EXISTS (SELECT 1 FROM pending_rollups AS p WHERE p.interval = '1h' AND p.coin = u.coin
            AND p.bucket_ms >= u.open_time_ms AND p.bucket_ms < u.open_time_ms + {DAY_MS})""",
}


def _rollups(dialect: Dialect, interval: str) -> str:
    columns = ("r.i", "u.open_time_ms", "u.open", "u.high", "u.low", "u.close", "u.volume", "u.trades", "u.minutes",
               "u.confirmed_minutes")
    units = f"""WITH {_RANGES[dialect]}
    SELECT {_units_select(columns)}
    FROM ranges AS r {ORDERED_JOIN[dialect]} candle_rollups AS u ON u.coin = r.coin AND u.interval = '{interval}'
        AND u.open_time_ms >= r.from_ms AND u.open_time_ms < r.to_ms
    WHERE {_CURRENT[interval]}"""
    return units if dialect is Dialect.SQLITE else _packed(units)


_ROLLUPS = {dialect: {interval: _rollups(dialect, interval) for interval in _CURRENT} for dialect in Dialect}


def minute_units(conn: MemoryConnection, ranges: Sequence[Range], *, forming: bool = False) -> np.ndarray:
    """The closed 1-minute rows of ``ranges`` as a units matrix (``forming``: the forming ones
    too): float64, one row per unit, :data:`UNIT_COLUMNS`, the first holding the range's index."""
    return _unit_matrix(conn, _MINUTES[dialect_of(conn)], ranges, forming=int(forming))


def rollup_units(conn: MemoryConnection, interval: str, ranges: Sequence[Range]) -> np.ndarray:
    """The current rollup buckets of ``interval`` in ``ranges`` (a queued bucket is left out), as a
    units matrix (:func:`minute_units`)."""
    return _unit_matrix(conn, _ROLLUPS[dialect_of(conn)][interval], ranges)


def _unit_matrix(conn: MemoryConnection, sql: str, ranges: Sequence[Range], **params: object) -> np.ndarray:
    width = len(UNIT_COLUMNS)
    if not ranges:
        return np.empty((0, width))
    if dialect_of(conn) is Dialect.POSTGRES:
        chunks = [ranges[first:first + PACKED_RANGES] for first in range(0, len(ranges), PACKED_RANGES)]
        matrices = [_packed_matrix(conn, sql, {**params, "ranges": json.dumps(chunk)}) for chunk in chunks]
        for chunk, matrix in enumerate(matrices):
            matrix[:, 0] += chunk * PACKED_RANGES
        return np.concatenate(matrices)
    # Filled as the rows are stepped: 20-25 % faster than a list of tuples made an array.
    params["ranges"] = json.dumps(ranges)
    return np.fromiter(conn.execute(sql, params), dtype=np.dtype((np.float64, width))).reshape(-1, width)


PACKED_RANGES = 20
"""Ranges per statement on PostgreSQL: the server holds a statement's packed columns until it
ends, so at most 20 coins' 30 days of minutes (~70 MB) at a time."""


def _packed_matrix(conn: MemoryConnection, sql: str, params: dict[str, object], width: int = len(UNIT_COLUMNS)) -> np.ndarray:
    """The columns of a :func:`_packed` statement as one float64 matrix, a ``numpy.frombuffer``
    each, read in binary (bytea as it is sent, not hex text to decode)."""
    # Imported here: psycopg is loaded by the processes that open a PostgreSQL memory only.
    from market_assets.memory.postgres import translate

    with conn.raw.cursor(binary=True) as cursor:  # type: ignore[attr-defined]
        packed = cursor.execute(translate(sql), params).fetchone()
    if packed[0] is None:  # no row: every aggregate is NULL
        return np.empty((0, width))
    return np.column_stack([np.frombuffer(column, dtype=">f8") for column in packed]).astype(np.float64)


def known_coins(conn: MemoryConnection) -> list[str]:
    """Every coin the memory knows: listed in the universe (delisted included), or with candles or
    rollups stored. Loose index scans: one seek per coin, whatever the history held."""
    stored = "SELECT subject FROM subjects WHERE subject IS NOT NULL"
    rows = conn.execute(
        f"SELECT coin FROM hyperliquid_universe UNION SELECT subject FROM ("
        f"{SUBJECTS_OF.format(table='candles', column='coin')} {stored}) AS with_candles UNION SELECT subject FROM ("
        f"{SUBJECTS_OF.format(table='candle_rollups', column='coin')} {stored}) AS with_rollups ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def _in_list(conn: MemoryConnection, column: str, values: Sequence[str]) -> tuple[str, object]:
    """``column`` among ``values``: the condition and its one parameter."""
    if dialect_of(conn) is Dialect.POSTGRES:
        return f"{column} = ANY(?)", list(values)
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def _coin_filter(conn: MemoryConnection, coins: Sequence[str] | None) -> tuple[str, list[object]]:
    if coins is None:
        return "", []
    condition, param = _in_list(conn, "coin", coins)
    return f" AND {condition}", [param]


def feature_rows(
    conn: MemoryConnection, coins: Sequence[str] | None, columns: Sequence[str], from_ms: int, to_ms: int
) -> list[tuple]:
    """``(coin, open_time_ms, *columns)`` of the 1-minute features opening in ``[from_ms, to_ms)``."""
    where, params = _coin_filter(conn, coins)
    return conn.execute(
        f"SELECT coin, open_time_ms, {', '.join(columns)} FROM features WHERE interval = '1m' "
        f"AND open_time_ms >= ? AND open_time_ms < ?{where} ORDER BY coin, open_time_ms",
        [from_ms, to_ms, *params],
    ).fetchall()


def feature_arrays(
    conn: MemoryConnection, coins: Sequence[str] | None, columns: Sequence[str], from_ms: int, to_ms: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The 1-minute features of ``coins`` (``None``: every coin) opening in ``[from_ms, to_ms)``,
    by coin then time: each row's coin, the open times (int64), and the ``columns``' values as one
    float64 matrix (NULL, a warm-up bar, as NaN).

    On PostgreSQL packed as the units are (:func:`_packed`: no Python row), ``coins`` at a time
    (:data:`PACKED_RANGES`), and sorted here: an aggregate's input order is not the answer's."""
    if dialect_of(conn) is not Dialect.POSTGRES:
        rows = feature_rows(conn, coins, columns, from_ms, to_ms)
        if not rows:
            return [], np.empty(0, dtype=np.int64), np.empty((0, len(columns)))
        names, opens, *values = zip(*rows)
        return list(names), np.asarray(opens, dtype=np.int64), np.asarray(values, dtype=np.float64).T.reshape(-1, len(columns))
    wanted = known_coins(conn) if coins is None else list(coins)
    parts = []
    for first in range(0, len(wanted), PACKED_RANGES):
        chunk = wanted[first:first + PACKED_RANGES]
        selected = ", ".join(
            ["array_position(CAST(:coins AS text[]), coin) - 1 + :first AS u0", "open_time_ms AS u1",
             *(f"coalesce({column}, 'NaN') AS u{index + 2}" for index, column in enumerate(columns))]
        )
        sql = _packed(f"SELECT {selected} FROM features WHERE interval = '1m' AND coin = ANY(CAST(:coins AS text[])) "
                      "AND open_time_ms >= :start AND open_time_ms < :end", width=2 + len(columns))
        parts.append(_packed_matrix(conn, sql, {"coins": chunk, "first": first, "start": from_ms, "end": to_ms},
                                    width=2 + len(columns)))
    matrix = np.concatenate(parts) if parts else np.empty((0, 2 + len(columns)))
    codes, opens = matrix[:, 0].astype(np.int64), matrix[:, 1].astype(np.int64)
    order = np.lexsort((opens, codes))
    return [wanted[code] for code in codes[order].tolist()], opens[order], matrix[order, 2:]


FUNDING_COLUMNS = ("coin", "hour_ms", "funding_rate", "premium", "settled", "source_time_ms")


def funding_rows(conn: MemoryConnection, coins: Sequence[str] | None, from_ms: int, to_ms: int) -> list[tuple]:
    """:data:`FUNDING_COLUMNS` of the funding hours in ``[from_ms, to_ms)``."""
    where, params = _coin_filter(conn, coins)
    return conn.execute(
        f"SELECT {', '.join(FUNDING_COLUMNS)} FROM funding WHERE hour_ms >= ? AND hour_ms < ?{where} "
        "ORDER BY coin, hour_ms",
        [from_ms, to_ms, *params],
    ).fetchall()


MARKET_COLUMNS = ("market_id", "question", "slug", "outcomes", "outcome_prices", "volume", "liquidity",
                  "end_date", "active", "closed", "updated_at_ms")


def market_rows(conn: MemoryConnection, search: str | None, active: bool | None) -> list[tuple]:
    """:data:`MARKET_COLUMNS` of the stored market summaries whose question or slug contains
    ``search`` (any case), active or not as asked, by market id."""
    clauses: list[str] = ["TRUE"]
    params: list[object] = []
    if search is not None:
        find = pick(conn, sqlite="instr", postgres="strpos")
        clauses.append(f"({find}(lower(coalesce(question, '')), ?) > 0 OR {find}(lower(coalesce(slug, '')), ?) > 0)")
        params += [search.lower()] * 2
    if active is not None:
        clauses.append("active = ?")
        params.append(int(active))
    return conn.execute(
        f"SELECT {', '.join(MARKET_COLUMNS)} FROM polymarket_markets WHERE {' AND '.join(clauses)} ORDER BY market_id",
        params,
    ).fetchall()


def series_rows(
    conn: MemoryConnection, series: Sequence[str] | None, subjects: Sequence[str] | None, from_ms: int, to_ms: int
) -> list[tuple]:
    """``(series, subject, ts_ms, value, updated_at_ms)`` of the DefiLlama points in ``[from_ms, to_ms)``."""
    clauses: list[str] = ["ts_ms >= ? AND ts_ms < ?"]
    params: list[object] = [from_ms, to_ms]
    for column, wanted in (("series", series), ("subject", subjects)):
        if wanted is not None:
            condition, param = _in_list(conn, column, wanted)
            clauses.append(condition)
            params.append(param)
    return conn.execute(
        f"SELECT series, subject, ts_ms, value, updated_at_ms FROM defillama_series WHERE {' AND '.join(clauses)} "
        "ORDER BY series, subject, ts_ms",
        params,
    ).fetchall()
