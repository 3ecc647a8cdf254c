"""SPEC §4: statuses at their boundaries, with the clock injected."""

from __future__ import annotations

import sqlite3

import msgspec
import pytest

from market_assets.health import (
    Severity,
    Status,
    evaluate_channel,
    evaluate_health,
    explain,
    read_health,
)
from market_assets.ledger import Ledger
from market_assets.memory.checks import CheckResult, record_results
from market_assets.memory.runs import BACKFILL_KEY, RunRecord, RunStatus
from market_assets.registry import CANDLES, DEFILLAMA_MACRO, FUNDING, REGISTRY, Channel
from tests.conftest import FrozenClock

T = 1_795_000_000_000
STALE_MS = CANDLES.stale_after_sec * 1000


def run(status: RunStatus, *, started: int, finished: int | None, rows: int = 7, error: str | None = None) -> RunRecord:
    return RunRecord(
        run_id=1,
        source=CANDLES.source,
        channel=CANDLES.name,
        started_at_ms=started,
        finished_at_ms=finished,
        status=status,
        rows_written=rows,
        error=error,
        retries=0,
        throttles=0,
    )


def succeeded_at(finished: int) -> RunRecord:
    return run(RunStatus.SUCCEEDED, started=finished - 5_000, finished=finished)


@pytest.mark.parametrize(
    ("age_ms", "expected"),
    [
        (STALE_MS - 1_000, Status.OK),
        (STALE_MS, Status.OK),
        (STALE_MS + 999, Status.OK),  # ageSec is floored: still 360 s, within the threshold
        (STALE_MS + 1_000, Status.STALE),
    ],
)
def test_completed_run_is_ok_up_to_its_threshold_and_stale_after(age_ms: int, expected: Status) -> None:
    health = evaluate_channel(CANDLES, succeeded_at(T - age_ms), T)
    assert health.status is expected
    assert health.age_sec == age_ms // 1000


@pytest.mark.parametrize(
    ("age_ms", "expected"),
    [(STALE_MS - 1_000, Status.RUNNING), (STALE_MS, Status.RUNNING), (STALE_MS + 1_000, Status.STALE)],
)
def test_running_past_threshold_is_stale(age_ms: int, expected: Status) -> None:
    health = evaluate_channel(CANDLES, run(RunStatus.RUNNING, started=T - age_ms, finished=None), T)
    assert health.status is expected


def test_running_age_counts_from_start_and_completed_age_from_finish() -> None:
    running = evaluate_channel(CANDLES, run(RunStatus.RUNNING, started=T - 42_000, finished=None), T)
    done = evaluate_channel(CANDLES, run(RunStatus.SUCCEEDED, started=T - 42_000, finished=T - 2_000), T)
    assert (running.age_sec, done.age_sec) == (42, 2)


@pytest.mark.parametrize("age_ms", [0, STALE_MS - 1_000, STALE_MS, STALE_MS + 1_000, 10 * STALE_MS])
def test_failed_is_failed_at_any_age(age_ms: int) -> None:
    failed = run(RunStatus.FAILED, started=T - age_ms - 1_000, finished=T - age_ms, error="boom")
    health = evaluate_channel(CANDLES, failed, T)
    assert health.status is Status.FAILED
    assert health.severity > Severity.STALE


def test_no_run_is_missing_with_null_age_and_rows() -> None:
    health = evaluate_channel(CANDLES, None, T)
    assert health.status is Status.MISSING
    assert (health.row().age_sec, health.row().rows_written) == (None, None)


def test_a_run_finished_in_the_future_has_age_zero() -> None:
    health = evaluate_channel(CANDLES, succeeded_at(T + 3_000), T)
    assert (health.status, health.age_sec) == (Status.OK, 0)


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        (Status.OK, True),
        (Status.RUNNING, True),
        (Status.MISSING, False),
        (Status.FAILED, False),
        (Status.STALE, False),
    ],
)
def test_ok_is_true_only_without_missing_failed_or_stale(status: Status, ok: bool) -> None:
    healthy = {(c.source, c.name): succeeded_at(T - 1_000) for c in REGISTRY}
    key = (FUNDING.source, FUNDING.name)
    if status is Status.MISSING:
        del healthy[key]
    elif status is Status.RUNNING:
        healthy[key] = run(RunStatus.RUNNING, started=T - 1_000, finished=None)
    elif status is Status.FAILED:
        healthy[key] = run(RunStatus.FAILED, started=T - 2_000, finished=T - 1_000, error="x")
    elif status is Status.STALE:
        healthy[key] = succeeded_at(T - (FUNDING.stale_after_sec + 1) * 1000)
    report = evaluate_health(REGISTRY, healthy, T)
    assert [c.status for c in report.channels if c.channel is FUNDING] == [status]
    assert report.ok is ok
    assert report.document().ok is ok


