"""Pages of a read: at most ``limit`` rows, and a cursor that continues where the page stopped.

A cursor is the sort key of the page's last row, plus what makes the next page answer the *same*
query: a fingerprint of the query's parameters (a cursor sent with other parameters is refused,
instead of silently continuing another read) and the ``end`` the first page used. Without an
``end`` a read runs to *now*, which moves between pages; the first page pins it, so paging
through a read returns what one call would have returned when it started.

Rows keyed by time (candles, features, funding) are read from the cursor's ``(coin, time)`` on,
in reads that can hold no more than the rows still wanted (a row per grid step and coin: a bar, a
minute, an hour), so a page costs what it returns, not what came before it: the coins whose whole
ranges fit in the page together in one read (100,000 1-minute bars of 20 coins: one read, not
20), and a coin whose range holds more in windows of time from where the page stands. A
window that comes back short (a gap, a coin that started trading later) is followed by one twice
as long, so an empty span costs log2(span / window) reads, not one per window; the window that
reaches data after it reads at most as far again as the span crossed, once per page and coin.
Polymarket markets and DefiLlama series are small summary tables (hundreds to a few thousand
rows), read whole and cut after the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

Key = tuple[str | int, ...]
"""A row's sort key: ``(coin, time_ms)``, ``(market_id,)``, ``(series, subject, ts_ms)``."""

TimeRead = Callable[[list[str] | None, int, int], pa.Table]
"""``(coins, start_ms, end_ms)`` -> the rows of those coins in ``[start_ms, end_ms)``, sorted by
(coin, time), as ``MarketReader`` returns them with ``output="arrow"``."""

_VERSION = 1


def fingerprint(parameters: dict[str, Any]) -> str:
    """A short digest of a query's parameters (their order does not matter)."""
    encoded = msgspec.json.encode(dict(sorted(parameters.items())))
    return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Cursor:
    query: str
    """:func:`fingerprint` of the query the cursor continues."""
    end_ms: int | None
    """The end of the read, as the first page pinned it (``None``: a read without a time range)."""
    key: Key
    """Sort key of the last row returned: the next page starts after it."""

    def encode(self) -> str:
        payload = msgspec.json.encode([_VERSION, self.query, self.end_ms, list(self.key)])
        return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str, query: str, shape: tuple[type, ...]) -> Cursor:
        """The cursor ``text`` continues, checked against the query it is sent with and the types
        of its key; ``ValueError`` naming ``cursor`` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            version, fingerprint_, end_ms, key = msgspec.json.decode(raw, type=tuple[int, str, int | None, list[str | int]])
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise ValueError("cursor: not a cursor of this API (send back the `next` of the previous page)") from None
        if version != _VERSION or len(key) != len(shape) or not all(type(k) is t for k, t in zip(key, shape, strict=True)):
            raise ValueError("cursor: not a cursor of this API (send back the `next` of the previous page)")
        if fingerprint_ != query:
            raise ValueError("cursor: continues another query; send it with the parameters of the page that returned it")
        return cls(query, end_ms, tuple(key))


def time_keyed_page(
    read: TimeRead,
    coins: Sequence[str],
    *,
    time_column: str,
    step_ms: int,
    start_ms: int,
    end_ms: int,
    limit: int,
    after: Key | None,
) -> tuple[pa.Table, Key | None]:
    """The next ``limit`` rows of ``coins`` in ``[start_ms, end_ms)`` after the key ``after``
    (``(coin, time_ms)`` of the last row already returned), and the key to continue from, ``None``
    when nothing follows. ``step_ms``: the grid of ``time_column``, at most one row per step and coin.
    """
    first = 0
    if after is not None:
        if after[0] not in coins:
            raise ValueError("cursor: continues another query; send it with the parameters of the page that returned it")
        first = list(coins).index(str(after[0]))
    wanted = limit + 1  # one more than a page: is there a next page?
    parts = [read(list(coins) or None, start_ms, start_ms)]  # no rows: the columns, and the coins checked
    index = first
    while index < len(coins) and wanted > 0:
        since = int(after[1]) + 1 if after is not None and index == first else start_ms
        whole = wanted // max(1, -(-(end_ms - since) // step_ms)) if since < end_ms else len(coins)
        if since == start_ms and whole > 0:
            # The next coins' whole ranges fit in the page together: one read for all of them.
            group = list(coins[index:index + whole])
            rows = read(group, since, max(since, end_ms))
            index += len(group)
        else:
            rows, index = _windows(read, coins[index], since, end_ms, step_ms, wanted), index + 1
        parts.append(rows.slice(0, wanted))
        wanted -= min(rows.num_rows, wanted)
    return _cut(pa.concat_tables(parts), ("coin", time_column), limit)


def _windows(read: TimeRead, coin: str, since_ms: int, end_ms: int, step_ms: int, wanted: int) -> pa.Table:
    """Up to ``wanted`` rows of ``coin`` from ``since_ms``, read in windows that could hold them,
    each one that came back short followed by one twice as long."""
    parts: list[pa.Table] = []
    growth = 1
    while since_ms < end_ms and wanted > 0:
        until = min(end_ms, since_ms + wanted * step_ms * growth)
        rows = read([coin], since_ms, until).slice(0, wanted)
        parts.append(rows)
        wanted -= rows.num_rows
        since_ms, growth = until, growth * 2
    return pa.concat_tables(parts) if parts else read([coin], since_ms, since_ms)


def keyed_page(table: pa.Table, key_columns: tuple[str, ...], limit: int, after: Key | None) -> tuple[pa.Table, Key | None]:
    """The next ``limit`` rows of ``table`` (sorted by ``key_columns``) after the key ``after``."""
    if after is not None:
        table = table.filter(_after(table, key_columns, after))
    return _cut(table, key_columns, limit)


def _cut(table: pa.Table, key_columns: Sequence[str], limit: int) -> tuple[pa.Table, Key | None]:
    if table.num_rows <= limit:
        return table, None
    page = table.slice(0, limit)
    return page, tuple(_key_value(page.column(name)[limit - 1]) for name in key_columns)


def _key_value(scalar: pa.Scalar) -> str | int:
    if pa.types.is_timestamp(scalar.type):
        return int(scalar.cast(pa.int64()).as_py())
    value = scalar.as_py()
    assert isinstance(value, str | int), f"a sort key is text or a time, not {scalar.type}"
    return value


def _as_key_array(table: pa.Table, name: str) -> pa.ChunkedArray:
    column = table.column(name)
    return column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column


def _after(table: pa.Table, key_columns: Sequence[str], key: Key) -> pa.ChunkedArray:
    """Rows whose key sorts after ``key``: lexicographic, the last column first."""
    columns = [_as_key_array(table, name) for name in key_columns]
    mask = pc.greater(columns[-1], key[-1])
    for column, value in zip(reversed(columns[:-1]), reversed(key[:-1]), strict=True):
        mask = pc.or_(pc.greater(column, value), pc.and_(pc.equal(column, value), mask))
    return mask
