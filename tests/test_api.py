"""The health endpoint: 401 without a user, SPEC §4's document with one, identical to the CLI's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from typer.testing import CliRunner

from api import create_app
from market_assets import cli
from market_assets.health import encode_document, read_health
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.registry import CANDLES, FUNDING, REGISTRY
from market_assets.settings import Settings

from .api.server import free_port, served_api
from .conftest import FrozenClock

__all__ = ["free_port"]  # tests/test_monitor.py takes its free port from here

HEALTH = "/api/v1/ingestion/health"
USER = {"x-user-id": "ops-1"}


def test_health_requires_a_user_header(memory_path: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory_path))) as client:
        for headers in ({}, {"x-user-id": ""}, {"x-user-id": "  "}):
            response = client.get(HEALTH, headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/json")
            assert "x-user-id" in response.json()["detail"]


def test_health_returns_the_evaluation_at_the_injected_clock(memory_path: Path, clock: FrozenClock) -> None:
    with open_memory(memory_path, clock=clock) as conn:
        with Ledger(conn, clock).run(CANDLES) as run:
            run.add_rows(512)
        clock.advance(seconds=20)
        expected = encode_document(read_health(conn, clock.now_ms).document())
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        response = client.get(HEALTH, headers=USER)
    assert response.status_code == 200
    assert response.content == expected
    row = response.json()["rows"][0]
    assert (row["status"], row["ageSec"], row["rowsWritten"]) == ("ok", 20, 512)


def test_health_follows_the_ledger_between_requests_on_its_kept_connection(
    memory_path: Path, clock: FrozenClock
) -> None:
    """The API keeps its reader open across requests (api/readers.py): every answer must still be
    the memory as committed by another connection by then, judged at the clock of that request."""

    def candles(client: TestClient[Any]) -> tuple[bool, str, int | None, int | None]:
        response = client.get(HEALTH, headers=USER)
        assert response.status_code == 200
        document = response.json()
        row = next(r for r in document["rows"] if r["channel"] == CANDLES.name)
        return document["ok"], row["status"], row["ageSec"], row["rowsWritten"]

    stale_after = CANDLES.stale_after_sec
    with open_memory(memory_path, clock=clock) as writer:
        ledger = Ledger(writer, clock)
        with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
            assert candles(client) == (False, "missing", None, None)
            run = ledger.start(CANDLES)
            clock.advance(seconds=5)
            assert candles(client) == (False, "running", 5, 0)
            clock.advance(seconds=stale_after - 5 + 1)
            assert candles(client)[1:3] == ("stale", stale_after + 1)
            run.add_rows(512)
            run.succeed()
            assert candles(client)[1:] == ("ok", 0, 512)
            clock.advance(seconds=stale_after)
            assert candles(client)[1:3] == ("ok", stale_after)
            clock.advance(seconds=1)
            assert candles(client)[1:3] == ("stale", stale_after + 1)
            failing = ledger.start(CANDLES)
            failing.fail("HTTP 503 from the source")
            assert candles(client)[1:] == ("failed", 0, 0)


def test_health_schema_is_in_the_openapi_document(memory_path: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory_path))) as client:
        schema = client.get("/schema/openapi.json").json()
    row = schema["components"]["schemas"]["HealthRow"]["properties"]
    assert {"expectedCadenceSec", "staleAfterSec", "ageSec", "rowsWritten"} <= set(row)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``market api`` as a real server process on a loopback port."""
    db = tmp_path / "served.db"
    with served_api(db) as base:
        yield base, db


def cli_json(db: Path) -> bytes:
    """``market status --json`` run in this process: the console script's own command, minus the
    interpreter start-up that would put seconds (ageSec ticks) between two readings on a slow CI."""
    result = CliRunner().invoke(cli.app, ["--db", str(db), "status", "--json"], env={"MARKET_DB": None})
    assert result.exit_code == 0, result.output
    return result.stdout_bytes.rstrip(b"\n")


def test_real_server_answers_401_then_the_same_bytes_as_the_cli(served: tuple[str, Path]) -> None:
    base, db = served
    assert httpx.get(base + HEALTH).status_code == 401
    with open_memory(db) as conn:
        with Ledger(conn).run(FUNDING) as run:
            run.add_rows(3)
    # ageSec ticks each second: compare the API's body with CLI output taken on both sides of it
    # until both CLI readings agree (same second), then the API's must be identical.
    for _ in range(10):
        before = cli_json(db)
        response = httpx.get(base + HEALTH, headers=USER)
        after = cli_json(db)
        if before == after:
            break
    assert response.status_code == 200
    assert response.content == before == after
    document = json.loads(response.content)
    assert [r["status"] for r in document["rows"]] == [
        "ok" if c is FUNDING else "missing" for c in REGISTRY
    ]


def test_api_binds_to_loopback_by_default() -> None:
    assert Settings.from_env({}).api_host == "127.0.0.1"
