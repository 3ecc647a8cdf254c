"""``market defillama ingest`` against a replay whose series fail: a partial run reports the
failed series and exits 0; a run whose every series failed prints one line, no traceback, and
exits ``EXIT_RUN_FAILED`` with the failure in the ledger."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from market_assets.cli import EXIT_RUN_FAILED
from market_assets.replay import HttpFault, HttpFaultKind, ReplayServers, ReplayThread

from .conftest import MARKET


@pytest.fixture
def replay() -> Iterator[ReplayServers]:
    with ReplayThread() as servers:
        yield servers


def ingest(db: Path, replay: ReplayServers) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}
    env |= {"MARKET_PROFILE": "local", "MARKET_REPLAY_HTTP": replay.http_url, "MARKET_REPLAY_WS": replay.ws_url}
    return subprocess.run(
        [str(MARKET), "--db", str(db), "defillama", "ingest"], capture_output=True, text=True, timeout=120, env=env
    )


def latest_run(db: Path) -> tuple[str, int, str | None, dict[str, object]]:
    conn = sqlite3.connect(db)
    try:
        status, rows, error, metadata = conn.execute(
            "SELECT status, rows_written, error, metadata FROM ingestion_runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return status, rows, error, json.loads(metadata)


def test_a_partial_run_names_the_failed_series_and_succeeds(tmp_path: Path, replay: ReplayServers) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path="/llama/overview/fees", status=422, times=None))
    result = ingest(tmp_path / "market.db", replay)
    assert result.returncode == 0, result.stderr
    assert "subject_errors" in result.stdout and "fees" in result.stdout
    status, rows, error, metadata = latest_run(tmp_path / "market.db")
    assert (status, error) == ("succeeded", None) and rows > 0
    assert list(metadata["subject_errors"]) == ["fees"]  # type: ignore[arg-type]


def test_every_series_failing_is_one_line_and_a_failed_run(tmp_path: Path, replay: ReplayServers) -> None:
    for path in ("/llama/", "/stablecoins/"):
        replay.plan.add_http(HttpFault(HttpFaultKind.STATUS, path=path, status=422, times=None))
    result = ingest(tmp_path / "market.db", replay)
    assert result.returncode == EXIT_RUN_FAILED
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "failed" in line]
    assert line.startswith("market: defillama/macro failed: defillama every series: all 5 failed: tvl/chains: ")
    status, rows, error, metadata = latest_run(tmp_path / "market.db")
    assert (status, rows) == ("failed", 0)
    assert error is not None and error.startswith("AllSubjectsFailed: defillama every series: all 5 failed")
    assert sorted(metadata["subject_errors"]) == sorted(  # type: ignore[arg-type]
        ["tvl/chains", "tvl/total", "stablecoin_supply", "dex_volume", "fees"]
    )
