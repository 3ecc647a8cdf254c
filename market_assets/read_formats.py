"""A read's Arrow table (``market_assets.read.MarketReader(..., output="arrow")``) in the formats the
HTTP API and the CLI hand out: JSON rows, CSV, the Arrow IPC stream and Parquet.

Times leave as ISO-8601 UTC text with milliseconds (``2026-11-18T11:06:40.000Z``), the form
JavaScript's ``toISOString`` writes and every CSV reader parses; floats as the shortest text that
reads back to the same double (msgspec and Arrow's CSV writer both do), so a value read back is
the value the reader returned, bit for bit. NaN and null are both ``null`` in JSON (JSON has no
NaN); in CSV a null is an empty field and a NaN ``nan``. List columns (a Polymarket market's
outcomes and prices) are JSON arrays in CSV, which has no lists.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The IANA media type of the Arrow IPC stream format."""

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""Arrow's ``strftime``: ``%S`` of a millisecond timestamp carries its fraction (``40.000``)."""


def iso_times(table: pa.Table) -> pa.Table:
    """``table`` with each timestamp column as ISO-8601 UTC text (null stays null)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            utc = table.column(index).cast(pa.timestamp("ms", tz="UTC"))
            table = table.set_column(index, field.name, pc.strftime(utc, format=ISO_FORMAT))
    return table


def _json_lists(table: pa.Table) -> pa.Table:
    """``table`` with each list column as the JSON text of its arrays (null stays null)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            texts = [None if value is None else msgspec.json.encode(value).decode() for value in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(texts, pa.string()))
    return table


def json_rows(table: pa.Table) -> list[dict[str, Any]]:
    """One dict per row, times as ISO text; built column by column, ~2x faster than
    ``Table.to_pylist`` (100,000 candles: 1.0 s against 2.2 s)."""
    text = iso_times(table)
    names = text.column_names
    columns = [column.to_pylist() for column in text.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def csv_bytes(table: pa.Table) -> bytes:
    """The rows as CSV with a header line (RFC 4180 quoting, ``\\n`` line ends)."""
    sink = io.BytesIO()
    pa_csv.write_csv(_json_lists(iso_times(table)), sink)
    return sink.getvalue()


def arrow_stream_bytes(table: pa.Table) -> bytes:
    """The table as one Arrow IPC stream (schema, record batches, end marker)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_parquet(table: pa.Table, path: Path) -> None:
    """The table as a zstd Parquet file, times kept as UTC timestamps."""
    pq.write_table(table, path, compression="zstd")
