"""SQL of the read API (``market_assets.read``): candles as *units*, features, funding, markets, series.

A unit is a stored piece of a bar: one closed 1-minute row, or one rollup bucket (5m, 1h, 1d),
in one shape, ``(range, open_time_ms, open, high, low, close, volume, trades, minutes,
confirmed_minutes)``, so the reader composes any interval from whichever holds it. Units are
asked for by *ranges*, ``(coin, from_ms, to_ms)`` passed as one JSON array: one statement
seeks each range's rows through the primary key, in the ranges' order, and names a row's range
by its index in the array: every value of a unit is a number, which is what lets the reader
turn 864,000 of them into arrays in one step (``numpy.array(rows)``), and a small integer,
which Python does not allocate per row as it would the coin's name.

A rollup bucket is a unit only while it is *current*: a queued change (``pending_rollups``)
that touches it means its minutes changed since it was rolled, so the reader takes the bucket
from finer units instead. Every function here runs inside the caller's read transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from market_assets.memory.rollups import DAY_MS, HOUR_MS, SUBJECTS_OF

Range = tuple[str, int, int]
"""``(coin, from_ms, to_ms)``: the units of ``coin`` opening in ``[from_ms, to_ms)``."""

UNIT_COLUMNS = ("range", "open_time_ms", "open", "high", "low", "close", "volume", "trades", "minutes", "confirmed_minutes")

_RANGES = "ranges (i, coin, from_ms, to_ms) AS (SELECT key, value ->> 0, value ->> 1, value ->> 2 FROM json_each(:ranges))"

_MINUTES = f"""WITH {_RANGES}
    SELECT r.i, m.open_time_ms, m.open, m.high, m.low, m.close, m.volume, m.trades, 1, m.confirmed
    FROM ranges AS r CROSS JOIN candles AS m ON m.coin = r.coin AND m.interval = '1m'
        AND m.open_time_ms >= r.from_ms AND m.open_time_ms < r.to_ms
    WHERE m.closed = 1 OR :forming"""

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

_ROLLUPS = {
    interval: f"""WITH {_RANGES}
    SELECT r.i, u.open_time_ms, u.open, u.high, u.low, u.close, u.volume, u.trades, u.minutes, u.confirmed_minutes
    FROM ranges AS r CROSS JOIN candle_rollups AS u ON u.coin = r.coin AND u.interval = '{interval}'
        AND u.open_time_ms >= r.from_ms AND u.open_time_ms < r.to_ms
    WHERE {current}"""
    for interval, current in _CURRENT.items()
}


def minute_units(conn: sqlite3.Connection, ranges: Sequence[Range], *, forming: bool = False) -> Iterator[tuple]:
    """The closed 1-minute rows of ``ranges`` as units (``forming``: the forming ones too), as they
    are stepped: a caller that stores them as numbers needs no list of 864,000 tuples first."""
    if not ranges:
        return iter(())
    return conn.execute(_MINUTES, {"ranges": json.dumps(ranges), "forming": forming})


def rollup_units(conn: sqlite3.Connection, interval: str, ranges: Sequence[Range]) -> Iterator[tuple]:
    """The current rollup buckets of ``interval`` in ``ranges`` (a queued bucket is left out), as stepped."""
    if not ranges:
        return iter(())
    return conn.execute(_ROLLUPS[interval], {"ranges": json.dumps(ranges)})


def known_coins(conn: sqlite3.Connection) -> list[str]:
    """Every coin the memory knows: listed in the universe (delisted included), or with candles or
    rollups stored. Loose index scans: one seek per coin, whatever the history held."""
    stored = "SELECT subject FROM subjects WHERE subject IS NOT NULL"
    rows = conn.execute(
        f"SELECT coin FROM hyperliquid_universe UNION SELECT subject FROM ("
        f"{SUBJECTS_OF.format(table='candles', column='coin')} {stored}) UNION SELECT subject FROM ("
        f"{SUBJECTS_OF.format(table='candle_rollups', column='coin')} {stored}) ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def _coin_filter(coins: Sequence[str] | None) -> tuple[str, list[object]]:
    if coins is None:
        return "", []
    return " AND coin IN (SELECT value FROM json_each(?))", [json.dumps(list(coins))]


def feature_rows(
    conn: sqlite3.Connection, coins: Sequence[str] | None, columns: Sequence[str], from_ms: int, to_ms: int
) -> list[tuple]:
    """``(coin, open_time_ms, *columns)`` of the 1-minute features opening in ``[from_ms, to_ms)``."""
    where, params = _coin_filter(coins)
    return conn.execute(
        f"SELECT coin, open_time_ms, {', '.join(columns)} FROM features WHERE interval = '1m' "
        f"AND open_time_ms >= ? AND open_time_ms < ?{where} ORDER BY coin, open_time_ms",
        [from_ms, to_ms, *params],
    ).fetchall()


FUNDING_COLUMNS = ("coin", "hour_ms", "funding_rate", "premium", "settled", "source_time_ms")


def funding_rows(conn: sqlite3.Connection, coins: Sequence[str] | None, from_ms: int, to_ms: int) -> list[tuple]:
    """:data:`FUNDING_COLUMNS` of the funding hours in ``[from_ms, to_ms)``."""
    where, params = _coin_filter(coins)
    return conn.execute(
        f"SELECT {', '.join(FUNDING_COLUMNS)} FROM funding WHERE hour_ms >= ? AND hour_ms < ?{where} "
        "ORDER BY coin, hour_ms",
        [from_ms, to_ms, *params],
    ).fetchall()


MARKET_COLUMNS = ("market_id", "question", "slug", "outcomes", "outcome_prices", "volume", "liquidity",
                  "end_date", "active", "closed", "updated_at_ms")


def market_rows(conn: sqlite3.Connection, search: str | None, active: bool | None) -> list[tuple]:
    """:data:`MARKET_COLUMNS` of the stored market summaries whose question or slug contains
    ``search`` (any case), active or not as asked, by market id."""
    clauses: list[str] = ["1"]
    params: list[object] = []
    if search is not None:
        clauses.append("(instr(lower(coalesce(question, '')), ?) OR instr(lower(coalesce(slug, '')), ?))")
        params += [search.lower()] * 2
    if active is not None:
        clauses.append("active = ?")
        params.append(int(active))
    return conn.execute(
        f"SELECT {', '.join(MARKET_COLUMNS)} FROM polymarket_markets WHERE {' AND '.join(clauses)} ORDER BY market_id",
        params,
    ).fetchall()


def series_rows(
    conn: sqlite3.Connection, series: Sequence[str] | None, subjects: Sequence[str] | None, from_ms: int, to_ms: int
) -> list[tuple]:
    """``(series, subject, ts_ms, value, updated_at_ms)`` of the DefiLlama points in ``[from_ms, to_ms)``."""
    clauses: list[str] = ["ts_ms >= ? AND ts_ms < ?"]
    params: list[object] = [from_ms, to_ms]
    for column, wanted in (("series", series), ("subject", subjects)):
        if wanted is not None:
            clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(wanted)))
    return conn.execute(
        f"SELECT series, subject, ts_ms, value, updated_at_ms FROM defillama_series WHERE {' AND '.join(clauses)} "
        "ORDER BY series, subject, ts_ms",
        params,
    ).fetchall()
