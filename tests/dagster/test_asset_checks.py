"""The quality catalog as Dagster asset checks: on their assets, run after each scheduled
materialization, evaluated each minute for the streamed candles, and recorded in the memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import dagster as dg
import pytest

from market_assets.definitions import SCHEDULED, defs
from market_assets.defs.automation import asset_key, job_name
from market_assets.defs.checks import (
    asset_checks,
    checks_op_name,
    outcome_metadata,
    problems_table,
)
from market_assets.defs.hyperliquid.candle_checks import (
    SENSOR_NAME,
    candle_checks_sensor,
)
from market_assets.defs.hyperliquid.candles import candles
from market_assets.defs.hyperliquid.derived import features_asset
from market_assets.defs.resources import MarketMemory
from market_assets.memory import open_memory
from market_assets.memory.checks import CheckResult, latest_results
from market_assets.quality.catalog import CHECKS, checks_of, result_of
from market_assets.quality.outcome import (
    CheckOutcome,
    Problem,
    QualityCheck,
    utc_minute,
)
from market_assets.registry import CANDLES, FEATURES, FUNDING, REGISTRY

MINUTE_MS = 60_000
NOW_MS = 1_795_000_040_000
"""The injected clock: 20 s into a minute."""
FAULT_MS = NOW_MS - 20_000 - 5 * MINUTE_MS
FAULT = {"subject": "ETH", "at_ms": FAULT_MS, "what": "low 101.5 above high 100.0", "value": 101.5}
"""What ``ohlc_invariants`` says of the seeded candle whose low is above its high."""

CHECK_NAMES = {
    "hyperliquid/candles": {"ohlc_invariants", "unique_minutes", "continuity", "universe_coverage", "verified_minutes"},
    "hyperliquid/maintenance": {"rollups_match_minutes"},
    "hyperliquid/features": {"features_match_talib"},
    "hyperliquid/funding": {"hourly_continuity", "rate_bound", "settled_hours_unchanged"},
    "polymarket/summary": {"prices_in_range", "outcomes_match_prices", "binary_prices_sum_to_one"},
    "polymarket/discovery": {"tracked_markets_summarized"},
    "defillama/macro": {"no_zero_volumes_or_fees", "stablecoin_supply_per_peg", "tvl_jumps"},
}
"""The fixed names (issue 16) the dashboard, metrics and README rely on."""


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One instance for the module (each costs 1-3 s to make): every assertion reads its own
    run's result or the latest evaluation just reported."""
    with dg.instance_for_test() as shared:
        yield shared


def memory_at(tmp_path: Path) -> MarketMemory:
    db = tmp_path / "market.db"
    with open_memory(db):
        pass
    return MarketMemory(db_path=str(db))


def seed_candle(memory: MarketMemory, coin: str, open_ms: int, o: float, h: float, lo: float, c: float) -> None:
    """A closed 1m candle written straight into the table, as a faulty writer would."""
    with open_memory(memory.path) as conn:
        conn.execute(
            """INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume,
                trades, closed, ingested_at_ms) VALUES (?, '1m', ?, ?, ?, ?, ?, ?, 1.0, 1, 1, ?)""",
            (coin, open_ms, open_ms + MINUTE_MS - 1, o, h, lo, c, NOW_MS),
        )
        conn.commit()


@pytest.fixture
def clean(tmp_path: Path) -> MarketMemory:
    memory = memory_at(tmp_path)
    seed_candle(memory, "BTC", FAULT_MS - MINUTE_MS, 100.0, 101.0, 99.0, 100.5)
    return memory


@pytest.fixture
def seeded(clean: MarketMemory) -> MarketMemory:
    """The clean memory plus, at FAULT_MS, an ETH candle whose low is above its high."""
    seed_candle(clean, "ETH", FAULT_MS, 100.0, 100.0, 101.5, 100.0)
    return clean


def stored_results(memory: MarketMemory) -> dict[str, CheckResult]:
    with open_memory(memory.path, readonly=True) as conn:
        return {r.check_name: r for r in latest_results(conn)}


def values(metadata: Mapping[str, dg.MetadataValue]) -> dict[str, object]:
    return {key: value.value for key, value in metadata.items()}


def named(name: str, channel_checks: tuple[QualityCheck, ...]) -> QualityCheck:
    [check] = [c for c in channel_checks if c.name == name]
    return check


# -- the metadata ------------------------------------------------------------------------------


def test_the_metadata_says_what_failed_and_where() -> None:
    outcome = CheckOutcome(
        checked=1_440,
        problems=[Problem("ETH", FAULT_MS, "low 101.5 above high 100.0", 101.5), Problem("A|B", None, "x|y")],
        failing=7,
        details={"window_sec": 86_400},
    )
    metadata = values(outcome_metadata(outcome))
    assert metadata["failing"] == 7 and metadata["checked"] == 1_440
    assert metadata["summary"] == f"failed: 7 of 1,440; first: ETH at {utc_minute(FAULT_MS)}: low 101.5 above high 100.0"
    assert metadata["problems"] == [FAULT, {"subject": "A|B", "at_ms": None, "what": "x|y", "value": None}]
    assert metadata["details"] == {"window_sec": 86_400}
    table = str(metadata["problems_table"]).splitlines()
    assert table[2] == f"| ETH | 2026-11-18 11:02:00 UTC | {FAULT_MS} | low 101.5 above high 100.0 | 101.5 |"
    assert table[3] == "| A\\|B | (whole) |  | x\\|y |  |"
    assert problems_table([]).count("\n") == 1


