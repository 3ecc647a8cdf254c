"""SQL of the DefiLlama checks (``market_assets.quality.defillama``): reads only."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import ORDERED_JOIN, Dialect, dialect_of
from market_assets.memory.runs import RunStatus, own_runs

# One seek per subject of the series (the key is (series, subject, ts_ms)): the TVL series holds
# every chain's days for ever, and a week of it is ~450 short ranges, not a scan of the years.
_POINTS: dict[Dialect, str] = {
    dialect: f"""WITH RECURSIVE subjects (subject) AS (
        SELECT min(subject) FROM defillama_series WHERE series = :series
        UNION ALL
        SELECT (SELECT min(subject) FROM defillama_series WHERE series = :series AND subject > subjects.subject)
        FROM subjects WHERE subjects.subject IS NOT NULL)
    SELECT d.subject, d.ts_ms, d.value FROM subjects AS s {join} defillama_series AS d
        ON d.series = :series AND d.subject = s.subject AND d.ts_ms >= :since AND d.ts_ms <= :until
    WHERE s.subject IS NOT NULL ORDER BY d.subject, d.ts_ms"""
    for dialect, join in ORDERED_JOIN.items()
}


class Point(NamedTuple):
    subject: str
    ts_ms: int
    value: float


class FinishedRun(NamedTuple):
    run_id: int
    started_at_ms: int
    finished_at_ms: int
    status: RunStatus
    metadata: dict[str, Any]


def points(conn: MemoryConnection, series: str, since_ms: int, until_ms: int) -> list[Point]:
    """Every point of ``series`` stamped in ``[since_ms, until_ms]``, by subject, oldest first."""
    rows = conn.execute(_POINTS[dialect_of(conn)], {"series": series, "since": since_ms, "until": until_ms}).fetchall()
    return [Point(subject, int(ts), float(value)) for subject, ts, value in rows]


def finished_runs(conn: MemoryConnection, source: str, channel: str, since_ms: int, until_ms: int) -> list[FinishedRun]:
    """The channel's own finished runs (not backfills) started in ``[since_ms, until_ms]``, oldest first."""
    rows = conn.execute(
        f"""SELECT run_id, started_at_ms, finished_at_ms, status, metadata FROM ingestion_runs
            WHERE source = ? AND channel = ? AND started_at_ms >= ? AND started_at_ms <= ?
            AND finished_at_ms IS NOT NULL AND {own_runs(conn)} ORDER BY started_at_ms, run_id""",
        (source, channel, since_ms, until_ms),
    ).fetchall()
    return [
        FinishedRun(int(run_id), int(started), int(finished), RunStatus(status), msgspec.json.decode(metadata))
        for run_id, started, finished, status, metadata in rows
    ]
