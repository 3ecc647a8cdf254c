"""SPEC §6 as code: notify after two consecutive bad checks, again on a change of the worst
status, once when resolved; to the alert webhook, or stdout without one."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from market_assets.health import HealthReport, evaluate_health
from market_assets.ledger import Ledger
from market_assets.memory import connect, open_memory
from market_assets.memory.checks import CheckResult, record_results
from market_assets.memory.connection import close
from market_assets.memory.runs import RunRecord, RunStatus
from market_assets.monitor import (
    MonitorState,
    StateFileError,
    check,
    load_state,
    save_state,
    step,
)
from market_assets.registry import CANDLES, FUNDING, REGISTRY, Channel

from .conftest import MARKET, T0_MS
from .webhook import webhook_receiver

FRESH_MEMORY_AGE_SEC = 30


def run(channel: Channel, status: RunStatus, finished_ago_sec: int) -> RunRecord:
    finished = T0_MS - finished_ago_sec * 1000
    return RunRecord(1, channel.source, channel.name, finished - 1000, finished, status, 5, "HTTP 500: boom", 0, 0)


def report(*runs: RunRecord, checks: tuple[CheckResult, ...] = ()) -> HealthReport:
    """Every channel ok unless a run of ``runs`` or a check result of ``checks`` says otherwise."""
    latest = {(c.source, c.name): run(c, RunStatus.SUCCEEDED, 1) for c in REGISTRY}
    latest.update({(r.source, r.channel): r for r in runs})
    return evaluate_health(REGISTRY, latest, T0_MS, checks)


def ohlc_invariants(*, passed: bool) -> CheckResult:
    summary = "passed: 288,000 checked" if passed else f"failed: 1 of 288,000; first: BTC at {T0_MS - 60_000}: low 101.5 above high 100.0"
    return CheckResult(CANDLES.source, CANDLES.name, "ohlc_invariants", passed, True, "ERROR", T0_MS - 30_000, 288_000,
                       0 if passed else 1, summary)


OK = report()
STALE = report(run(FUNDING, RunStatus.SUCCEEDED, FUNDING.stale_after_sec + 1))
FAILED_AND_STALE = report(run(FUNDING, RunStatus.SUCCEEDED, FUNDING.stale_after_sec + 1), run(CANDLES, RunStatus.FAILED, 5))


def walk(*reports: HealthReport) -> list[str | None]:
    state, messages = MonitorState(), []
    for checked in reports:
        outcome = step(state, checked, FRESH_MEMORY_AGE_SEC)
        state = outcome.state
        messages.append(outcome.message)
    return messages


def test_one_bad_check_notifies_nobody() -> None:
    assert walk(STALE) == [None]
    assert walk(STALE, OK) == [None, None]


def test_two_consecutive_bad_checks_notify_once() -> None:
    messages = walk(STALE, STALE, STALE, STALE)
    assert messages[0] is None and messages[2:] == [None, None]
    assert messages[1] is not None
    assert messages[1].startswith(":warning: market: not ok for 2 consecutive checks, worst: stale")
    assert "hyperliquid/funding: stale: last run finished" in messages[1]


def test_recovery_sends_one_resolved_message() -> None:
    messages = walk(STALE, STALE, OK, OK)
    assert messages[2] == ":large_green_circle: market: resolved, every channel is ok again (after 2 bad checks; it was stale)"
    assert messages[3] is None


def test_failed_ranks_above_stale_and_a_change_of_the_worst_notifies_again() -> None:
    messages = walk(STALE, STALE, FAILED_AND_STALE, FAILED_AND_STALE, STALE)
    assert messages[3] is None
    escalated = messages[2]
    assert escalated is not None and escalated.startswith(":red_circle: market: still not ok, worst is now failed (was stale)")
    lines = escalated.splitlines()
    assert lines[1].startswith("• hyperliquid/candles: failed: latest run failed 5s ago: HTTP 500: boom")
    assert lines[2].startswith("• hyperliquid/funding: stale")
    assert messages[4] is not None and "worst is now stale (was failed)" in messages[4]


def test_a_failing_blocking_check_pages_like_a_failed_run_and_names_the_check() -> None:
    """SPEC §12: the candles' runs are fine, their data is not."""
    bad_data = report(checks=(ohlc_invariants(passed=False),))
    messages = walk(bad_data, bad_data, report(checks=(ohlc_invariants(passed=True),)))
    assert messages[0] is None
    assert messages[1] == (
        ":red_circle: market: not ok for 2 consecutive checks, worst: failed\n"
        "• hyperliquid/candles: failed: blocking check ohlc_invariants failed: 1 of 288,000; "
        f"first: BTC at {T0_MS - 60_000}: low 101.5 above high 100.0"
    )
    assert messages[2] == ":large_green_circle: market: resolved, every channel is ok again (after 2 bad checks; it was failed)"


def test_missing_soon_after_a_fresh_deploy_is_named_a_setup_failure() -> None:
    never_ran = evaluate_health(REGISTRY, {}, T0_MS)
    message = walk(never_ran, never_ran)[1]
    assert message is not None
    assert message.startswith(":red_circle: market: not ok for 2 consecutive checks, worst: setup/configuration failure")
    assert "setup/configuration failure: no run yet on this fresh memory (created 30s ago)" in message