def test_a_passed_outcome_lists_no_problems() -> None:
    metadata = values(outcome_metadata(CheckOutcome(checked=3, problems=[])))
    assert metadata == {"failing": 0, "checked": 3, "summary": "passed: 3 checked", "problems": []}


# -- on their assets, in the channel jobs ------------------------------------------------------


def test_every_channel_asset_shows_the_catalogs_checks_by_their_fixed_names() -> None:
    graph = defs.resolve_asset_graph()
    for channel in REGISTRY:
        on_asset = {key.name for key in graph.asset_check_keys if key.asset_key == asset_key(channel)}
        assert on_asset == {check.name for check in checks_of(channel)} == CHECK_NAMES[channel.key], channel.key
    blocking = {key.name for key in graph.asset_check_keys if graph.get(key).blocking}
    assert blocking == {"ohlc_invariants"}
    assert len(graph.asset_check_keys) == len(CHECKS)


def test_asset_checks_are_one_op_per_channel() -> None:
    built = asset_checks(CHECKS)
    assert [next(iter(d.check_keys)).asset_key for d in built] == [
        asset_key(channel) for channel in dict.fromkeys(check.channel for check in CHECKS)
    ]
    [on_candles] = [d for d in built if d.node_def.name == checks_op_name(CANDLES)]
    assert {spec.name: spec.description for spec in on_candles.check_specs} == {
        check.name: check.description for check in checks_of(CANDLES)
    }
    with pytest.raises(ValueError, match="unique"):
        asset_checks([*checks_of(FUNDING), *checks_of(FUNDING)])


def test_each_channel_job_runs_its_assets_checks_and_nothing_else() -> None:
    """``AssetSelection.assets(key)`` (automation.channel_job) takes the checks targeting ``key``."""
    for channel in SCHEDULED:
        job = defs.resolve_job_def(job_name(channel))
        assert {key.name for key in job.asset_layer.asset_graph.asset_check_keys} == {c.name for c in checks_of(channel)}
        ops = {node.name for node in job.graph.nodes}
        assert ops == {"__".join(asset_key(channel).path)} | ({checks_op_name(channel)} if checks_of(channel) else set())


def test_a_scheduled_materialization_is_followed_by_its_checks_which_the_memory_records(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = defs.resolve_job_def(job_name(FUNDING)).execute_in_process(instance=instance, resources={"memory": offline})
    assert result.success
    kinds = [e.event_type for e in result.all_events if e.event_type in ASSET_EVENTS]
    assert kinds == [dg.DagsterEventType.ASSET_MATERIALIZATION] + [dg.DagsterEventType.ASSET_CHECK_EVALUATION] * 3
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == CHECK_NAMES["hyperliquid/funding"]
    recorded = stored_results(offline)
    with open_memory(offline.path, readonly=True) as conn:
        for check in checks_of(FUNDING):
            evaluation, row = evaluations[check.name], recorded[check.name]
            again = check.evaluate(conn, row.evaluated_at_ms)  # the run's outcome, at the run's clock
            assert row == result_of(check, again, row.evaluated_at_ms)
            assert (evaluation.passed, evaluation.description) == (again.passed, again.summary())
            assert values(evaluation.metadata) == values(outcome_metadata(again))
            assert evaluation.target_materialization_data is not None
            assert evaluation.target_materialization_data.run_id == result.run_id


ASSET_EVENTS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}


# -- the candles sensor ------------------------------------------------------------------------


def sensor_tick(memory: MarketMemory, instance: dg.DagsterInstance) -> dg.SensorExecutionData:
    sensor = candle_checks_sensor(checks_of(CANDLES), clock=lambda: NOW_MS)
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, resources={"memory": memory}))


