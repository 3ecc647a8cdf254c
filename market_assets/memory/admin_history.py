"""SQL of the admin page's pictures: each channel's runs of the last day, and the candles'
per-coin coverage of the last day as run-length segments.

The runs are an index range per channel (1,440 streamer windows a day), tallied per bucket of
the day in SQLite (a picture has a pixel column per bucket, not a bar per run). The coverage is one
pass over the span's candles that only counts them per coin, with their first and last minute
(SQLite, no row to Python); the unverified and forming minutes come from their partial indexes,
and only a coin whose count falls short of its first-to-last minutes has its open times read, to
find its holes (a coin listed mid-span, or one the stream is a minute behind on, has its holes at
the edges: no read); the ``no_trades`` and ``unfillable`` spans of ``candle_gaps`` tell the
holes apart from the missing minutes. At 200 coins × 1,440 minutes the
count is the cost (~40 ms on a quiet machine; a window function over the rows took 1.3 s), so
the admin page keeps the result for a minute (``api.admin_page``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import pick
from market_assets.memory.runs import BACKFILL_KEY, own_runs


class RunBucket(NamedTuple):
    """The finished own runs (not backfills) of a channel that ended in one bucket of a span."""

    bucket: int
    """Its index from the span's start (0) to the buckets asked for, less one."""
    runs: int
    most_rows: int
    failed: int
    first_failed_ms: int | None
    """When the first failed run of the bucket ended (``None``: none failed)."""
    last_failed_ms: int | None
    most_failed_rows: int | None
    lags: int
    """Runs with a recorded newest data timestamp (``ingestion_runs.data_latest_ms``)."""
    longest_lag_ms: int | None
    """The longest data lag a run left when it ended: its end less its newest data timestamp."""
    longest_failed_lag_ms: int | None


class MinuteState(StrEnum):
    """What the memory holds for one minute of one coin (SPEC §8)."""

    CONFIRMED = "confirmed"
    """A closed candle whose final state is known."""
    UNVERIFIED = "unverified"
    """A candle not (yet) confirmed: forming, or closed and owed to REST."""
    NO_TRADES = "no_trades"
    """No candle: REST showed nobody traded."""
    MISSING = "missing"
    """No candle and nothing known about the minute (a gap not repaired yet)."""
    UNFILLABLE = "unfillable"
    """No candle, and past candleSnapshot's reach: it can no longer be repaired."""


class Segment(NamedTuple):
    """Contiguous minutes of one coin in one state: ``[start_ms, end_ms)``."""

    state: MinuteState
    start_ms: int
    end_ms: int


def run_buckets(
    conn: MemoryConnection, channels: Sequence[tuple[str, str]], start_ms: int, end_ms: int, buckets: int
) -> dict[tuple[str, str], list[RunBucket]]:
    """The finished own runs of each (source, channel) started in ``[start_ms, end_ms)``, tallied
    by the bucket their end falls in (``buckets`` equal parts of the span; a run ending after it
    counts in the last), buckets holding runs only, in order.

    An index range of ``ingestion_runs_by_channel`` per channel, tallied in SQLite: a day of the
    seven channels' 2,184 runs costs ~2.5 ms where sending them to Python took 5.7 ms (and one
    ``(source, channel) IN (VALUES …)`` statement 14-27 ms).
    """
    greatest, least, find = pick(conn, sqlite=("max", "min", "instr"), postgres=("GREATEST", "LEAST", "strpos"))
    lag = f"{greatest}(finished_at_ms - data_latest_ms, 0)"
    # The key's text first: parsing every run's JSON doubled the statement's time (2.5 -> 5 ms).
    own = f"({find}(metadata, '\"{BACKFILL_KEY}\"') = 0 OR {own_runs(conn)})"
    failed = "status = 'failed'"
    found: dict[tuple[str, str], list[RunBucket]] = {}
    for source, channel in channels:
        rows = conn.execute(
            f"SELECT {least}(?, (finished_at_ms - ?) * ? / ?) AS bucket, count(*), max(rows_written), count({failed} OR NULL), "
            f"min(CASE WHEN {failed} THEN finished_at_ms END), max(CASE WHEN {failed} THEN finished_at_ms END), "
            f"max(CASE WHEN {failed} THEN rows_written END), count(data_latest_ms), max({lag}), "
            f"max(CASE WHEN {failed} THEN {lag} END) FROM ingestion_runs "
            f"WHERE source = ? AND channel = ? AND started_at_ms >= ? AND started_at_ms < ? AND status != 'running' "
            f"AND {own} GROUP BY bucket ORDER BY bucket",
            (buckets - 1, start_ms, buckets, end_ms - start_ms, source, channel, start_ms, end_ms),
        )
        found[(source, channel)] = [RunBucket(*row) for row in rows]
    return found


