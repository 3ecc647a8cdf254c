"""A read's Arrow table (``market_assets.read.MarketReader(..., output="arrow")``) in the formats the
HTTP API and the CLI hand out: JSON rows, CSV, the Arrow IPC stream and Parquet.

Times leave as ISO-8601 UTC text with milliseconds (``2026-11-18T11:06:40.000Z``), the form
JavaScript's ``toISOString`` writes and every CSV reader parses; floats as the shortest text that
reads back to the same double (DuckDB's ``to_json`` and Arrow's CSV writer both do), so a value
read back is the value the reader returned, bit for bit. NaN and null are both ``null`` in JSON
(JSON has no NaN); in CSV a null is an empty field and a NaN ``nan``. List columns (a Polymarket market's
outcomes and prices) are JSON arrays in CSV, which has no lists.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from market_assets.memory.page_text import iso_times, json_objects

__all__ = ["ARROW_STREAM", "arrow_stream_bytes", "csv_bytes", "iso_times", "json_document", "write_parquet"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
"""The IANA media type of the Arrow IPC stream format."""


def json_document(table: pa.Table, next_cursor: str | None) -> bytes:
    """``{"data": [one object per row], "next": next_cursor}``: the rows written by DuckDB's
    ``to_json`` (``memory.page_text``), 100,000 candles in ~0.25 s against ~1.1 s building a dict
    per row for msgspec, with the same text for every value; NaN and infinities as null."""
    body = ",".join(json_objects(table).to_pylist())
    return b'{"data":[' + body.encode() + b'],"next":' + msgspec.json.encode(next_cursor) + b"}"


def _json_lists(table: pa.Table) -> pa.Table:
    """``table`` with each list column as the JSON text of its arrays (null stays null)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            texts = [None if value is None else msgspec.json.encode(value).decode() for value in table.column(index).to_pylist()]
            table = table.set_column(index, field.name, pa.array(texts, pa.string()))
    return table


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