def test_document_has_the_spec_keys_in_registry_order() -> None:
    latest = {(CANDLES.source, CANDLES.name): succeeded_at(T - 20_000)}
    document = msgspec.json.decode(msgspec.json.encode(evaluate_health(REGISTRY, latest, T).document()))
    assert list(document) == ["ok", "rows"]
    assert [(r["source"], r["channel"]) for r in document["rows"]] == [(c.source, c.name) for c in REGISTRY]
    assert document["rows"][0] == {
        "source": "hyperliquid",
        "channel": "candles",
        "status": "ok",
        "expectedCadenceSec": 60,
        "staleAfterSec": 360,
        "ageSec": 20,
        "rowsWritten": 7,
    }
    assert list(document["rows"][0]) == [
        "source", "channel", "status", "expectedCadenceSec", "staleAfterSec", "ageSec", "rowsWritten"
    ]


def test_severity_ranks_failed_over_missing_over_stale() -> None:
    latest = {
        (CANDLES.source, CANDLES.name): succeeded_at(T - STALE_MS - 1_000),
    }
    stale_and_missing = evaluate_health(REGISTRY, latest, T)
    assert stale_and_missing.severity is Severity.MISSING
    latest[(FUNDING.source, FUNDING.name)] = run(RunStatus.FAILED, started=T - 9_000, finished=T - 8_000)
    assert evaluate_health(REGISTRY, latest, T).severity is Severity.FAILED
    only_stale = {(c.source, c.name): succeeded_at(T) for c in REGISTRY}
    only_stale[(CANDLES.source, CANDLES.name)] = succeeded_at(T - STALE_MS - 1_000)
    assert evaluate_health(REGISTRY, only_stale, T).severity is Severity.STALE


def test_missing_on_a_fresh_memory_is_called_a_setup_failure() -> None:
    missing = evaluate_channel(CANDLES, None, T)
    fresh = explain(missing, memory_age_sec=30)
    old = explain(missing, memory_age_sec=CANDLES.stale_after_sec + 1)
    assert fresh.startswith("setup/configuration failure") and "fresh memory" in fresh
    assert "streamer" in fresh
    assert old.startswith("setup/configuration failure") and "fresh" not in old


def test_failed_explanation_carries_the_error_text() -> None:
    failed = run(RunStatus.FAILED, started=T - 9_000, finished=T - 8_000, error="HTTPStatusError: 503\ntraceback")
    assert explain(evaluate_channel(CANDLES, failed, T), 0) == "latest run failed 8s ago: HTTPStatusError: 503"


