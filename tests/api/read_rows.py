"""Rows of a read as comparable values, whatever format carried them: times as epoch ms, NaN as
None (JSON has no NaN, and CSV writes a null as an empty field)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

import pyarrow as pa


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def python_rows(table: pa.Table) -> list[dict[str, Any]]:
    return [{k: _canonical(v) for k, v in row.items()} for row in table.to_pylist()]


def iso_ms(text: str) -> int:
    assert text.endswith("Z") and "T" in text, text  # ISO-8601 UTC
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def json_rows(rows: list[dict[str, Any]], schema: pa.Schema) -> list[dict[str, Any]]:
    times = {f.name for f in schema if pa.types.is_timestamp(f.type)}
    return [{k: iso_ms(v) if k in times and v is not None else v for k, v in row.items()} for row in rows]


def csv_rows(text: str, schema: pa.Schema) -> list[dict[str, Any]]:
    """CSV fields read back by the column's type: empty is null."""

    def value(field: pa.Field, text: str) -> Any:
        if text == "":
            return None
        if pa.types.is_timestamp(field.type):
            return iso_ms(text)
        if pa.types.is_floating(field.type):
            number = float(text)
            return None if number != number else number
        if pa.types.is_integer(field.type):
            return int(text)
        if pa.types.is_boolean(field.type):
            assert text in ("true", "false"), text
            return text == "true"
        if pa.types.is_list(field.type):
            return json.loads(text)
        return text

    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == schema.names
    return [{f.name: value(f, row[f.name]) for f in schema} for row in reader]
