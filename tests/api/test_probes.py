"""/livez checks the process only; /readyz checks the memory and the registry's tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from litestar.testing import TestClient

from api import create_app
from market_assets.memory import connect
from market_assets.memory.connection import close
from market_assets.settings import Settings


def probe(path: Path, url: str) -> tuple[int, dict[str, str]]:
    with TestClient(create_app(Settings(db_path=path))) as client:
        response = client.get(url)
    return response.status_code, response.json()


def test_a_ready_memory_answers_200_on_both_probes(memory_path: Path) -> None:
    close(connect(memory_path))
    assert probe(memory_path, "/livez") == (200, {"status": "ok", "detail": ""})
    assert probe(memory_path, "/readyz") == (200, {"status": "ok", "detail": ""})


def test_readyz_is_503_on_a_file_that_is_not_a_memory_which_it_leaves_untouched(tmp_path: Path) -> None:
    path = tmp_path / "market.db"
    path.write_bytes(b"not a database at all")
    status, body = probe(path, "/readyz")
    assert (status, body["status"]) == (503, "unavailable")
    assert "is not a SQLite database" in body["detail"]
    assert path.read_bytes() == b"not a database at all"
    assert probe(path, "/livez")[0] == 200  # liveness does not depend on the memory


def test_readyz_is_503_without_a_memory_and_creates_none(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "market.db"
    status, body = probe(path, "/readyz")
    assert (status, body["status"]) == (503, "unavailable")
    assert "no market memory" in body["detail"]
    assert not path.exists()


def test_readyz_is_503_when_a_registered_table_is_gone(memory_path: Path) -> None:
    close(connect(memory_path))
    raw = sqlite3.connect(memory_path)
    raw.execute("DROP TABLE defillama_series")
    raw.commit()
    raw.close()
    status, body = probe(memory_path, "/readyz")
    assert (status, body["detail"]) == (503, "tables missing from the memory: defillama_series")
    remaining = sqlite3.connect(memory_path).execute("SELECT count(*) FROM sqlite_master WHERE name = 'candles'").fetchone()
    assert remaining == (1,)