def test_a_history_backfill_neither_hides_nor_causes_a_channel_s_failure(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    """A backfill is a ledger run of the channel it fills, not the channel's schedule (SPEC §3, §7)."""
    ledger = Ledger(conn, clock)
    with pytest.raises(RuntimeError), ledger.run(DEFILLAMA_MACRO):
        raise RuntimeError("api.llama.fi answered 502")
    clock.advance(seconds=60)
    with ledger.run(DEFILLAMA_MACRO, metadata={BACKFILL_KEY: "2023-01-10..2023-01-12"}) as backfill:
        backfill.add_rows(3)
    macro = {c.channel: c for c in read_health(conn, clock()).channels}[DEFILLAMA_MACRO]
    assert macro.status is Status.FAILED  # the succeeded backfill hides nothing

    clock.advance(seconds=60)
    with ledger.run(DEFILLAMA_MACRO) as own:
        own.add_rows(5)
    with pytest.raises(RuntimeError), ledger.run(DEFILLAMA_MACRO, metadata={BACKFILL_KEY: "2023-01-01..2023-01-01"}):
        raise RuntimeError("a day out of reach")
    macro = {c.channel: c for c in read_health(conn, clock()).channels}[DEFILLAMA_MACRO]
    assert macro.status is Status.OK and macro.run is not None and macro.run.rows_written == 5  # the failed backfill is not its run


def check_result(
    name: str, *, passed: bool, blocking: bool, channel: Channel = CANDLES, summary: str = "failed: 1 of 288,000; first: BTC at 1795000000000: low 101.5 above high 100.0"
) -> CheckResult:
    return CheckResult(
        channel.source, channel.name, name, passed, blocking, "ERROR", T - 30_000, 288_000, 0 if passed else 1,
        "passed: 288,000 checked" if passed else summary,
    )


def test_a_failing_blocking_check_makes_a_healthy_channel_failed_and_says_which() -> None:
    """SPEC §12: a failing blocking check counts as ``failed`` for alerting, whatever the runs say."""
    latest = {(CANDLES.source, CANDLES.name): succeeded_at(T - 20_000)}
    report = evaluate_health(REGISTRY, latest, T, [check_result("ohlc_invariants", passed=False, blocking=True)])
    candles = report.channels[0]
    assert (candles.status, candles.run_status, candles.severity) == (Status.FAILED, Status.OK, Severity.FAILED)
    assert report.ok is False and report.severity is Severity.FAILED
    assert report.document().rows[0].status == "failed"
    assert explain(candles, 0) == (
        "blocking check ohlc_invariants failed: 1 of 288,000; first: BTC at 1795000000000: low 101.5 above high 100.0"
    )


def test_passing_or_non_blocking_checks_leave_the_status_to_the_runs() -> None:
    latest = {(CANDLES.source, CANDLES.name): succeeded_at(T - 20_000)}
    results = [
        check_result("ohlc_invariants", passed=True, blocking=True),
        check_result("continuity", passed=False, blocking=False),
        check_result("ohlc_invariants", passed=False, blocking=True, channel=FUNDING),  # another channel's
    ]
    candles = evaluate_health(REGISTRY, latest, T, results).channels[0]
    assert (candles.status, candles.blocking_failures, explain(candles, 0)) == (Status.OK, (), "")
    assert [r.check_name for r in candles.failed_checks] == ["continuity"]  # shown by market status, not a failure


def test_a_stale_channel_with_a_failing_blocking_check_is_failed_and_explains_both() -> None:
    stale = evaluate_channel(CANDLES, succeeded_at(T - STALE_MS - 5_000), T, [check_result("ohlc_invariants", passed=False, blocking=True)])
    assert (stale.status, stale.run_status) == (Status.FAILED, Status.STALE)
    assert explain(stale, 0) == (
        "blocking check ohlc_invariants failed: 1 of 288,000; first: BTC at 1795000000000: low 101.5 above high 100.0; "
        f"last run finished {CANDLES.stale_after_sec + 5}s ago, over its {CANDLES.stale_after_sec}s stale threshold "
        f"(cadence {CANDLES.expected_cadence_sec}s)"
    )


def test_read_health_reads_the_recorded_check_results_and_keeps_the_spec_keys(
    conn: sqlite3.Connection, clock: FrozenClock
) -> None:
    with Ledger(conn, clock).run(FUNDING) as funding:
        funding.add_rows(4)
    assert {c.channel: c for c in read_health(conn, clock()).channels}[FUNDING].status is Status.OK
    record_results(conn, [check_result("rate_bound", passed=False, blocking=True, channel=FUNDING,
                                       summary="failed: 1 of 4,800; first: BTC at 1795000000000: rate 0.5 beyond ±0.04")])
    funding_health = {c.channel: c for c in read_health(conn, clock()).channels}[FUNDING]
    assert funding_health.status is Status.FAILED
    assert [r.check_name for r in funding_health.failed_checks] == ["rate_bound"]
    row = msgspec.to_builtins(read_health(conn, clock()).document())["rows"][1]
    assert list(row) == ["source", "channel", "status", "expectedCadenceSec", "staleAfterSec", "ageSec", "rowsWritten"]
    assert row["status"] == "failed"
