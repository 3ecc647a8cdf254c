"""`market up --dagster-storage postgres`: Dagster's storage on PostgreSQL, chosen at the command line.

The stack itself is covered by tests/e2e/test_market_up.py, Dagster on PostgreSQL by
tests/dagster/test_postgres_instance.py; here, what the option decides before any process starts:
the psycopg2 driver trap refused with one line, the home left untouched (README "Running on
several machines")."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from market_assets.stack import free_port
from tests.conftest import MARKET


def _up(tmp_path: Path, home: Path, dagster_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MARKET_DB": str(tmp_path / "market.db"),
        "DAGSTER_HOME": str(home),
        "MARKET_DAGSTER_POSTGRES_URL": dagster_url,
    }
    argv = [str(MARKET), "up", "--offline", "--profile", "local", "--dagster-storage", "postgres",
            "--api-port", str(free_port()), "--dagster-port", str(free_port())]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_plain_postgresql_url_is_refused_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()

    result = _up(tmp_path, home, "postgresql://dagster:s3cret@127.0.0.1:1/dagster")

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("market up: ")
    assert "psycopg2" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert list(home.iterdir()) == []  # refused before installing a thing: the home is as it was