def test_an_undelivered_notification_is_sent_again_at_the_next_check(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    sent: list[str] = []

    def refuse(_: str) -> None:
        raise ConnectionError("webhook down")

    assert check(path, STALE, FRESH_MEMORY_AGE_SEC, sent.append) is None
    with pytest.raises(ConnectionError):
        check(path, STALE, FRESH_MEMORY_AGE_SEC, refuse)
    assert load_state(path) == MonitorState(consecutive_bad=2, notified=None)
    assert check(path, STALE, FRESH_MEMORY_AGE_SEC, sent.append) is not None
    assert load_state(path) == MonitorState(consecutive_bad=3, notified="stale")
    with pytest.raises(ConnectionError):
        check(path, OK, FRESH_MEMORY_AGE_SEC, refuse)
    assert load_state(path) == MonitorState(consecutive_bad=3, notified="stale")
    assert check(path, OK, FRESH_MEMORY_AGE_SEC, sent.append) is not None
    assert load_state(path) == MonitorState() and len(sent) == 2


def test_a_state_file_that_is_not_a_state_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{\"consecutive\": ")
    with pytest.raises(StateFileError, match="delete it to start over"):
        load_state(path)
    assert path.read_text() == "{\"consecutive\": "
    save_state(path, MonitorState(1, None))
    assert json.loads(path.read_text()) == {"consecutive_bad": 1, "notified": None}


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    yield {k: v for k, v in os.environ.items() if k not in {"MARKET_DB", "MARKET_ALERT_WEBHOOK_URL"}}


def monitor_once(db: Path, state: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``market monitor --once`` on the memory at ``db``, created empty first if absent (monitor
    only reads it)."""
    if not db.exists():
        close(connect(db))
    return subprocess.run(
        [str(MARKET), "--db", str(db), "monitor", "--once", "--state", str(state)],
        check=False, capture_output=True, text=True, env=env, timeout=60,
    )


def test_market_monitor_posts_to_the_alert_webhook(tmp_path: Path, env: dict[str, str]) -> None:
    db, state = tmp_path / "market.db", tmp_path / "monitor.json"
    with webhook_receiver() as receiver:
        env["MARKET_ALERT_WEBHOOK_URL"] = receiver.url
        first, second = monitor_once(db, state, env), monitor_once(db, state, env)
        assert (first.returncode, second.returncode, first.stdout, second.stdout) == (0, 0, "", "")
        assert len(receiver.messages) == 1
        assert "worst: setup/configuration failure" in receiver.messages[0]["text"]
        with open_memory(db) as conn:
            for channel in REGISTRY:
                with Ledger(conn).run(channel) as ledger_run:
                    ledger_run.add_rows(1)
        assert monitor_once(db, state, env).returncode == 0
        assert [m["text"].split(",")[0] for m in receiver.messages] == [
            ":red_circle: market: not ok for 2 consecutive checks", ":large_green_circle: market: resolved"]
    assert load_state(state) == MonitorState()


def test_market_monitor_pages_a_failing_blocking_check_recorded_in_the_memory(tmp_path: Path, env: dict[str, str]) -> None:
    db, state = tmp_path / "market.db", tmp_path / "monitor.json"
    with open_memory(db) as conn:
        for channel in REGISTRY:
            with Ledger(conn).run(channel) as ledger_run:
                ledger_run.add_rows(1)
        record_results(conn, [ohlc_invariants(passed=False)])
    outputs = [monitor_once(db, state, env).stdout for _ in range(2)]
    assert outputs[0] == ""
    assert outputs[1].splitlines() == [
        ":red_circle: market: not ok for 2 consecutive checks, worst: failed",
        (
            "• hyperliquid/candles: failed: blocking check ohlc_invariants failed: 1 of 288,000; "
            f"first: BTC at {T0_MS - 60_000}: low 101.5 above high 100.0"
        ),
    ]
    assert load_state(state) == MonitorState(2, "failed")


def test_market_monitor_prints_without_a_webhook(tmp_path: Path, env: dict[str, str]) -> None:
    db, state = tmp_path / "market.db", tmp_path / "monitor.json"
    outputs = [monitor_once(db, state, env).stdout for _ in range(2)]
    assert outputs[0] == ""
    assert outputs[1].startswith(":red_circle: market: not ok for 2 consecutive checks")
    assert load_state(state) == MonitorState(2, "missing")


def test_an_unreachable_webhook_exits_1_and_leaves_the_notification_pending(tmp_path: Path, env: dict[str, str]) -> None:
    from .test_api import free_port

    db, state = tmp_path / "market.db", tmp_path / "monitor.json"
    env["MARKET_ALERT_WEBHOOK_URL"] = f"http://127.0.0.1:{free_port()}/hook"
    first, second = monitor_once(db, state, env), monitor_once(db, state, env)
    assert (first.returncode, second.returncode) == (0, 1)
    assert "the alert webhook refused the notification" in second.stderr
    assert load_state(state) == MonitorState(consecutive_bad=2, notified=None)


def test_a_notification_never_carries_a_token_from_a_run_s_error() -> None:
    """Ledger errors are redacted when written; one kept from before (or written by hand) is
    redacted again on its way to the webhook."""
    leaky = RunRecord(1, FUNDING.source, FUNDING.name, T0_MS - 2000, T0_MS - 1000, RunStatus.FAILED, 0,
                      "HTTPStatusError: 401 for url 'https://x.io/info?api_key=s3cr3t'", 0, 0)
    bad = report(leaky)
    first = step(MonitorState(), bad, FRESH_MEMORY_AGE_SEC)
    message = step(first.state, bad, FRESH_MEMORY_AGE_SEC).message
    assert message is not None and "api_key=***" in message and "s3cr3t" not in message
