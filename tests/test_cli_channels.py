"""SPEC §7 one-offs through the installed ``market``, offline: the asset's code and ledger run,
and dry runs that call the source and write nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from .conftest import MARKET


def market(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")}
    env["MARKET_PROFILE"] = "local"
    return subprocess.run(
        [str(MARKET), "--db", str(db), "--offline", *args], capture_output=True, text=True, timeout=120, env=env
    )


def ledger(db: Path) -> list[tuple[str, str, str, int]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT source, channel, status, rows_written FROM ingestion_runs ORDER BY run_id").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "command",
    [("defillama", "ingest"), ("polymarket", "discover", "--max-search-terms", "5"), ("hyperliquid", "funding")],
)
def test_a_dry_run_reports_rows_and_writes_nothing(tmp_path: Path, command: tuple[str, ...]) -> None:
    db = tmp_path / "market.db"
    result = market(db, *command, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would write" in result.stdout and "nothing written" in result.stdout
    assert int(result.stdout.split("would write ")[1].split()[0]) > 0
    assert not db.exists()


def test_a_dry_run_on_an_existing_memory_leaves_it_byte_identical(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    assert market(db, "polymarket", "discover").returncode == 0
    before = ledger(db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    snapshot = db.read_bytes()
    assert market(db, "polymarket", "summary", "--dry-run").returncode == 0
    assert ledger(db) == before
    assert db.read_bytes() == snapshot


def test_manual_commands_record_the_same_ledger_runs_as_the_schedule(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    for command in (("defillama", "ingest"), ("polymarket", "discover"), ("polymarket", "summary")):
        result = market(db, *command)
        assert result.returncode == 0, result.stderr
        assert "ledger run" in result.stdout
    runs = ledger(db)
    assert [(source, channel, status) for source, channel, status, _ in runs] == [
        ("defillama", "macro", "succeeded"),
        ("polymarket", "discovery", "succeeded"),
        ("polymarket", "summary", "succeeded"),
    ]
    assert all(rows > 0 for *_, rows in runs)


def test_market_offline_environment_variable_is_the_offline_flag(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")} | {"MARKET_OFFLINE": "1"}
    result = subprocess.run(
        [str(MARKET), "--db", str(tmp_path / "m.db"), "defillama", "ingest", "--dry-run"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "would write" in result.stdout


def test_market_replay_serves_the_recordings_until_interrupted() -> None:
    import json
    import signal

    import httpx

    replay = subprocess.Popen([str(MARKET), "replay"], stdout=subprocess.PIPE, text=True)
    try:
        urls = json.loads(replay.stdout.readline())
        answer = httpx.post(f"{urls['endpoints']['hyperliquid_api']}/info", json={"type": "metaAndAssetCtxs"}, timeout=10)
        assert answer.status_code == 200 and len(answer.json()[0]["universe"]) == 203
        assert urls["ws"].startswith("ws://127.0.0.1:")
    finally:
        replay.send_signal(signal.SIGINT)
        assert replay.wait(timeout=20) == 0
