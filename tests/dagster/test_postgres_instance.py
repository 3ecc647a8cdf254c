"""Dagster on PostgreSQL: the project's ``dagster_home/postgres`` settings, installed as ``market up
--dagster-storage postgres`` installs them, keep runs, event logs and schedules in a real server,
on psycopg2; a second process with the same ``DAGSTER_HOME`` reads back what this one ran.
And the code location works on a PostgreSQL market memory: its ``MarketMemory`` takes the URL from
``MARKET_DB``, and a channel job run against the replay is read back, from another process, as the
memory's ledger recorded it (this one depends on the memory on PostgreSQL, helpers A/B's work)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickData, TickStatus

from market_assets.definitions import defs
from market_assets.defs.automation import job_name
from market_assets.defs.resources import MarketMemory
from market_assets.instance_settings import (
    DAGSTER_POSTGRES_SCHEME,
    POSTGRES_URL_ENV,
    PROJECT_POSTGRES_YAML,
    DagsterStorage,
    install_instance_settings,
)
from market_assets.memory import open_memory
from market_assets.memory.checks import latest_results
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.memory.target import PostgresUrl
from market_assets.registry import FUNDING
from market_assets.replay import ReplayServers
from market_assets.stack import prepare_dagster_home
from tests.postgres_server import PostgresServer

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
    monkeypatch.setenv(POSTGRES_URL_ENV, env[POSTGRES_URL_ENV])
    # as `market up --dagster-storage postgres` does: the settings, then `dagster instance migrate`
    assert prepare_dagster_home(home, storage=DagsterStorage.POSTGRES) is True
    assert (home / "dagster.yaml").read_bytes() == PROJECT_POSTGRES_YAML.read_bytes()
    with psycopg.connect(postgres_url.libpq) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        revisions = conn.execute("SELECT count(*) FROM alembic_version").fetchone()
    assert {"runs", "event_logs", "asset_keys", "jobs", "job_ticks", "instigators"} <= tables
    assert revisions == (1,)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([rows, rows_written], instance=instance, tags={"market/group": "test"})
        assert result.success
        tick = instance.create_tick(TickData(  # what the daemon stores when a schedule launches a run
            instigator_origin_id="reader-test-origin", instigator_name="reader-test-schedule",
            instigator_type=InstigatorType.SCHEDULE, status=TickStatus.SUCCESS,
            timestamp=1_800_000_000.0, run_ids=[result.run_id], selector_id="reader-test-selector"))
        assert tick.tick_id > 0

    seen = read_back(env, result.run_id, "market_test/rows", "rows_written")

    assert not list(home.rglob("*.db"))  # nothing of Dagster's went to SQLite
    assert seen == {
        "stores": ["PostgresRunStorage psycopg2", "PostgresEventLogStorage psycopg2", "PostgresScheduleStorage psycopg2"],
        "run": {"status": "SUCCESS", "job": "__ephemeral_asset_job__", "group": "test"},
        "materialization": {"run_id": result.run_id,
                            "metadata": {"dagster/row_count": 42, "rows_written": 42, "memory": "postgres"}},
        "check": {"run_id": result.run_id, "passed": True, "metadata": {"rows_seen": 42}},
        "ticks": [{"type": "SCHEDULE", "status": "SUCCESS", "run_ids": [result.run_id]}],
        "psycopg3_loaded": False,
    }


@pytest.fixture
def dagster_database(postgres_server: PostgresServer) -> Iterator[PostgresUrl]:
    """Dagster's own database, beside the memory's (``postgres_url``) on the same server."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


def test_a_channel_job_on_a_postgres_memory_and_instance_is_read_back_as_the_memory_recorded_it(
    postgres_url: PostgresUrl, dagster_database: PostgresUrl, replay: ReplayServers, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "dagster_home"
    env = {**os.environ, "DAGSTER_HOME": str(home), POSTGRES_URL_ENV: dagster_url(dagster_database)}
    install_instance_settings(home, storage=DagsterStorage.POSTGRES, env=env)
    for name, value in {POSTGRES_URL_ENV: env[POSTGRES_URL_ENV], "MARKET_DB": str(postgres_url), "MARKET_PROFILE": "local",
                        "MARKET_REPLAY_HTTP": replay.http_url, "MARKET_REPLAY_WS": replay.ws_url}.items():
        monkeypatch.setenv(name, value)

    with dg.DagsterInstance.from_config(str(home)) as instance:  # the code location's own MarketMemory()
        result = defs.resolve_job_def(job_name(FUNDING)).execute_in_process(instance=instance)
        assert result.success

    seen = read_back(env, result.run_id, "hyperliquid/funding", "hourly_continuity")

    with open_memory(postgres_url, readonly=True) as conn:
        [ledger] = runs_of(conn, FUNDING.source, FUNDING.name)
        [stored] = [r for r in latest_results(conn) if r.check_name == "hourly_continuity"]
    assert ledger.status is RunStatus.SUCCEEDED and ledger.rows_written > 0
    assert seen["run"] == {"status": "SUCCESS", "job": job_name(FUNDING), "group": FUNDING.source}
    materialization = seen["materialization"]
    assert isinstance(materialization, dict) and materialization["run_id"] == result.run_id
    assert {k: materialization["metadata"][k] for k in ("ledger_run_id", "rows_written", "dagster/row_count")} == {
        "ledger_run_id": ledger.run_id, "rows_written": ledger.rows_written, "dagster/row_count": ledger.rows_written}
    check = seen["check"]
    assert isinstance(check, dict) and check["run_id"] == result.run_id
    assert (check["passed"], check["metadata"]["checked"]) == (stored.passed, stored.checked)
    assert stored.passed and stored.checked > 0
    assert seen["stores"] == ["PostgresRunStorage psycopg2", "PostgresEventLogStorage psycopg2",
                              "PostgresScheduleStorage psycopg2"]


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
