"""SPEC §5/§12: each dashboard row lists its channel's latest check results and raises
``check_failed`` naming every failing check; a failing blocking check makes the row ``failed``.

Results are written with ``record_results`` (what the Dagster checks and ``market checks`` write).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api import create_app
from market_assets.dashboard import WarningCode, read_dashboard
from market_assets.memory.checks import CheckResult, record_results
from market_assets.quality.catalog import result_of
from market_assets.quality.outcome import (
    CheckOutcome,
    Problem,
    QualityCheck,
    Severity,
    utc_minute,
)
from market_assets.registry import CANDLES, DEFILLAMA_MACRO, FUNDING, Channel
from market_assets.settings import Settings
from tests.conftest import FrozenClock

from .seeding import finished_run

DASHBOARD = "/api/v1/ingestion/dashboard"
MIN = 60_000


def outcome_of(check: QualityCheck, outcome: CheckOutcome, at_ms: int) -> CheckResult:
    return result_of(check, outcome, at_ms)


def check(channel: Channel, name: str, *, blocking: bool = False, severity: Severity = Severity.ERROR) -> QualityCheck:
    return QualityCheck(channel, name, f"{name} of {channel.key}", lambda conn, now_ms: CheckOutcome(0, []), severity, blocking)


def low_above_high(now_ms: int, coins: int) -> CheckOutcome:
    problems = [Problem(f"C{i}", now_ms - (i + 1) * MIN, f"low 10{i}.5 above high 100.0", 100 + i + 0.5) for i in range(coins)]
    return CheckOutcome(288_000, problems)


def dashboard_rows(memory_path: Path, clock: FrozenClock) -> dict[str, Any]:
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        response = client.get(DASHBOARD)
    assert response.status_code == 200
    return {f"{r['source']}/{r['channel']}": r for r in response.json()["rows"]}


def test_each_row_lists_the_latest_result_of_its_channels_checks(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    now = clock.now_ms
    record_results(conn, [
        outcome_of(check(CANDLES, "ohlc_invariants", blocking=True), low_above_high(now, 4), now - MIN),
        outcome_of(check(CANDLES, "unique_minutes"), CheckOutcome(288_000, []), now - 2 * MIN),
        outcome_of(check(FUNDING, "rate_bound"), CheckOutcome(4_800, []), now - 3 * MIN),
    ])
    rows = dashboard_rows(memory_path, clock)
    ohlc, unique = rows["hyperliquid/candles"]["checks"]
    assert ohlc == {
        "name": "ohlc_invariants", "passed": False, "blocking": True, "severity": "ERROR", "evaluatedAtMs": now - MIN,
        "checked": 288_000, "failing": 4,
        "summary": f"failed: 4 of 288,000; first: C0 at {utc_minute(now - MIN)}: low 100.5 above high 100.0",
        "problems": [  # the first three of four
            {"subject": f"C{i}", "atMs": now - (i + 1) * MIN, "what": f"low 10{i}.5 above high 100.0", "value": 100 + i + 0.5}
            for i in range(3)
        ],
    }
    assert unique == {
        "name": "unique_minutes", "passed": True, "blocking": False, "severity": "ERROR", "evaluatedAtMs": now - 2 * MIN,
        "checked": 288_000, "failing": 0, "summary": "passed: 288,000 checked", "problems": [],
    }
    assert [c["name"] for c in rows["hyperliquid/funding"]["checks"]] == ["rate_bound"]
    assert rows["defillama/macro"]["checks"] == []


def test_check_failed_names_every_failing_check_blocking_first_with_its_summary(
    conn: sqlite3.Connection, clock: FrozenClock
) -> None:
    now = clock.now_ms
    finished_run(conn, clock, CANDLES, started_at_ms=now - 2 * MIN, finished_at_ms=now - MIN, rows=3)
    record_results(conn, [
        outcome_of(check(CANDLES, "continuity"), CheckOutcome(200, [Problem("ETH", now - 90 * MIN, "gap of 3 minutes", 3)]), now),
        outcome_of(check(CANDLES, "ohlc_invariants", blocking=True), low_above_high(now, 1), now),
        outcome_of(check(CANDLES, "unique_minutes"), CheckOutcome(288_000, []), now),
    ])
    row = next(r for r in read_dashboard(conn, now).rows if r.channel == "candles")
    assert row.warnings[-1] == "check_failed"
    assert row.warning_details[WarningCode.CHECK_FAILED] == (
        f"ohlc_invariants (blocking): failed: 1 of 288,000; first: C0 at {utc_minute(now - MIN)}: low 100.5 above high 100.0; "
        f"continuity (error): failed: 1 of 200; first: ETH at {utc_minute(now - 90 * MIN)}: gap of 3 minutes"
    )


def test_a_failing_warn_check_warns_and_leaves_the_status_alone(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    now = clock.now_ms
    finished_run(conn, clock, DEFILLAMA_MACRO, started_at_ms=now - 2 * MIN, finished_at_ms=now - MIN, rows=30)
    jump = CheckOutcome(40, [Problem("Solana", now - 86_400_000, "TVL 4.1x the day before", 4.1)])
    record_results(conn, [outcome_of(check(DEFILLAMA_MACRO, "tvl_jumps", severity=Severity.WARN), jump, now)])
    row = next(r for r in read_dashboard(conn, now).rows if r.channel == "macro")
    assert (row.status, row.warnings) == ("ok", ["check_failed"])
    assert row.warning_details[WarningCode.CHECK_FAILED].startswith("tvl_jumps (warn): failed: 1 of 40; first: Solana")


def test_passing_checks_raise_no_warning(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    now = clock.now_ms
    finished_run(conn, clock, FUNDING, started_at_ms=now - 2 * MIN, finished_at_ms=now - MIN, rows=3)
    record_results(conn, [outcome_of(check(FUNDING, name), CheckOutcome(4_800, []), now) for name in ("rate_bound", "hourly_continuity")])
    row = next(r for r in read_dashboard(conn, now).rows if r.channel == "funding")
    assert "check_failed" not in row.warnings
    assert [(c.name, c.passed) for c in row.checks] == [("hourly_continuity", True), ("rate_bound", True)]


def test_a_later_evaluation_that_passes_clears_the_warning(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    now = clock.now_ms
    ohlc = check(CANDLES, "ohlc_invariants", blocking=True)
    record_results(conn, [outcome_of(ohlc, low_above_high(now, 1), now)])
    record_results(conn, [outcome_of(ohlc, CheckOutcome(288_000, []), now + MIN)])
    row = next(r for r in read_dashboard(conn, now + MIN).rows if r.channel == "candles")
    assert "check_failed" not in row.warnings
    assert [(c.name, c.passed, c.evaluated_at_ms) for c in row.checks] == [("ohlc_invariants", True, now + MIN)]


def test_a_failing_blocking_check_makes_the_row_failed_and_the_document_not_ok(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    now = clock.now_ms
    finished_run(conn, clock, FUNDING, started_at_ms=now - 2 * MIN, finished_at_ms=now - MIN, rows=3)
    before = read_dashboard(conn, now)
    record_results(conn, [outcome_of(check(CANDLES, "ohlc_invariants", blocking=True), low_above_high(now, 1), now)])
    after = read_dashboard(conn, now)
    status = {r.channel: r.status for r in after.rows}
    assert (status["candles"], status["funding"], after.ok) == ("failed", "ok", False)
    assert {r.channel: r.status for r in before.rows}["candles"] == "missing"


def test_a_stored_non_finite_problem_value_reads_as_its_text(conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock) -> None:
    """``json.dumps`` stores an infinity as ``Infinity``, which strict JSON parsers refuse."""
    now = clock.now_ms
    rates = CheckOutcome(4_800, [Problem("BTC", now - 3_600_000, "rate inf beyond ±0.04", float("inf")),
                                 Problem("ETH", now - 3_600_000, "rate -0.05 beyond ±0.04", -0.05)])
    record_results(conn, [outcome_of(check(FUNDING, "rate_bound"), rates, now)])
    (rate_bound,) = dashboard_rows(memory_path, clock)["hyperliquid/funding"]["checks"]
    assert [(p["subject"], p["value"]) for p in rate_bound["problems"]] == [("BTC", "inf"), ("ETH", -0.05)]
