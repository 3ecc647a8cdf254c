"""Reading the memory (SPEC §11): what a strategy calls instead of fetching sources or writing SQL.

    from market_assets.read import MarketReader
    with MarketReader() as memory:
        bars = memory.candles(["BTC", "ETH"], "1h", "2026-11-01", as_of="2026-12-01T12:00Z")

A :class:`MarketReader` is read-only (it never creates or changes the memory) and thread-safe (one
connection per thread, opened on first use), so a strategy reads while the streamer writes. The
memory is a SQLite file or a PostgreSQL database (``db="postgresql://…"``): the same rows, dtypes
and flags from either.

**Bars.** Any of Hyperliquid's intervals, epoch-aligned as the venue's own (a week opens on a
Thursday, 00:00 UTC). A bar is composed from *units*, the coarsest that hold it: current rollup
buckets (1d, 1h, 5m) where the interval is a multiple of them, 1-minute rows for the rest, and the
Parquet archive for archived days (``market_assets.archive``; a day is read there only while its
stamp says the archive holds it exactly as the memory does). Whichever holds a bar, it is the same
bar: ``open`` of its first minute, ``close`` of its last, extremes, sums; ``minutes`` says how many
1-minute rows are behind it, ``complete`` whether that is all of them, ``verified`` whether every
one of them is confirmed (SPEC §8). Missing minutes are never filled.

**Point in time.** Every row carries the time it became known: a bar its close, a feature its
minute's close, a funding rate the time it was observed or settled. ``as_of`` returns nothing
known later. Rows are upserted in place, so a minute revised after ``as_of`` is returned as
revised: ``as_of`` hides what had not happened yet, not what was corrected since.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Self, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from market_assets.clock import Clock, wall_clock_ms
from market_assets.indicators import INDICATORS
from market_assets.memory import connect, reads
from market_assets.memory.archive import stamped_days
from market_assets.memory.connection import (
    MemoryConnection,
    is_database_error,
    snapshot,
)
from market_assets.memory.rollups import DAY_MS
from market_assets.memory.target import MemoryTarget, parse_target

MINUTE_MS = 60_000

INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "1w": 7 * DAY_MS,
}
"""Hyperliquid's candle intervals and their widths in ms."""

ROLLUP_LEVELS: tuple[tuple[str, int], ...] = (("1d", DAY_MS), ("1h", 60 * MINUTE_MS), ("5m", 5 * MINUTE_MS))
"""The rollup intervals, coarsest first (``memory.rollups.LEVELS``)."""

Output = Literal["pandas", "arrow"]
TimeLike: TypeAlias = "datetime | date | pd.Timestamp | str | int"
"""A time as a strategy holds it: naive datetimes are UTC, ints are epoch milliseconds."""
Coins: TypeAlias = "str | Sequence[str] | None"

_UTC_MS = pa.timestamp("ms", tz="UTC")
CANDLE_SCHEMA = pa.schema([
    ("coin", pa.string()), ("open_time", _UTC_MS), ("close_time", _UTC_MS),
    ("open", pa.float64()), ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
    ("volume", pa.float64()), ("trades", pa.int64()), ("minutes", pa.int64()),
    ("complete", pa.bool_()), ("verified", pa.bool_()),
])
FEATURE_COLUMNS: tuple[str, ...] = INDICATORS.columns
FUNDING_SCHEMA = pa.schema([
    ("coin", pa.string()), ("hour", _UTC_MS), ("time", _UTC_MS), ("funding_rate", pa.float64()),
    ("premium", pa.float64()), ("settled", pa.bool_()),
])
MARKET_SCHEMA = pa.schema([
    ("market_id", pa.string()), ("question", pa.string()), ("slug", pa.string()),
    ("outcomes", pa.list_(pa.string())), ("outcome_prices", pa.list_(pa.float64())),
    ("volume", pa.float64()), ("liquidity", pa.float64()), ("end_date", pa.string()),
    ("active", pa.bool_()), ("closed", pa.bool_()), ("updated_at", _UTC_MS),
])
SERIES_SCHEMA = pa.schema([
    ("series", pa.string()), ("subject", pa.string()), ("ts", _UTC_MS), ("value", pa.float64()),
    ("updated_at", _UTC_MS),
])