def test_the_candles_sensor_reports_a_broken_candle_as_a_failed_runless_evaluation_and_records_it(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    tick = sensor_tick(seeded, instance)
    assert tick.run_requests == []
    evaluations = {e.check_name: e for e in tick.asset_events if isinstance(e, dg.AssetCheckEvaluation)}
    assert set(evaluations) == CHECK_NAMES["hyperliquid/candles"] and len(tick.asset_events) == 5
    invariants = evaluations["ohlc_invariants"]
    assert invariants.asset_key == asset_key(CANDLES)
    assert (invariants.passed, invariants.severity, invariants.blocking) == (False, dg.AssetCheckSeverity.ERROR, True)
    metadata = values(invariants.metadata)
    assert (metadata["problems"], metadata["failing"], metadata["checked"]) == ([FAULT], 1, 2)
    assert "| ETH | 2026-11-18 11:02:00 UTC |" in str(metadata["problems_table"])
    recorded = stored_results(seeded)
    assert set(recorded) == CHECK_NAMES["hyperliquid/candles"]
    assert (recorded["ohlc_invariants"].passed, recorded["ohlc_invariants"].evaluated_at_ms) == (False, NOW_MS)
    assert recorded["ohlc_invariants"].problems == [FAULT]

    # what the sensor daemon does with a tick's asset events (dagster/_daemon/sensor.py)
    for event in tick.asset_events:
        instance.report_runless_asset_event(event)
    key = dg.AssetCheckKey(asset_key(CANDLES), "ohlc_invariants")
    stored = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    assert stored.event is not None and stored.event.asset_check_evaluation is not None
    assert stored.event.asset_check_evaluation.passed is False
    assert values(stored.event.asset_check_evaluation.metadata)["problems"] == [FAULT]


def test_the_candles_sensor_passes_clean_candles(clean: MarketMemory, instance: dg.DagsterInstance) -> None:
    evaluations = {e.check_name: e for e in sensor_tick(clean, instance).asset_events if isinstance(e, dg.AssetCheckEvaluation)}
    assert evaluations["ohlc_invariants"].passed and values(evaluations["ohlc_invariants"].metadata)["checked"] == 1
    assert stored_results(clean)["ohlc_invariants"].passed


def test_before_the_streamer_made_a_memory_the_checks_sensor_skips_and_creates_nothing(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    db = tmp_path / "not-yet" / "market.db"
    tick = sensor_tick(MarketMemory(db_path=str(db)), instance)
    assert tick.asset_events == [] and f"no market memory at {db}" in (tick.skip_message or "")
    assert list(tmp_path.iterdir()) == []


def test_the_code_location_runs_the_sensor_on_the_candles_cadence() -> None:
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.minimum_interval_seconds == CANDLES.expected_cadence_sec
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING
    with pytest.raises(ValueError, match="candles only"):
        candle_checks_sensor(checks_of(FUNDING))


# -- executable as a run, and blocking -----------------------------------------------------------


def test_the_candle_checks_run_from_the_ui_as_a_run_of_the_external_asset(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    """The UI's "Execute" on a check launches the implicit asset job with only that check."""
    key = dg.AssetCheckKey(asset_key(CANDLES), "unique_minutes")
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(), asset_check_selection={key})
    result = job.execute_in_process(instance=instance, resources={"memory": seeded})
    assert result.success
    assert [(e.check_name, e.passed) for e in result.get_asset_check_evaluations()] == [("unique_minutes", True)]
    assert set(stored_results(seeded)) == {"unique_minutes"}


def guarded_job(memory: MarketMemory, checks: list[QualityCheck]) -> dg.JobDefinition:
    """Candles' checks and features in one run: Dagster orders features after the candle checks."""
    guarded = dg.Definitions(
        assets=[candles, features_asset],
        asset_checks=asset_checks(checks, clock=lambda: NOW_MS),
        jobs=[
            dg.define_asset_job(
                "guarded_features",
                selection=dg.AssetSelection.checks_for_assets(candles.key) | dg.AssetSelection.assets(features_asset),
            )
        ],
        resources={"memory": memory},
    )
    return guarded.resolve_job_def("guarded_features")


def step_events(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> set[str | None]:
    return {e.step_key for e in result.all_events if e.event_type is kind}


def test_a_failing_blocking_check_keeps_what_depends_on_the_asset_from_running(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    result = guarded_job(seeded, list(checks_of(CANDLES))).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"ohlc_invariants"}
    assert step_events(result, dg.DagsterEventType.STEP_FAILURE) == {checks_op_name(CANDLES)}
    assert step_events(result, dg.DagsterEventType.STEP_START) == {checks_op_name(CANDLES)}  # features never starts
    assert result.get_asset_materialization_events() == []
    assert stored_results(seeded)["ohlc_invariants"].problems == [FAULT]


def test_a_passing_blocking_check_lets_what_depends_on_the_asset_run(
    clean: MarketMemory, instance: dg.DagsterInstance
) -> None:
    invariants = named("ohlc_invariants", checks_of(CANDLES))
    result = guarded_job(clean, [invariants]).execute_in_process(instance=instance)
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    [materialization] = result.get_asset_materialization_events()
    assert materialization.asset_key == asset_key(FEATURES)


def test_the_same_failure_from_a_check_that_does_not_block_lets_it_run(
    seeded: MarketMemory, instance: dg.DagsterInstance
) -> None:
    invariants = named("ohlc_invariants", checks_of(CANDLES))
    advisory = QualityCheck(CANDLES, invariants.name, invariants.description, invariants.evaluate, blocking=False)
    result = guarded_job(seeded, [advisory]).execute_in_process(instance=instance)
    assert [e.passed for e in result.get_asset_check_evaluations()] == [False]
    [materialization] = result.get_asset_materialization_events()
    assert materialization.asset_key == asset_key(FEATURES)

