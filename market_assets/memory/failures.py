"""SQL of a channel's failure streak: the consecutive failed runs the catch-up's backoff counts."""

from __future__ import annotations

from typing import NamedTuple

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.runs import own_runs


class FailureStreak(NamedTuple):
    failures: int
    """Consecutive ``failed`` runs, newest first, up to the limit asked for (0: the latest did not fail)."""
    last_failed_at_ms: int | None
    """When the newest of them finished (its start, if it never recorded a finish)."""


def failure_streak(conn: MemoryConnection, source: str, channel: str, limit: int) -> FailureStreak:
    """The failed runs that end the channel's ledger, counted up to ``limit``.

    One seek on ``ingestion_runs_by_channel`` reading at most ``limit`` runs: a channel that
    failed for a month costs what one that failed twice does.
    """
    rows = conn.execute(
        "SELECT status, coalesce(finished_at_ms, started_at_ms) FROM ingestion_runs "
        f"WHERE source = ? AND channel = ? AND {own_runs(conn)} ORDER BY started_at_ms DESC, run_id DESC LIMIT ?",
        (source, channel, limit),
    ).fetchall()
    failures = 0
    for status, _ in rows:
        if status != "failed":
            break
        failures += 1
    return FailureStreak(failures, int(rows[0][1]) if failures else None)
