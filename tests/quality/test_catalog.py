"""The catalog: every channel is checked, check names are unique per channel, outcomes are kept
as strict JSON, and results of retired checks do not outlive them."""

from __future__ import annotations

import json

from market_assets.memory.checks import CheckResult, latest_results, record_results
from market_assets.memory.connection import MemoryConnection
from market_assets.quality import Problem
from market_assets.quality.catalog import CHECKS, KNOWN, checks_of, evaluate_and_record
from market_assets.registry import CANDLES, REGISTRY


def test_every_channel_has_checks_and_names_are_unique_per_channel() -> None:
    assert all(checks_of(channel) for channel in REGISTRY)
    assert len(KNOWN) == len(CHECKS)
    assert [c.name for c in CHECKS if c.blocking] == ["ohlc_invariants"]


def test_a_non_finite_value_is_kept_as_its_text() -> None:
    assert json.loads(json.dumps(Problem("BTC", 0, "high inf", float("inf")).as_json()))["value"] == "inf"
    assert Problem("BTC", 0, "low", 1.5).as_json()["value"] == 1.5


def test_recording_retires_the_results_of_checks_no_longer_in_the_catalog(conn: MemoryConnection) -> None:
    retired = CheckResult("hyperliquid", "candles", "renamed_long_ago", False, True, "ERROR", 1, 10, 1, "failed: 1 of 10")
    record_results(conn, [retired])
    assert [r.check_name for r in latest_results(conn)] == ["renamed_long_ago"]
    outcomes = evaluate_and_record(conn, checks_of(CANDLES), 2)
    stored = {r.check_name for r in latest_results(conn)}
    assert stored == {check.name for check in outcomes} and "renamed_long_ago" not in stored


def test_an_older_evaluation_never_replaces_a_newer_one(conn: MemoryConnection) -> None:
    newer = CheckResult("hyperliquid", "candles", "continuity", True, False, "ERROR", 2_000, 10, 0, "passed: 10 checked")
    older = CheckResult("hyperliquid", "candles", "continuity", False, False, "ERROR", 1_000, 10, 1, "failed: 1 of 10")
    record_results(conn, [newer])
    record_results(conn, [older])
    assert latest_results(conn) == [newer]