_NEVER = 2**62
"""A time after every stored one: the end of an open range."""


def feature_schema(columns: Sequence[str] = FEATURE_COLUMNS) -> pa.Schema:
    return pa.schema([("coin", pa.string()), ("open_time", _UTC_MS), ("close_time", _UTC_MS),
                      *((column, pa.float64()) for column in columns)])


class MarketReader:
    """Read-only access to the market memory at ``db`` (default: the CLI's, ``MARKET_DB``): a
    SQLite file or a ``postgresql://`` URL."""

    def __init__(self, db: MemoryTarget | str | None = None, *, archive: str | Path | None = None,
                 clock: Clock = wall_clock_ms) -> None:
        from market_assets.settings import Settings

        self.db_path: MemoryTarget = parse_target(db) if db is not None else Settings.from_env().db_path
        self.archive_root = Path(archive) if archive is not None else self._archive().archive_root(self.db_path)
        self._clock = clock
        self._local = threading.local()
        self._opened: list[MemoryConnection] = []
        self._lock = threading.Lock()

    # -- connections ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection (a later call opens a fresh one)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()

    @contextmanager
    def _snapshot(self) -> Iterator[MemoryConnection]:
        """This thread's connection inside one read transaction: every statement of a call sees
        the memory as of one moment, whatever the streamer commits meanwhile (SQLite's WAL, a
        repeatable-read transaction on PostgreSQL)."""
        conn: MemoryConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Used by this thread only; ``any_thread`` so that :meth:`close` may close it from another.
            conn = connect(self.db_path, readonly=True, any_thread=True)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        try:
            with snapshot(conn):
                yield conn
        except Exception as exc:
            if is_database_error(exc):  # the connection may be unusable: the next call opens another
                with self._lock:
                    self._opened.remove(conn)
                conn.close()
                self._local.conn = None
            raise

    # -- reads ---------------------------------------------------------------------------------

    def coins(self) -> list[str]:
        """Every coin the memory knows (listed, delisted, or with candles stored)."""
        with self._snapshot() as conn:
            return reads.known_coins(conn)

    def candles(
        self,
        coins: Coins,
        interval: str,
        start: TimeLike,
        end: TimeLike | None = None,
        *,
        as_of: TimeLike | None = None,
        include_forming: bool = False,
        verified_only: bool = False,
        output: Output = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """Bars of ``interval`` opening in ``[start, end)`` (``start`` rounded up to the interval),
        sorted by coin and open time; columns :data:`CANDLE_SCHEMA`.

        A bar is returned once it has closed (by ``as_of``, else now), built from closed minutes.
        ``include_forming`` adds the bar still open at ``as_of`` (else now), from the minutes
        closed by ``as_of`` (else every stored minute, the forming one too), ``complete=False``.
        ``verified_only`` drops bars with a minute not confirmed.
        """
        width = _interval(interval)
        span = _Span.of(start, end, as_of, self._clock)
        with self._snapshot() as conn:
            wanted = self._coins(conn, coins)
            lo = _ceil(span.start, width)
            full_to = min(_ceil(span.end, width), _floor(span.cut, width))
            units = self._units(conn, [(c, lo, full_to) for c in wanted if lo < full_to], width, forming=False)
            bars = _bars(units, width, cut=False)
            forming_open = _floor(span.cut, width)
            if include_forming and lo <= forming_open < span.end:
                forming_to = _floor(span.cut, MINUTE_MS) if span.as_of is not None else forming_open + width
                if forming_open < forming_to:
                    partial = self._units(conn, [(c, forming_open, forming_to) for c in wanted], width,
                                          forming=span.as_of is None)
                    bars = pa.concat_tables([bars, _bars(partial, width, cut=True)]).sort_by(
                        [("coin", "ascending"), ("open_time", "ascending")])
        if verified_only:
            bars = bars.filter(bars["verified"])
        return _out(bars, output)

    def features(
        self,
        coins: Coins,
        start: TimeLike,
        end: TimeLike | None = None,
        columns: Sequence[str] | None = None,
        *,
        as_of: TimeLike | None = None,
        output: Output = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """The 1-minute features of the minutes opening in ``[start, end)`` that closed by
        ``as_of`` (a feature is known at its minute's close); ``columns`` picks indicators."""
        chosen = _feature_columns(columns)
        span = _Span.of(start, end, as_of, self._clock)
        with self._snapshot() as conn:
            wanted = None if coins is None else self._coins(conn, coins)
            to = min(_ceil(span.end, MINUTE_MS), _floor(span.cut, MINUTE_MS) - MINUTE_MS + 1)
            names, opens, values = reads.feature_arrays(conn, wanted, chosen, _ceil(span.start, MINUTE_MS), to)
        table = pa.Table.from_arrays(
            [pa.array(names, pa.string()), _times(opens), _times(opens + MINUTE_MS),
             *(pa.array(np.ascontiguousarray(values[:, index])) for index in range(len(chosen)))],
            schema=feature_schema(chosen),
        )
        return _out(table, output)

    def funding(
        self,
        coins: Coins,
        start: TimeLike,
        end: TimeLike | None = None,
        *,
        as_of: TimeLike | None = None,
        output: Output = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """Funding hours in ``[start, end)`` observed (or settled) by ``as_of``; columns
        :data:`FUNDING_SCHEMA` (``time``: when the rate was observed or settled)."""
        span = _Span.of(start, end, as_of, self._clock)
        with self._snapshot() as conn:
            wanted = None if coins is None else self._coins(conn, coins)
            lo, hi = span.start, min(span.end, _NEVER)
            days = list(stamped_days(conn, "funding", lo, hi))
            memory_rows = reads.funding_rows(conn, wanted, lo, hi)
        table = _funding_table(memory_rows)
        if days:
            archived = self._archive().read_funding(self.archive_root, days, wanted, lo, hi, ordered=False)
            table = self._with_archived(table, days, _funding_arrow(archived))
        table = table.filter(pc.less_equal(table["time"], pa.scalar(span.cut, _UTC_MS)))
        return _out(table, output)

    def polymarket_markets(self, search: str | None = None, active: bool | None = None, *,
                           output: Output = "pandas") -> pd.DataFrame | pa.Table:
        """Every stored Polymarket market summary, filtered by a case-insensitive ``search`` of
        its question or slug and by ``active``; columns :data:`MARKET_SCHEMA`."""
        if active is not None and not isinstance(active, bool):
            raise ValueError(f"active: {active!r} is not true or false")
        with self._snapshot() as conn:
            rows = reads.market_rows(conn, search, active)
        table = pa.Table.from_pylist([_market(row) for row in rows], schema=MARKET_SCHEMA)
        return _out(table, output)

    def defillama_series(self, subjects: str | Sequence[str] | None = None, start: TimeLike | None = None,
                         end: TimeLike | None = None, *, series: str | Sequence[str] | None = None,
                         output: Output = "pandas") -> pd.DataFrame | pa.Table:
        """DefiLlama points (``series``, ``subject``, ``ts``, ``value``) in ``[start, end)``."""
        lo = 0 if start is None else parse_time(start, "start")
        hi = _NEVER if end is None else parse_time(end, "end")
        if lo > hi:
            raise ValueError(f"start: {_iso(lo)} is after end {_iso(hi)}")
        with self._snapshot() as conn:
            rows = reads.series_rows(conn, _names(series, "series"), _names(subjects, "subjects"), lo, hi)
        arrays = _columns(rows, 5)
        table = pa.Table.from_arrays(
            [pa.array(arrays[0], pa.string()), pa.array(arrays[1], pa.string()),
             _times(np.asarray(arrays[2], dtype=np.int64)), pa.array(np.asarray(arrays[3], dtype=np.float64)),
             _times(np.asarray(arrays[4], dtype=np.int64))],
            schema=SERIES_SCHEMA,
        )
        return _out(table, output)

    def frame(
        self,
        coin: str,
        interval: str,
        start: TimeLike,
        end: TimeLike | None = None,
        *,
        features: bool = True,
        funding: bool = True,
        as_of: TimeLike | None = None,
    ) -> pd.DataFrame:
        """One coin's bars indexed by their close, with the latest features and funding rate known
        at each close joined (backward as-of on availability time: no look-ahead)."""
        if not isinstance(coin, str):
            raise ValueError(f"coin: frame reads one coin, got {coin!r}")  # noqa: TRY004 (one error type for every bad argument)
        if coin not in self.coins():
            raise ValueError(f"coin: unknown coin {coin!r}")
        bars = self.candles(coin, interval, start, end, as_of=as_of)
        assert isinstance(bars, pd.DataFrame)
        width = INTERVALS[interval]
        if not bars.empty:
            first_open = int(bars["open_time"].iloc[0].value // 1_000_000)
            last_close = int(bars["close_time"].iloc[-1].value // 1_000_000)
        else:
            first_open = last_close = _Span.of(start, end, as_of, self._clock).start
        if features:
            known = self.features(coin, first_open - width, last_close, as_of=as_of)
            assert isinstance(known, pd.DataFrame)
            bars = _join_backward(bars, known.drop(columns=["coin", "open_time"]).rename(
                columns={"close_time": "feature_time"}), "feature_time")
            bars = bars.drop(columns=["feature_time"])
        if funding:
            rates = self.funding(coin, first_open - 2 * 60 * MINUTE_MS, last_close, as_of=as_of)
            assert isinstance(rates, pd.DataFrame)
            rates = rates[["time", "funding_rate", "premium"]].rename(columns={"time": "funding_time"})
            bars = _join_backward(bars, rates, "funding_time")
        return bars.set_index("close_time")

    # -- composition ---------------------------------------------------------------------------

    def _coins(self, conn: MemoryConnection, coins: Coins) -> list[str]:
        known = reads.known_coins(conn)
        if coins is None:
            return known
        wanted = [coins] if isinstance(coins, str) else list(coins)
        if not all(isinstance(c, str) for c in wanted):
            raise ValueError(f"coins: expected a name or a list of names, got {coins!r}")
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise ValueError(f"coins: unknown coin{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
        return sorted(set(wanted))

    def _units(self, conn: MemoryConnection, ranges: list[reads.Range], width: int, *, forming: bool) -> _Units:
        """Every unit opening in ``ranges``, coarsest first: current rollups of each level that
        divides ``width``, then what they leave to 1-minute rows: the archive's for stamped days,
        the memory's for the others, with a day's archived minutes the memory no longer holds
        when the day changed after it was archived (its stamp gone, its partition not yet
        rewritten; what the archive job will write for it, ``archive.write_day``)."""
        need = _Ranges.of(ranges)
        parts: list[np.ndarray] = []
        for interval, level_width in ROLLUP_LEVELS:
            if width % level_width or need.empty:
                continue
            aligned = need.aligned(level_width)
            found = aligned.units(reads.rollup_units(conn, interval, aligned.as_list()))
            parts.append(found)
            need = need.minus(found, level_width)
        if not need.empty:
            stamped = list(stamped_days(conn, "candles", need.first, need.last))
            in_memory, in_archive = need.split_days(stamped)
            minutes = in_memory.units(reads.minute_units(conn, in_memory.as_list(), forming=forming))
            parts.append(minutes)
            parts.append(self._archived_minutes(in_archive, stamped))
            changed = [day for day in self._archive().partition_days(self.archive_root, "candles")
                       if need.first - DAY_MS < day < need.last and day not in stamped
                       and self._archive().partition_path(self.archive_root, "candles", day).exists()]
            if changed:
                older = self._archived_minutes(in_memory.split_days(changed)[1], changed)
                parts.append(older[~np.isin(_Ranges.keys(older), _Ranges.keys(minutes))])
        return _Units(need.names, np.concatenate(parts) if parts else np.empty((0, len(reads.UNIT_COLUMNS))))

    def _archived_minutes(self, ranges: _Ranges, days: list[int]) -> np.ndarray:
        """The archive's minutes of ``days`` inside ``ranges``, as units."""
        if ranges.empty:
            return np.empty((0, len(reads.UNIT_COLUMNS)))
        archived = self._archive().read_candles(self.archive_root, days, ranges.coins(), ranges.first, ranges.last,
                                                ordered=False)
        units = ranges.archived_units(archived)
        return units if ranges.whole() else ranges.select(units)

    def _archive(self) -> Any:
        from market_assets import archive

        return archive

    def _with_archived(self, table: pa.Table, days: list[int], archived: pa.Table) -> pa.Table:
        """Funding ``table`` (from the memory) with the hours of the stamped ``days`` taken from ``archived``."""
        hours = table["hour"].cast(pa.int64()).to_numpy()
        from_memory = ~np.isin(hours - hours % DAY_MS, np.asarray(days, dtype=np.int64))
        return pa.concat_tables([table.filter(pa.array(from_memory)), archived]).sort_by(
            [("coin", "ascending"), ("hour", "ascending")])


# -- time and argument handling ----------------------------------------------------------------


class _Span:
    """A call's time arguments in epoch ms: ``[start, end)`` and ``cut``, the moment a row must be
    known by (``as_of``, else now)."""

    def __init__(self, start: int, end: int, as_of: int | None, cut: int) -> None:
        self.start, self.end, self.as_of, self.cut = start, end, as_of, cut

    @classmethod
    def of(cls, start: TimeLike, end: TimeLike | None, as_of: TimeLike | None, clock: Clock) -> _Span:
        lo = parse_time(start, "start")
        hi = _NEVER if end is None else parse_time(end, "end")
        if lo > hi:
            raise ValueError(f"start: {_iso(lo)} is after end {_iso(hi)}")
        # Nothing is known after now, whatever ``as_of`` asks for.
        now = clock()
        cut = now if as_of is None else min(parse_time(as_of, "as_of"), now)
        return cls(lo, hi, None if as_of is None else cut, cut)


EARLIEST_MS = 0
LATEST_MS = (1 << 44) - 1
"""Times the reader can hold (1970 to 2527); a time outside them is refused, naming its argument."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(value: object, name: str) -> int:
    """Epoch ms of a time as a strategy, a URL or a shell holds it: a datetime (naive: UTC), a date,
    a pandas Timestamp, epoch ms (an int or its digits), or ISO-8601 text (naive: UTC). Raises one
    ``ValueError`` starting with ``name`` for anything else, or a time outside 1970 to 2527. The
    read API, the HTTP routes and the CLI all read times here."""
    given = value
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a time")  # noqa: TRY004 (one error type for every bad argument)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, (int, np.integer)):
        ms = int(value)
    elif isinstance(value, (datetime, date, str, np.datetime64)):
        try:
            stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
        except (ValueError, TypeError, OverflowError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            raise ValueError(f"{name}: {value!r} is neither an ISO-8601 time nor epoch milliseconds")
        moment = stamp.to_pydatetime(warn=False)  # years 1 to 9999: past pandas' nanosecond range
        ms = ((moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment) - _EPOCH) // timedelta(milliseconds=1)
    else:
        raise ValueError(f"{name}: {value!r} is not a time (datetime, ISO text or epoch ms)")  # noqa: TRY004
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise ValueError(f"{name}: {given!r} is outside the times the memory holds (1970 to 2527)")
    return ms


def _iso(ms: int) -> str:
    if ms >= _NEVER:
        return "the end of time"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _interval(interval: object) -> int:
    if interval not in INTERVALS:
        raise ValueError(f"interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    return INTERVALS[str(interval)]


def _feature_columns(columns: Sequence[str] | None) -> tuple[str, ...]:
    if columns is None:
        return FEATURE_COLUMNS
    chosen = [columns] if isinstance(columns, str) else list(columns)
    unknown = [c for c in chosen if c not in FEATURE_COLUMNS]
    if unknown or not chosen:
        raise ValueError(f"columns: {', '.join(map(repr, unknown)) or 'none'} not among {', '.join(FEATURE_COLUMNS)}")
    return tuple(c for c in FEATURE_COLUMNS if c in chosen)


def _names(value: str | Sequence[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in names):
        raise ValueError(f"{name}: expected a name or a list of names, got {value!r}")
    return names


def _floor(ms: int, width: int) -> int:
    return ms - ms % width


def _ceil(ms: int, width: int) -> int:
    return min(-(-ms // width) * width, _NEVER)


# -- tables --------------------------------------------------------------------------------------


def _columns(rows: list[tuple], count: int) -> list[tuple]:
    return list(zip(*rows)) if rows else [() for _ in range(count)]


def _times(ms: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(ms, dtype=np.int64), pa.int64()).cast(_UTC_MS)


def _out(table: pa.Table, output: Output) -> pd.DataFrame | pa.Table:
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    raise ValueError(f"output: {output!r} is not 'pandas' or 'arrow'")


class _Units:
    """Units as one float64 matrix (columns :data:`reads.UNIT_COLUMNS`, the first holding the coin's
    index in ``names``): exact for every value stored (times and counts are far below 2^53)."""

    def __init__(self, names: list[str], values: np.ndarray) -> None:
        self.names, self.values = names, values


_CODE, _OPEN_MS, _OPEN, _HIGH, _LOW, _CLOSE, _VOLUME, _TRADES, _MINUTES, _CONFIRMED = range(len(reads.UNIT_COLUMNS))


def _bars(units: _Units, width: int, *, cut: bool) -> pa.Table:
    """Units grouped into bars of ``width``: first open, extremes, last close, sums.

    ``cut``: the bars were cut short (forming, or by ``as_of``): never complete."""
    values = units.values
    if len(values) == 0:
        return CANDLE_SCHEMA.empty_table()
    codes = values[:, _CODE].astype(np.int64)
    opens = values[:, _OPEN_MS].astype(np.int64)
    keys = (codes << _Ranges.SHIFT) + opens
    if np.any(keys[1:] < keys[:-1]):
        order = np.argsort(keys, kind="stable")
        values, codes, opens = values[order], codes[order], opens[order]
    bucket = opens - opens % width
    starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (bucket[1:] != bucket[:-1])])
    ends = np.r_[starts[1:], len(values)] - 1

    def total(column: int) -> np.ndarray:
        return values[:, column] if len(starts) == len(values) else np.add.reduceat(values[:, column], starts)

    minutes = total(_MINUTES).astype(np.int64)
    confirmed = total(_CONFIRMED).astype(np.int64)
    complete = np.zeros(len(starts), dtype=bool) if cut else minutes == width // MINUTE_MS
    one_each = len(starts) == len(values)
    bar_opens = bucket[starts]
    coins = pa.array(units.names, pa.string()).take(pa.array(codes[starts]))
    return pa.Table.from_arrays(
        [coins, _times(bar_opens), _times(bar_opens + width),
         pa.array(values[starts, _OPEN]),
         pa.array(values[:, _HIGH] if one_each else np.maximum.reduceat(values[:, _HIGH], starts)),
         pa.array(values[:, _LOW] if one_each else np.minimum.reduceat(values[:, _LOW], starts)),
         pa.array(values[ends, _CLOSE]), pa.array(total(_VOLUME)), pa.array(total(_TRADES).astype(np.int64)),
         pa.array(minutes), pa.array(complete), pa.array(confirmed == minutes)],
        schema=CANDLE_SCHEMA,
    )


def _funding_arrow(table: pa.Table) -> pa.Table:
    return _funding_from_arrays([table[name].to_numpy(zero_copy_only=False) for name in reads.FUNDING_COLUMNS])


def _funding_table(rows: list[tuple]) -> pa.Table:
    return _funding_from_arrays(_columns(rows, len(reads.FUNDING_COLUMNS)))


def _funding_from_arrays(arrays: Sequence[Any]) -> pa.Table:
    coin, hour, rate, premium, settled, observed = arrays
    return pa.Table.from_arrays(
        [pa.array(list(coin), pa.string()), _times(np.asarray(hour, dtype=np.int64)),
         _times(np.asarray(observed, dtype=np.int64)), pa.array(np.asarray(rate, dtype=np.float64)),
         pa.array(list(premium), pa.float64()), pa.array(np.asarray(settled, dtype=bool))],
        schema=FUNDING_SCHEMA,
    )


def _market(row: tuple) -> dict[str, object]:
    record = dict(zip(reads.MARKET_COLUMNS, row))
    outcomes = json.loads(record["outcomes"]) if record["outcomes"] else None
    prices = json.loads(record["outcome_prices"]) if record["outcome_prices"] else None
    return {
        "market_id": record["market_id"], "question": record["question"], "slug": record["slug"],
        "outcomes": None if outcomes is None else [str(o) for o in outcomes],
        "outcome_prices": None if prices is None else [float(p) for p in prices],
        "volume": record["volume"], "liquidity": record["liquidity"], "end_date": record["end_date"],
        "active": None if record["active"] is None else bool(record["active"]),
        "closed": None if record["closed"] is None else bool(record["closed"]),
        "updated_at": datetime.fromtimestamp(record["updated_at_ms"] / 1000, tz=UTC),
    }


def _join_backward(bars: pd.DataFrame, known: pd.DataFrame, time_column: str) -> pd.DataFrame:
    """Each bar with the latest row of ``known`` whose ``time_column`` is at or before its close."""
    known = known.sort_values(time_column)
    return pd.merge_asof(bars.sort_values("close_time"), known, left_on="close_time", right_on=time_column,
                         direction="backward", allow_exact_matches=True)


def join_informative(base: pd.DataFrame, informative: pd.DataFrame, suffix: str = "_inf") -> pd.DataFrame:
    """``base`` bars (from :meth:`MarketReader.candles`) with, per coin, the latest ``informative``
    bar (a coarser interval, say) that had closed by each base bar's close: freqtrade's
    ``merge_informative_pair``, without look-ahead. Informative columns get ``suffix``."""
    right = informative.rename(columns={c: f"{c}{suffix}" for c in informative.columns if c != "coin"})
    joined = pd.merge_asof(
        base.sort_values("close_time"), right.sort_values(f"close_time{suffix}"),
        left_on="close_time", right_on=f"close_time{suffix}", by="coin", direction="backward",
        allow_exact_matches=True,
    )
    return joined.sort_values(["coin", "open_time"], kind="stable").reset_index(drop=True)


# -- ranges of units still needed --------------------------------------------------------------


class _Ranges:
    """Per-coin ranges ``[from, to)`` still to read, as sorted 64-bit keys ``coin index << 44 | ms``
    so subtracting what a level held is a few numpy operations, however many ranges there are."""

    SHIFT = 44
    """2^44 ms is the year 2527: a key holds any time the memory can."""

    def __init__(self, coins: list[str], starts: np.ndarray, ends: np.ndarray) -> None:
        self.names = coins
        self.starts, self.ends = starts, ends

    @classmethod
    def of(cls, ranges: list[reads.Range]) -> _Ranges:
        names = sorted({coin for coin, _, _ in ranges})
        index = {name: i for i, name in enumerate(names)}
        spans = sorted((index[c], a, b) for c, a, b in ranges if a < b)
        starts = np.array([(i << cls.SHIFT) + a for i, a, _ in spans], dtype=np.int64)
        ends = np.array([(i << cls.SHIFT) + b for i, _, b in spans], dtype=np.int64)
        return cls(names, starts, ends)

    @property
    def empty(self) -> bool:
        return len(self.starts) == 0

    @property
    def first(self) -> int:
        return int((self.starts & ((1 << self.SHIFT) - 1)).min())

    @property
    def last(self) -> int:
        return int((self.ends & ((1 << self.SHIFT) - 1)).max())

    def coins(self) -> list[str]:
        return sorted({self.names[i] for i in (self.starts >> self.SHIFT).tolist()})

    def as_list(self) -> list[reads.Range]:
        mask = (1 << self.SHIFT) - 1
        return [(self.names[s >> self.SHIFT], s & mask, e & mask)
                for s, e in zip(self.starts.tolist(), self.ends.tolist())]

    def _with(self, starts: np.ndarray, ends: np.ndarray) -> _Ranges:
        keep = starts < ends
        return _Ranges(self.names, starts[keep], ends[keep])

    def aligned(self, width: int) -> _Ranges:
        """The whole buckets of ``width`` inside each range (what a rollup level can hold)."""
        mask = (1 << self.SHIFT) - 1
        coin = self.starts & ~mask
        lo, hi = self.starts & mask, self.ends & mask
        return self._with(coin | (-(-lo // width) * width), coin | (hi - hi % width))

    @classmethod
    def keys(cls, units: np.ndarray) -> np.ndarray:
        """The key (coin index, open time) of each unit."""
        return (units[:, _CODE].astype(np.int64) << cls.SHIFT) + units[:, _OPEN_MS].astype(np.int64)

    def units(self, values: np.ndarray) -> np.ndarray:
        """The units matrix of :func:`reads.minute_units` or :func:`reads.rollup_units` for
        :meth:`as_list`, each row's range index replaced by its coin's index (in place)."""
        if len(values):
            values[:, _CODE] = (self.starts >> self.SHIFT)[values[:, _CODE].astype(np.int64)]
        return values

    def archived_units(self, archived: pa.Table) -> np.ndarray:
        """The archive's minutes (``market_assets.archive`` columns) as a units matrix, filled a
        column at a time (column-major, so each column is one contiguous write)."""
        values = np.empty((archived.num_rows, len(reads.UNIT_COLUMNS)), order="F")
        if archived.num_rows == 0:
            return values
        values[:, _CODE] = pc.index_in(archived["coin"], value_set=pa.array(self.names, pa.string())).to_numpy(
            zero_copy_only=False)
        for column, name in ((_OPEN_MS, "open_time_ms"), (_OPEN, "open"), (_HIGH, "high"), (_LOW, "low"),
                             (_CLOSE, "close"), (_VOLUME, "volume"), (_TRADES, "trades")):
            values[:, column] = archived[name].to_numpy()
        values[:, _MINUTES] = 1
        values[:, _CONFIRMED] = archived["confirmed"].to_numpy(zero_copy_only=False)
        return values

    def whole(self) -> bool:
        """Whether these are one range per coin, all over the same span (nothing to select from a
        read of that span)."""
        mask = (1 << self.SHIFT) - 1
        lows, highs = self.starts & mask, self.ends & mask
        coins = self.starts >> self.SHIFT
        return bool(len(np.unique(coins)) == len(coins) and (lows == lows[0]).all() and (highs == highs[0]).all())

    def minus(self, units: np.ndarray, width: int) -> _Ranges:
        """These ranges without the buckets ``[open, open + width)`` of ``units`` (each inside one range)."""
        if len(units) == 0:
            return self
        held = np.sort(self.keys(units))
        # Gaps: from each range's start or held bucket's end, to the next held bucket's start or
        # the range's end; in key order the two sorted lists pair up one to one.
        gap_starts = np.sort(np.concatenate([self.starts, held + width]))
        gap_ends = np.sort(np.concatenate([self.ends, held]))
        return self._with(gap_starts, gap_ends)

    def split_days(self, days: list[int]) -> tuple[_Ranges, _Ranges]:
        """These ranges cut in two: the parts outside the stamped ``days`` and the parts inside."""
        if not days:
            return self, _Ranges(self.names, self.starts[:0], self.ends[:0])
        mask = (1 << self.SHIFT) - 1
        cuts = np.unique(np.concatenate([np.asarray(days, dtype=np.int64), np.asarray(days, dtype=np.int64) + DAY_MS]))
        pieces_s, pieces_e = [], []
        for s, e in zip(self.starts.tolist(), self.ends.tolist()):
            coin, lo, hi = s & ~mask, s & mask, e & mask
            inner = cuts[(cuts > lo) & (cuts < hi)].tolist()
            bounds = [lo, *inner, hi]
            pieces_s += [coin | b for b in bounds[:-1]]
            pieces_e += [coin | b for b in bounds[1:]]
        starts, ends = np.array(pieces_s, dtype=np.int64), np.array(pieces_e, dtype=np.int64)
        archived = np.isin((starts & mask) - (starts & mask) % DAY_MS, np.asarray(days, dtype=np.int64))
        return self._joined(starts[~archived], ends[~archived]), self._joined(starts[archived], ends[archived])

    def _joined(self, starts: np.ndarray, ends: np.ndarray) -> _Ranges:
        """Sorted ranges with each run of touching ones joined into one (keys never touch across coins)."""
        if len(starts) == 0:
            return _Ranges(self.names, starts, ends)
        first = np.flatnonzero(np.r_[True, starts[1:] != ends[:-1]])
        last = np.r_[first[1:], len(starts)] - 1
        return _Ranges(self.names, starts[first], ends[last])

    def select(self, units: np.ndarray) -> np.ndarray:
        """The rows of ``units`` that open inside one of these ranges."""
        if len(units) == 0 or self.empty:
            return units[:0]
        keys = self.keys(units)
        slot = np.searchsorted(self.starts, keys, side="right") - 1
        inside = (units[:, _CODE] >= 0) & (slot >= 0) & (keys < self.ends[np.maximum(slot, 0)])
        return units[inside]
