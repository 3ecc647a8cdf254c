"""The API reads the memory and never writes it: no memory at the path is a 503 with the reason,
and nothing is created in its place (SPEC §4, issue 14's readers never write)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from litestar.testing import TestClient

from api import create_app
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.registry import FUNDING
from market_assets.settings import Settings
from tests.conftest import FrozenClock

from .seeding import candles, listed

USER = {"x-user-id": "ops-1"}
READS = ("/api/v1/ingestion/health", "/api/v1/ingestion/dashboard", "/metrics", "/admin/ingestion", "/readyz")


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a digest of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_memory_at_the_path_answers_503_with_the_reason_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "a" / "market.db"
    with TestClient(create_app(Settings(db_path=path))) as client:
        answers = {url: client.get(url, headers=USER) for url in READS}
        heads = [client.head(url, headers=USER).status_code for url in READS]
        assert client.get("/livez").status_code == 200
    for url, response in answers.items():
        assert response.status_code == 503, url
        assert str(path) in response.text, url
        expected_type = "text/html; charset=utf-8" if url == "/admin/ingestion" else "application/json"
        assert response.headers["content-type"] == expected_type, url
    assert answers["/api/v1/ingestion/health"].json()["detail"] == answers["/metrics"].json()["detail"]
    assert heads == [503] * len(READS)
    assert list(tmp_path.iterdir()) == []


def test_the_api_started_before_any_writer_serves_once_the_memory_exists(memory_path: Path, clock: FrozenClock) -> None:
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        assert client.get("/api/v1/ingestion/health", headers=USER).status_code == 503
        assert not memory_path.parent.exists()
        with open_memory(memory_path, clock=clock) as conn, Ledger(conn, clock).run(FUNDING) as run:
            run.add_rows(4)
        health = client.get("/api/v1/ingestion/health", headers=USER)
        dashboard = client.get("/api/v1/ingestion/dashboard")
    assert health.status_code == dashboard.status_code == 200
    assert [r["rowsWritten"] for r in health.json()["rows"] if r["channel"] == FUNDING.name] == [4]


def test_serving_every_read_leaves_the_memory_file_as_it_was(memory_path: Path, clock: FrozenClock) -> None:
    with open_memory(memory_path, clock=clock) as conn:
        listed(conn, ["BTC"], clock.now_ms)
        candles(conn, "BTC", clock.now_ms - 60_000)
        with Ledger(conn, clock).run(FUNDING) as run:
            run.add_rows(1)
    before = tree(memory_path.parent)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        for _ in range(2):
            assert [client.get(url, headers=USER).status_code for url in READS] == [200] * len(READS)
            clock.advance(seconds=120)  # the second round recounts the volumes
    after = tree(memory_path.parent)
    assert after[memory_path.name] == before[memory_path.name]
    assert set(after) - set(before) <= {f"{memory_path.name}-wal", f"{memory_path.name}-shm"}  # SQLite's, for readers
    assert after.get(f"{memory_path.name}-wal", "") in ("", hashlib.sha256(b"").hexdigest())
