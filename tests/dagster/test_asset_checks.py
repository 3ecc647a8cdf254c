"""The quality catalog as Dagster asset checks: on their assets, run after each scheduled
materialization, evaluated each minute for the streamed candles, and recorded in the memory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest

from market_assets.defs.automation import asset_key, channel_job
from market_assets.defs.checks import asset_checks, outcome_metadata, problems_table
from market_assets.defs.hyperliquid.candle_checks import (
    SENSOR_NAME,
    candle_checks_sensor,
)
from market_assets.defs.hyperliquid.candles import candles
from market_assets.defs.hyperliquid.derived import features_asset
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.resources import MarketMemory
from market_assets.memory import open_memory
from market_assets.memory.checks import CheckResult, latest_results
from market_assets.quality.outcome import CheckOutcome, Problem, QualityCheck, Severity
from market_assets.registry import CANDLES, FEATURES, FUNDING

MINUTE_MS = 60_000
NOW_MS = 1_795_000_040_000
"""The injected clock: 20 s into a minute."""
FAULT_MS = NOW_MS - 20_000 - 5 * MINUTE_MS


def seed_candle(db: Path, coin: str, open_ms: int, o: float, h: float, lo: float, c: float) -> None:
    """A closed 1m candle written straight into the table, as a faulty writer would."""
    with open_memory(db) as conn:
        conn.execute(
            """INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume,
                trades, closed, ingested_at_ms) VALUES (?, '1m', ?, ?, ?, ?, ?, ?, 1.0, 1, 1, ?)""",
            (coin, open_ms, open_ms + MINUTE_MS - 1, o, h, lo, c, NOW_MS),
        )
        conn.commit()


# A check written here, over the candles table, to prove the wrapping; the catalog's own checks
# are proven by tests/quality and, through Dagster, further below.
def low_above_high(conn: sqlite3.Connection, now_ms: int) -> CheckOutcome:
    rows = conn.execute(
        "SELECT coin, open_time_ms, low, high FROM candles WHERE open_time_ms < ? ORDER BY open_time_ms, coin",
        (now_ms,),
    ).fetchall()
    return CheckOutcome(
        checked=len(rows),
        problems=[Problem(coin, at, f"low {lo} above high {hi}", lo) for coin, at, lo, hi in rows if lo > hi],
        details={"window_end_ms": now_ms},
    )


def rows_stored(conn: sqlite3.Connection, now_ms: int) -> CheckOutcome:
    (count,) = conn.execute("SELECT COUNT(*) FROM funding WHERE hour_ms <= ?", (now_ms,)).fetchone()
    return CheckOutcome(checked=count, problems=[] if count else [Problem("funding", None, "no hour stored")])


def rates_at_most_1bp(conn: sqlite3.Connection, now_ms: int) -> CheckOutcome:
    """Fails on real data on purpose (rates above a basis point are common): a red check after a
    green materialization."""
    rows = conn.execute(
        "SELECT coin, hour_ms, funding_rate FROM funding WHERE hour_ms <= ? ORDER BY hour_ms, coin", (now_ms,)
    ).fetchall()
    bad = [Problem(coin, hour, f"rate {rate} above 0.0001", rate) for coin, hour, rate in rows if abs(rate) > 1e-4]
    return CheckOutcome(checked=len(rows), problems=bad)


INVARIANT = QualityCheck(CANDLES, "test_low_above_high", "Low never above high.", low_above_high, blocking=True)
STORED = QualityCheck(FUNDING, "test_rows_stored", "Some hour is stored.", rows_stored)
TIGHT = QualityCheck(FUNDING, "test_rates_at_most_1bp", "Rates within 1bp.", rates_at_most_1bp, Severity.WARN)


def memory_at(tmp_path: Path) -> MarketMemory:
    db = tmp_path / "market.db"
    with open_memory(db):
        pass
    return MarketMemory(db_path=str(db))


def stored_results(memory: MarketMemory) -> dict[str, CheckResult]:
    with open_memory(memory.path, readonly=True) as conn:
        return {r.check_name: r for r in latest_results(conn)}


def values(metadata: Mapping[str, dg.MetadataValue]) -> dict[str, object]:
    return {key: value.value for key, value in metadata.items()}


def test_the_metadata_says_what_failed_and_where() -> None:
    outcome = CheckOutcome(
        checked=1_440,
        problems=[Problem("BTC", FAULT_MS, "low 101.5 above high 100.0", 101.5), Problem("ETH|x", None, "a|b")],
        failing=7,
        details={"window_sec": 86_400},
    )
    metadata = values(outcome_metadata(outcome))
    assert metadata["failing"] == 7 and metadata["checked"] == 1_440
    assert metadata["summary"] == f"failed: 7 of 1,440; first: BTC at {FAULT_MS}: low 101.5 above high 100.0"
    assert metadata["problems"] == [
        {"subject": "BTC", "at_ms": FAULT_MS, "what": "low 101.5 above high 100.0", "value": 101.5},
        {"subject": "ETH|x", "at_ms": None, "what": "a|b", "value": None},
    ]
    assert metadata["details"] == {"window_sec": 86_400}
    table = str(metadata["problems_table"]).splitlines()
    assert table[2] == f"| BTC | 2026-11-18 11:02:00 UTC | {FAULT_MS} | low 101.5 above high 100.0 | 101.5 |"
    assert table[3] == "| ETH\\|x | (whole) |  | a\\|b |  |"
    assert problems_table([]).count("\n") == 1


def test_a_passed_outcome_lists_no_problems() -> None:
    metadata = values(outcome_metadata(CheckOutcome(checked=3, problems=[])))
    assert metadata == {"failing": 0, "checked": 3, "summary": "passed: 3 checked", "problems": []}


def test_asset_checks_are_one_op_per_channel_each_check_on_its_asset() -> None:
    [on_candles, on_funding] = asset_checks([INVARIANT, STORED, TIGHT])
    assert on_candles.check_keys == {dg.AssetCheckKey(asset_key(CANDLES), "test_low_above_high")}
    assert on_funding.check_keys == {
        dg.AssetCheckKey(asset_key(FUNDING), "test_rows_stored"),
        dg.AssetCheckKey(asset_key(FUNDING), "test_rates_at_most_1bp"),
    }
    [spec] = on_candles.check_specs
    assert (spec.blocking, spec.description) == (True, "Low never above high.")
    with pytest.raises(ValueError, match="unique"):
        asset_checks([STORED, STORED])


def test_the_channel_job_selection_includes_the_checks_on_its_asset() -> None:
    """``AssetSelection.assets(key)`` (channel_job) takes the checks targeting ``key`` with it."""
    defs = dg.Definitions(
        assets=[candles, funding_asset],
        asset_checks=asset_checks([INVARIANT, STORED, TIGHT]),
        jobs=[channel_job(FUNDING)],
        resources={"memory": MarketMemory()},
    )
    job = defs.resolve_job_def(channel_job(FUNDING).name)
    assert job.asset_layer.asset_graph.asset_check_keys >= {STORED_KEY, TIGHT_KEY}
    assert {node.name for node in job.graph.nodes} == {"hyperliquid__funding", "hyperliquid_funding_checks"}


STORED_KEY = dg.AssetCheckKey(asset_key(FUNDING), "test_rows_stored")
TIGHT_KEY = dg.AssetCheckKey(asset_key(FUNDING), "test_rates_at_most_1bp")
ASSET_EVENTS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}


def test_a_scheduled_channel_job_evaluates_its_checks_after_the_materialization_and_records_them(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    defs = dg.Definitions(
        assets=[funding_asset],
        asset_checks=asset_checks([STORED, TIGHT], clock=lambda: NOW_MS + 10**12),
        jobs=[channel_job(FUNDING)],
        resources={"memory": offline},
    )
    result = defs.resolve_job_def(channel_job(FUNDING).name).execute_in_process(instance=instance)
    assert result.success
    events = [e.event_type for e in result.all_events if e.event_type in ASSET_EVENTS]
    assert events == [dg.DagsterEventType.ASSET_MATERIALIZATION, *[dg.DagsterEventType.ASSET_CHECK_EVALUATION] * 2]
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    stored, tight = evaluations["test_rows_stored"], evaluations["test_rates_at_most_1bp"]
    with open_memory(offline.path, readonly=True) as conn:
        expected_stored = rows_stored(conn, NOW_MS + 10**12)
        expected_tight = rates_at_most_1bp(conn, NOW_MS + 10**12)
    assert expected_stored.passed and expected_stored.checked > 0 and not expected_tight.passed
    assert (stored.passed, values(stored.metadata)) == (True, values(outcome_metadata(expected_stored)))
    assert (tight.passed, tight.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert values(tight.metadata) == values(outcome_metadata(expected_tight))
    assert tight.description == expected_tight.summary()
    assert tight.target_materialization_data is not None
    recorded = stored_results(offline)
    assert recorded["test_rates_at_most_1bp"] == CheckResult(
        "hyperliquid", "funding", "test_rates_at_most_1bp", False, False, "WARN", NOW_MS + 10**12,
        expected_tight.checked, expected_tight.failing, expected_tight.summary(),
        json.dumps([p.as_json() for p in expected_tight.problems]),
    )
    assert recorded["test_rows_stored"].passed


@pytest.fixture
def seeded(tmp_path: Path) -> MarketMemory:
    """A memory with a clean candle and, at FAULT_MS, one whose low is above its high."""
    memory = memory_at(tmp_path)
    seed_candle(memory.path, "BTC", FAULT_MS - MINUTE_MS, 100.0, 101.0, 99.0, 100.5)
    seed_candle(memory.path, "ETH", FAULT_MS, 100.0, 100.0, 101.5, 100.0)
    return memory


def sensor_tick(memory: MarketMemory, instance: dg.DagsterInstance) -> dg.SensorExecutionData:
    sensor = candle_checks_sensor([INVARIANT], clock=lambda: NOW_MS)
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"memory": memory}))


def test_the_candles_sensor_reports_a_failing_check_as_a_runless_evaluation_and_records_it(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    tick = sensor_tick(seeded, instance)
    assert tick.run_requests == []
    [evaluation] = tick.asset_events
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert (evaluation.asset_key, evaluation.check_name) == (asset_key(CANDLES), "test_low_above_high")
    assert (evaluation.passed, evaluation.severity, evaluation.blocking) == (False, dg.AssetCheckSeverity.ERROR, True)
    assert values(evaluation.metadata)["problems"] == [
        {"subject": "ETH", "at_ms": FAULT_MS, "what": "low 101.5 above high 100.0", "value": 101.5}
    ]
    assert values(evaluation.metadata)["checked"] == 2
    recorded = stored_results(seeded)["test_low_above_high"]
    assert (recorded.passed, recorded.failing, recorded.evaluated_at_ms) == (False, 1, NOW_MS)
    assert recorded.problems[0]["subject"] == "ETH" and recorded.problems[0]["at_ms"] == FAULT_MS

    # what the sensor daemon does with a tick's asset events (dagster/_daemon/sensor.py)
    for event in tick.asset_events:
        instance.report_runless_asset_event(event)
    key = dg.AssetCheckKey(asset_key(CANDLES), "test_low_above_high")
    stored = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert stored.event is not None and stored.event.asset_check_evaluation is not None
    assert stored.event.asset_check_evaluation.passed is False


def test_the_candles_sensor_passes_clean_candles(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    memory = memory_at(tmp_path)
    seed_candle(memory.path, "BTC", FAULT_MS, 100.0, 101.0, 99.0, 100.5)
    [evaluation] = sensor_tick(memory, instance).asset_events
    assert evaluation.passed and values(evaluation.metadata)["checked"] == 1
    assert stored_results(memory)["test_low_above_high"].passed


def test_before_the_streamer_made_a_memory_the_checks_sensor_skips_and_creates_nothing(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    db = tmp_path / "not-yet" / "market.db"
    tick = sensor_tick(MarketMemory(db_path=str(db)), instance)
    assert tick.asset_events == [] and f"no market memory at {db}" in (tick.skip_message or "")
    assert list(tmp_path.iterdir()) == []


def test_the_sensor_runs_on_the_candles_cadence() -> None:
    sensor = candle_checks_sensor([INVARIANT])
    assert (sensor.name, sensor.minimum_interval_seconds) == (SENSOR_NAME, CANDLES.expected_cadence_sec)
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    with pytest.raises(ValueError, match="candles only"):
        candle_checks_sensor([STORED])


def guarded_job(memory: MarketMemory, check: QualityCheck = INVARIANT) -> dg.JobDefinition:
    """Candles' checks and features in one run: Dagster orders features after the candle checks."""
    defs = dg.Definitions(
        assets=[candles, features_asset],
        asset_checks=asset_checks([check], clock=lambda: NOW_MS),
        jobs=[
            dg.define_asset_job(
                "guarded_features",
                selection=dg.AssetSelection.checks_for_assets(candles.key) | dg.AssetSelection.assets(features_asset),
            )
        ],
        resources={"memory": memory},
    )
    return defs.resolve_job_def("guarded_features")