def coverage(
    conn: MemoryConnection, interval: str, interval_ms: int, start_ms: int, end_ms: int
) -> dict[str, list[Segment]]:
    """Each listed coin's minutes of ``[start_ms, end_ms)`` (whole intervals, aligned) as
    segments, oldest first, covering the span without overlap; coins in name order."""
    held: dict[str, tuple[int, int, int]] = {
        coin: (count, first, last)
        for coin, count, first, last in conn.execute(
            "SELECT coin, count(*), min(open_time_ms), max(open_time_ms) FROM candles "
            "WHERE interval = ? AND open_time_ms >= ? AND open_time_ms < ? GROUP BY coin",
            (interval, start_ms, end_ms),
        )
    }
    unverified: dict[str, list[int]] = {}
    # SQLite's unary + keeps it on the forming rows' partial index, not a range of the key
    # (PostgreSQL has no + for text and chooses the partial index itself).
    unary = pick(conn, sqlite="+", postgres="")
    for coin, open_ms in conn.execute(
        "SELECT coin, open_time_ms FROM candles WHERE interval = ? AND closed = 1 AND confirmed = 0 "
        "AND open_time_ms >= ? AND open_time_ms < ? UNION "
        f"SELECT coin, open_time_ms FROM candles WHERE closed = 0 AND close_time_ms >= ? AND {unary}interval = ? "
        f"AND {unary}open_time_ms >= ? AND {unary}open_time_ms < ? ORDER BY 1, 2",
        (interval, start_ms, end_ms, start_ms, interval, start_ms, end_ms),
    ):
        unverified.setdefault(coin, []).append(open_ms)
    known: dict[str, list[Segment]] = {}
    for coin, gap_start, gap_end, status in conn.execute(
        "SELECT coin, start_ms, end_ms, status FROM candle_gaps WHERE interval = ? "
        "AND status IN ('no_trades', 'unfillable') AND end_ms > ? AND start_ms < ? ORDER BY coin, start_ms",
        (interval, start_ms, end_ms),
    ):
        known.setdefault(coin, []).append(Segment(MinuteState(status), gap_start, gap_end))
    listed = [coin for (coin,) in conn.execute("SELECT coin FROM hyperliquid_universe WHERE is_delisted = 0 ORDER BY coin")]
    found: dict[str, list[Segment]] = {}
    for coin in listed:
        count, first, last = held.get(coin, (0, end_ms, end_ms))
        if count == 0:
            holes = [(start_ms, end_ms)]
        elif count == (last - first) // interval_ms + 1:  # no hole between its first and last minute
            holes = [(begin, end) for begin, end in ((start_ms, first), (last + interval_ms, end_ms)) if begin < end]
        else:
            holes = _holes(_open_times(conn, coin, interval, start_ms, end_ms), interval_ms, start_ms, end_ms)
        found[coin] = _segments(holes, unverified.get(coin, []), known.get(coin, []), interval_ms, start_ms, end_ms)
    return found


def _open_times(conn: MemoryConnection, coin: str, interval: str, start_ms: int, end_ms: int) -> list[int]:
    """The open times one coin holds in the span: only read for a coin with a hole."""
    rows = conn.execute(
        "SELECT open_time_ms FROM candles WHERE coin = ? AND interval = ? AND open_time_ms >= ? AND open_time_ms < ?",
        (coin, interval, start_ms, end_ms),
    )
    return [open_ms for (open_ms,) in rows]


def _holes(open_times: Iterable[int], interval_ms: int, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The spans ``[from, to)`` of the span between consecutive held open times (ascending)."""
    holes = []
    after = start_ms
    for open_ms in open_times:
        if open_ms > after:
            holes.append((after, open_ms))
        after = open_ms + interval_ms
    if end_ms > after:
        holes.append((after, end_ms))
    return holes


def _segments(
    holes: Iterable[tuple[int, int]], unverified: Iterable[int], known: Sequence[Segment],
    interval_ms: int, start_ms: int, end_ms: int,
) -> list[Segment]:
    """The span as segments: holes told by the known no-candle spans (the rest missing), the
    unverified minutes, and confirmed between them; neighbours of one state merged."""
    marks = [Segment(MinuteState.UNVERIFIED, open_ms, open_ms + interval_ms) for open_ms in unverified]
    for begin, end in holes:
        at = begin
        for span in known:
            if span.end_ms <= at or span.start_ms >= end:
                continue
            if span.start_ms > at:
                marks.append(Segment(MinuteState.MISSING, at, span.start_ms))
                at = span.start_ms
            marks.append(Segment(span.state, at, min(span.end_ms, end)))
            at = min(span.end_ms, end)
        if at < end:
            marks.append(Segment(MinuteState.MISSING, at, end))
    segments: list[Segment] = []

    def add(state: MinuteState, begin: int, end: int) -> None:
        if begin >= end:
            return
        if segments and segments[-1].state is state and segments[-1].end_ms == begin:
            segments[-1] = segments[-1]._replace(end_ms=end)
        else:
            segments.append(Segment(state, begin, end))

    at = start_ms
    for mark in sorted(marks, key=lambda m: m.start_ms):
        add(MinuteState.CONFIRMED, at, mark.start_ms)
        add(mark.state, mark.start_ms, mark.end_ms)
        at = mark.end_ms
    add(MinuteState.CONFIRMED, at, end_ms)
    return segments
