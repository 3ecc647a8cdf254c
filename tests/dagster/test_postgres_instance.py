"""Dagster on PostgreSQL: the project's ``dagster_home/postgres`` settings, installed as ``market up
--dagster-storage postgres`` installs them, keep runs, event logs and schedules in a real server,
on psycopg2; a second process with the same ``DAGSTER_HOME`` reads back what this one ran.
And the code location's ``MarketMemory`` takes a PostgreSQL memory as it takes a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickData, TickStatus

from market_assets.defs.resources import MarketMemory
from market_assets.instance_settings import (
    DAGSTER_POSTGRES_SCHEME,
    POSTGRES_URL_ENV,
    PROJECT_POSTGRES_YAML,
    DagsterStorage,
    install_instance_settings,
)
from market_assets.memory.target import PostgresUrl

READER = Path(__file__).with_name("postgres_instance_reader.py")
ROWS = dg.AssetKey(["market_test", "rows"])


@dg.asset(key=ROWS)
def rows() -> dg.MaterializeResult[None]:
    return dg.MaterializeResult(metadata={"dagster/row_count": 42, "rows_written": 42, "memory": "postgres"})


@dg.asset_check(asset=ROWS, blocking=True)
def rows_written() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"rows_seen": 42})


def dagster_url(url: PostgresUrl) -> str:
    """The test database's URL as Dagster's storage must be given it."""
    return f"{DAGSTER_POSTGRES_SCHEME}://{url.libpq.partition('://')[2]}"


def read_back(env: dict[str, str], *args: str) -> dict[str, object]:
    """The reader's JSON; it is stopped (SIGTERM, then SIGKILL) if it has not ended in time."""
    reader = subprocess.Popen([sys.executable, str(READER), *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        out, err = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.send_signal(signal.SIGTERM)
            try:
                reader.wait(timeout=10)
            except subprocess.TimeoutExpired:
                reader.kill()
                reader.wait()
    assert reader.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_a_run_on_a_postgres_instance_is_read_back_by_a_second_process(
    postgres_url: PostgresUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), POSTGRES_URL_ENV: dagster_url(postgres_url)}
    assert install_instance_settings(home, storage=DagsterStorage.POSTGRES, env=env) is True
    assert (home / "dagster.yaml").read_bytes() == PROJECT_POSTGRES_YAML.read_bytes()
    monkeypatch.setenv(POSTGRES_URL_ENV, env[POSTGRES_URL_ENV])

    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([rows, rows_written], instance=instance, tags={"market/group": "test"})
        assert result.success
        tick = instance.create_tick(TickData(  # what the daemon stores when a schedule launches a run
            instigator_origin_id="reader-test-origin", instigator_name="reader-test-schedule",
            instigator_type=InstigatorType.SCHEDULE, status=TickStatus.SUCCESS,
            timestamp=1_800_000_000.0, run_ids=[result.run_id], selector_id="reader-test-selector"))
        assert tick.tick_id > 0

    seen = read_back(env, result.run_id, "market_test/rows", "rows_written")

    assert seen == {
        "stores": ["PostgresRunStorage psycopg2", "PostgresEventLogStorage psycopg2", "PostgresScheduleStorage psycopg2"],
        "run": {"status": "SUCCESS", "job": "__ephemeral_asset_job__", "group": "test"},
        "materialization": {"run_id": result.run_id,
                            "metadata": {"dagster/row_count": 42, "rows_written": 42, "memory": "postgres"}},
        "check": {"run_id": result.run_id, "passed": True, "metadata": {"rows_seen": 42}},
        "ticks": [{"type": "SCHEDULE", "status": "SUCCESS", "run_ids": [result.run_id]}],
        "psycopg3_loaded": False,
    }


def test_the_code_locations_memory_is_a_postgres_url_from_market_db(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://market:s3cret@db.internal:5432/market"
    monkeypatch.setenv("MARKET_DB", url)
    memory = MarketMemory()
    assert memory.path == url
    assert isinstance(memory.path, PostgresUrl)
    assert memory.settings.db_path == url


def test_a_configured_memory_url_wins_over_market_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MARKET_DB", str(tmp_path / "market.db"))
    memory = MarketMemory(db_path="postgresql+psycopg://market@db.internal/market")
    assert isinstance(memory.path, PostgresUrl)
    assert memory.path.libpq == "postgresql://market@db.internal/market"
    assert MarketMemory().path == tmp_path / "market.db"