def step_events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> set[str | None]:
    return {e.step_key for e in result.all_events if e.event_type is kind}


def test_a_failing_blocking_check_skips_what_depends_on_the_asset_in_the_same_run(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = guarded_job(seeded).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed) == ("test_low_above_high", False)
    assert step_events(result, dg.DagsterEventType.STEP_FAILURE) == {"hyperliquid_candles_checks"}
    assert step_events(result, dg.DagsterEventType.STEP_START) == {"hyperliquid_candles_checks"}  # features never starts
    assert result.get_asset_materialization_events() == []
    assert stored_results(seeded)["test_low_above_high"].passed is False


def test_a_passing_blocking_check_lets_what_depends_on_the_asset_run(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    memory = memory_at(tmp_path)
    seed_candle(memory.path, "BTC", FAULT_MS, 100.0, 101.0, 99.0, 100.5)
    result = guarded_job(memory).execute_in_process(instance=instance)
    assert result.success
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    [materialization] = result.get_asset_materialization_events()
    assert materialization.asset_key == asset_key(FEATURES)


def test_a_failing_check_that_does_not_block_lets_what_depends_on_the_asset_run(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    advisory = QualityCheck(CANDLES, "test_low_above_high", "Low never above high.", low_above_high, blocking=False)
    result = guarded_job(seeded, advisory).execute_in_process(instance=instance)
    assert result.success
    assert [e.passed for e in result.get_asset_check_evaluations()] == [False]
    [materialization] = result.get_asset_materialization_events()
    assert materialization.asset_key == asset_key(FEATURES)
