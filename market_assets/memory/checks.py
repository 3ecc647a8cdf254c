"""SQL of ``check_results``: the latest outcome of each asset check (SPEC §12).

Dagster's event log keeps every evaluation; the memory keeps the latest per check, so the
Dagster-free health surfaces (dashboard, ``/metrics``, the monitor) read it with the runs.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec

from market_assets.memory.connection import MemoryConnection, write_transaction


class CheckResult(msgspec.Struct, frozen=True):
    """One check's latest outcome, as stored."""

    source: str
    channel: str
    check_name: str
    passed: bool
    blocking: bool
    severity: str
    """``WARN`` or ``ERROR``."""
    evaluated_at_ms: int
    checked: int
    failing: int
    summary: str
    problems_json: str = "[]"

    @property
    def problems(self) -> list[dict[str, Any]]:
        """``[{"subject", "at_ms", "what", "value"}, …]``, at most the registry's listed count."""
        loaded = json.loads(self.problems_json)
        return loaded if isinstance(loaded, list) else []


_UPSERT = """INSERT INTO check_results
    (source, channel, check_name, passed, blocking, severity, evaluated_at_ms, checked, failing, summary, problems)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (source, channel, check_name) DO UPDATE SET
        passed = excluded.passed, blocking = excluded.blocking, severity = excluded.severity,
        evaluated_at_ms = excluded.evaluated_at_ms, checked = excluded.checked, failing = excluded.failing,
        summary = excluded.summary, problems = excluded.problems
    WHERE excluded.evaluated_at_ms >= check_results.evaluated_at_ms"""


def record_results(
    conn: MemoryConnection, results: Iterable[CheckResult], *, known: Collection[tuple[str, str, str]] | None = None
) -> None:
    """Keep each result unless a later evaluation of the same check is already stored (two
    evaluators racing, e.g. the sensor and a check run launched from the UI).

    With ``known`` (every check's ``(source, channel, name)``), the results of checks no longer
    known go in the same transaction: a renamed or retired blocking check that last failed would
    otherwise keep its channel ``failed`` with nothing left to evaluate it again."""
    rows = [
        (
            r.source, r.channel, r.check_name, int(r.passed), int(r.blocking), r.severity,
            r.evaluated_at_ms, r.checked, r.failing, r.summary, r.problems_json,
        )
        for r in results
    ]
    with write_transaction(conn):
        conn.executemany(_UPSERT, rows)
        if known is not None:
            stored = conn.execute("SELECT source, channel, check_name FROM check_results").fetchall()
            retired = [tuple(key) for key in stored if tuple(key) not in known]
            conn.executemany("DELETE FROM check_results WHERE source = ? AND channel = ? AND check_name = ?", retired)


def latest_results(conn: MemoryConnection, channels: Sequence[tuple[str, str]] | None = None) -> list[CheckResult]:
    """The stored results, by channel then check name; only of ``channels`` when given."""
    rows = conn.execute(
        """SELECT source, channel, check_name, passed, blocking, severity, evaluated_at_ms, checked, failing,
            summary, problems FROM check_results ORDER BY source, channel, check_name"""
    ).fetchall()
    wanted = None if channels is None else set(channels)
    return [
        CheckResult(
            source, channel, name, bool(passed), bool(blocking), severity, evaluated, checked, failing, summary, problems
        )
        for source, channel, name, passed, blocking, severity, evaluated, checked, failing, summary, problems in rows
        if wanted is None or (source, channel) in wanted
    ]


def failing_results(conn: MemoryConnection) -> list[CheckResult]:
    """The stored results that failed, blocking or not, without their problems: the health
    read, usually empty, so one scan of the tiny table and no JSON."""
    rows = conn.execute(
        """SELECT source, channel, check_name, blocking, severity, evaluated_at_ms, checked, failing, summary
            FROM check_results WHERE passed = 0 ORDER BY source, channel, check_name"""
    ).fetchall()
    return [
        CheckResult(source, channel, name, False, bool(blocking), severity, evaluated, checked, failing, summary)
        for source, channel, name, blocking, severity, evaluated, checked, failing, summary in rows
    ]
