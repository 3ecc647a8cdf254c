"""SQL of a read's page written as text, run by DuckDB over the page's Arrow table (for
``market_assets.read_formats``): ISO-8601 UTC times with ``strftime``, 3x faster than Arrow's
own, and one JSON object per row with ``to_json``, whose floats are their shortest round-trip
text. Rows keep the table's order (DuckDB keeps a plain scan's order).

One in-memory DuckDB serves the process; each call runs on a cursor of its own (a connection
of its own: the page it registers is its alone), a tenth of a millisecond against ~40 ms to
open a database.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pyarrow as pa

ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%gZ"
"""``%g``: milliseconds, so ``2026-11-18T11:06:40.000Z``, as JavaScript's ``toISOString``."""


@functools.cache
def _database() -> Any:
    import duckdb

    return duckdb.connect()


def iso_times(table: pa.Table) -> pa.Table:
    """``table`` with each timestamp column as ISO-8601 UTC text (null stays null)."""
    return _run(table, lambda columns: f"SELECT {columns} FROM page", finite=False)


def json_objects(table: pa.Table) -> pa.Array:
    """One JSON object per row (times as ISO text, NaN and infinities as null, which JSON has not)."""
    rows = _run(table, lambda columns: f"SELECT CAST(to_json(row) AS VARCHAR) FROM (SELECT {columns} FROM page) AS row",
                finite=True)
    return rows.column(0).combine_chunks() if rows.num_rows else pa.array([], pa.string())


def _run(table: pa.Table, statement: Callable[[str], str], *, finite: bool) -> pa.Table:
    """``statement(columns)`` over ``table`` registered as ``page``, ``columns`` selecting every
    column with its times as text and, if ``finite``, NaN and infinities as null."""
    columns, naive = [], table
    for index, field in enumerate(table.schema):
        name = '"' + field.name.replace('"', '""') + '"'
        if pa.types.is_timestamp(field.type):
            naive = naive.set_column(index, field.name, table.column(index).cast(pa.timestamp("ms")))  # the UTC instant
            columns.append(f"strftime({name}, '{ISO_FORMAT}') AS {name}")
        elif finite and pa.types.is_floating(field.type):
            columns.append(f"CASE WHEN isfinite({name}) THEN {name} END AS {name}")
        else:
            columns.append(name)
    cursor = _database().cursor()
    try:
        cursor.register("page", naive)
        return cursor.sql(statement(", ".join(columns))).to_arrow_table()
    finally:
        cursor.close()
