"""SQL of the admin page's pictures: each channel's runs of the last day, and the candles'
per-coin coverage of the last day as run-length segments.

The runs are an index range per channel (1,440 streamer windows a day). The coverage is one
pass over the span's candles that only counts them per coin (SQLite, no row to Python); the
unverified and forming minutes come from their partial indexes, and only a coin whose count falls
short has its open times read, to find its holes, which the ``no_trades`` and ``unfillable``
spans of ``candle_gaps`` tell apart from the missing minutes. At 200 coins × 1,440 minutes the
count is the cost (~40 ms on a quiet machine; a window function over the rows took 1.3 s), so
the admin page keeps the result for a minute (``api.admin_page``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import NamedTuple

from market_assets.memory.runs import OWN_RUNS


class RunPoint(NamedTuple):
    """One finished own run (not a backfill) of a channel."""

    started_at_ms: int
    finished_at_ms: int
    failed: bool
    rows_written: int
    data_latest_ms: int | None
    """The channel's newest data timestamp when the run ended (``None``: not recorded)."""


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


def runs_since(
    conn: sqlite3.Connection, channels: Sequence[tuple[str, str]], since_ms: int
) -> dict[tuple[str, str], list[RunPoint]]:
    """The finished own runs of each (source, channel) started at or after ``since_ms``, oldest
    first: an index range of ``ingestion_runs_by_channel`` per channel. One statement for all
    (``(source, channel) IN (VALUES …)``) took 14-27 ms for a day of the seven channels' 2,184
    runs, one a channel 5.7 ms."""
    found: dict[tuple[str, str], list[RunPoint]] = {}
    for source, channel in channels:
        rows = conn.execute(
            "SELECT started_at_ms, finished_at_ms, status = 'failed', rows_written, data_latest_ms FROM ingestion_runs "
            f"WHERE source = ? AND channel = ? AND started_at_ms >= ? AND status != 'running' AND {OWN_RUNS} "
            "ORDER BY started_at_ms, run_id",
            (source, channel, since_ms),
        )
        found[(source, channel)] = [
            RunPoint(started, finished, bool(failed), rows_written, latest)
            for started, finished, failed, rows_written, latest in rows
        ]
    return found


def coverage(
    conn: sqlite3.Connection, interval: str, interval_ms: int, start_ms: int, end_ms: int
) -> dict[str, list[Segment]]:
    """Each listed coin's minutes of ``[start_ms, end_ms)`` (whole intervals, aligned) as
    segments, oldest first, covering the span without overlap; coins in name order."""
    expected = (end_ms - start_ms) // interval_ms
    counts: dict[str, int] = dict(conn.execute(
        "SELECT coin, count(*) FROM candles WHERE interval = ? AND open_time_ms >= ? AND open_time_ms < ? GROUP BY coin",
        (interval, start_ms, end_ms),
    ).fetchall())
    unverified: dict[str, list[int]] = {}
    for coin, open_ms in conn.execute(
        "SELECT coin, open_time_ms FROM candles WHERE interval = ? AND closed = 1 AND confirmed = 0 "
        "AND open_time_ms >= ? AND open_time_ms < ? UNION "
        "SELECT coin, open_time_ms FROM candles WHERE closed = 0 AND close_time_ms >= ? AND +interval = ? "
        "AND +open_time_ms >= ? AND +open_time_ms < ? ORDER BY 1, 2",  # + : the forming rows' index, not a range
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
        held = counts.get(coin, 0)
        if held == expected:
            holes: list[tuple[int, int]] = []
        elif held == 0:
            holes = [(start_ms, end_ms)]
        else:
            holes = _holes(_open_times(conn, coin, interval, start_ms, end_ms), interval_ms, start_ms, end_ms)
        found[coin] = _segments(holes, unverified.get(coin, []), known.get(coin, []), interval_ms, start_ms, end_ms)
    return found


def _open_times(conn: sqlite3.Connection, coin: str, interval: str, start_ms: int, end_ms: int) -> list[int]:
    """The open times one coin holds in the span: only read for a coin with a hole."""
    rows = conn.execute(
        "SELECT open_time_ms FROM candles WHERE coin = ? AND interval = ? AND open_time_ms >= ? AND open_time_ms < ?",
        (coin, interval, start_ms, end_ms),
    )
    return [open_ms for (open_ms,) in rows]


def _holes(open_times: Iterable[int], interval_ms: int, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The spans ``[from, to)`` between consecutive held open times (ascending)."""
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
