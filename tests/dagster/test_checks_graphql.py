"""Dagster's own GraphQL API, as the UI reads it, shows every asset's checks and their latest
results: the code location is loaded in-process (no gRPC server) and the candles checks sensor
is ticked the way the daemon ticks it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceRequestContext
from dagster_graphql.test.utils import execute_dagster_graphql, infer_repository

from market_assets.clock import wall_clock_ms
from market_assets.definitions import defs
from market_assets.defs.automation import asset_key, job_name
from market_assets.defs.hyperliquid.candle_checks import SENSOR_NAME
from market_assets.memory import open_memory
from market_assets.quality.catalog import checks_of
from market_assets.quality.outcome import utc_minute
from market_assets.registry import CANDLES, FEATURES, REGISTRY

MINUTE_MS = 60_000

CHECKS_OF_EVERY_ASSET = """
query {
  assetNodes {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name blocking canExecuteIndividually } }
    }
  }
}
"""

CHECKS_OF = """
query ($path: [String!]!) {
  assetNodes(assetKeys: [{path: $path}]) {
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          blocking
          description
          jobNames
          executionForLatestMaterialization {
            status
            runId
            evaluation {
              success
              severity
              description
              metadataEntries {
                label
                ... on JsonMetadataEntry { jsonString }
                ... on IntMetadataEntry { intValue }
                ... on TextMetadataEntry { text }
              }
            }
          }
        }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def workspace() -> Iterator[WorkspaceRequestContext]:
    """The code location as the webserver sees it, loaded once for the module."""
    origin = LoadableTargetOrigin(executable_path=sys.executable, module_name="market_assets.definitions", attribute="defs")
    with dg.instance_for_test() as instance, in_process_test_workspace(instance, origin) as context:
        yield context


def graphql(context: WorkspaceRequestContext, query: str, **variables: Any) -> dict[str, Any]:
    result = execute_dagster_graphql(context, query, variables or None)
    return dict(result.data)


def tick_as_the_daemon_does(context: WorkspaceRequestContext) -> None:
    """dagster/_daemon/sensor.py: the code location evaluates the sensor, the daemon reports
    each of the tick's asset events to the instance."""
    repository = infer_repository(context)
    location = context.get_code_location(repository.handle.location_name)
    tick = location.get_sensor_execution_data(context.instance, repository.handle, SENSOR_NAME, None, None, None, None, None)
    assert tick.asset_events, tick.skip_message
    for event in tick.asset_events:
        context.instance.report_runless_asset_event(event)


def test_every_asset_shows_its_catalog_checks_each_executable_alone(workspace: WorkspaceRequestContext) -> None:
    nodes = {tuple(n["assetKey"]["path"]): n["assetChecksOrError"] for n in graphql(workspace, CHECKS_OF_EVERY_ASSET)["assetNodes"]}
    for channel in REGISTRY:
        shown = nodes[tuple(asset_key(channel).path)]
        assert shown["__typename"] == "AssetChecks"
        assert {c["name"]: c["blocking"] for c in shown["checks"]} == {
            check.name: check.blocking for check in checks_of(channel)
        }, channel.key
        assert {c["canExecuteIndividually"] for c in shown["checks"]} <= {"CAN_EXECUTE"}


@pytest.fixture
def fault_ms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A memory (the code location's ``MarketMemory()`` reads ``MARKET_DB``) whose ETH candle of
    five minutes ago has its low above its high; returns that minute."""
    db = tmp_path / "market.db"
    monkeypatch.setenv("MARKET_DB", str(db))
    now = wall_clock_ms()
    minute = now - now % MINUTE_MS - 5 * MINUTE_MS
    with open_memory(db) as conn:
        conn.execute(
            """INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume,
                trades, closed, ingested_at_ms) VALUES ('ETH', '1m', ?, ?, 100.0, 100.0, 101.5, 100.0, 1.0, 1, 1, ?)""",
            (minute, minute + MINUTE_MS - 1, now),
        )
        conn.commit()
    return minute


def test_the_candle_checks_latest_results_after_a_seeded_fault(workspace: WorkspaceRequestContext, fault_ms: int) -> None:
    tick_as_the_daemon_does(workspace)
    # a streamer window reported after the evaluation (the windows sensor ticks every 30 s): the
    # UI keeps showing the evaluation as the latest materialization's, both being runless
    workspace.instance.report_runless_asset_event(dg.AssetMaterialization(asset_key(CANDLES)))

    [node] = graphql(workspace, CHECKS_OF, path=asset_key(CANDLES).path)["assetNodes"]
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    assert set(checks) == {check.name for check in checks_of(CANDLES)}
    invariants = checks["ohlc_invariants"]
    assert invariants["blocking"] is True and invariants["jobNames"] == ["__ASSET_JOB"]
    execution = invariants["executionForLatestMaterialization"]
    assert (execution["status"], execution["runId"]) == ("FAILED", "")  # runless: reported by the sensor
    evaluation = execution["evaluation"]
    assert (evaluation["success"], evaluation["severity"]) == (False, "ERROR")
    assert evaluation["description"] == f"failed: 1 of 1; first: ETH at {utc_minute(fault_ms)}: low 101.5 above high 100.0"
    entries = {e["label"]: e for e in evaluation["metadataEntries"]}
    assert entries["failing"]["intValue"] == 1 and entries["checked"]["intValue"] == 1
    assert json.loads(entries["problems"]["jsonString"]) == [
        {"subject": "ETH", "at_ms": fault_ms, "what": "low 101.5 above high 100.0", "value": 101.5}
    ]
    unique = checks["unique_minutes"]["executionForLatestMaterialization"]
    assert unique["status"] == "SUCCEEDED" and unique["evaluation"]["success"] is True


def test_a_scheduled_jobs_run_shows_its_checks_as_the_latest_materializations(
    workspace: WorkspaceRequestContext, fault_ms: int
) -> None:
    """features' job over the seeded memory: the check evaluated in the run is the one the UI
    shows for the materialization that run made."""
    result = defs.resolve_job_def(job_name(FEATURES)).execute_in_process(instance=workspace.instance)
    assert result.success
    [node] = graphql(workspace, CHECKS_OF, path=asset_key(FEATURES).path)["assetNodes"]
    [check] = node["assetChecksOrError"]["checks"]
    assert check["name"] == "features_match_talib"
    assert job_name(FEATURES) in check["jobNames"]
    execution = check["executionForLatestMaterialization"]
    assert (execution["status"], execution["runId"]) == ("SUCCEEDED", result.run_id)
    assert execution["evaluation"]["success"] is True
