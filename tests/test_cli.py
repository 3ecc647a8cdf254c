"""The installed ``market`` command, run as a subprocess the way an operator or a monitor runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from market_assets.clock import wall_clock_ms
from market_assets.ledger import Ledger
from market_assets.memory import connect, open_memory
from market_assets.memory.connection import close
from market_assets.registry import (
    CANDLES,
    DEFILLAMA_MACRO,
    FEATURES,
    FUNDING,
    MAINTENANCE,
    REGISTRY,
    Channel,
)

from .conftest import MARKET


def market(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MARKET_DB"}
    return subprocess.run(
        [str(MARKET), "--db", str(db), *args], check=False, capture_output=True, text=True, timeout=60, env=env
    )


def fresh(db: Path) -> Path:
    """A new, empty memory at ``db``, as ``market up`` or the first writer leaves it."""
    close(connect(db))
    return db


def record(db: Path, channel: Channel, *, finished_ago_sec: float | None, failed: bool = False, rows: int = 1) -> None:
    """A run of ``channel`` that finished ``finished_ago_sec`` ago (None: still running)."""
    now = wall_clock_ms()
    with open_memory(db) as conn:
        ledger = Ledger(conn, clock=lambda: now)
        if finished_ago_sec is None:
            ledger.start(channel)
            return
        finished = now - int(finished_ago_sec * 1000)
        run = ledger.start(channel, started_at_ms=finished - 2000)
        run.add_rows(rows)
        if failed:
            run.fail("HTTPStatusError: 503 from api.llama.fi", finished_at_ms=finished)
        else:
            run.succeed(finished_at_ms=finished)


def record_all_healthy(db: Path, *, but: tuple[Channel, ...] = ()) -> None:
    for channel in REGISTRY:
        if channel not in but:
            record(db, channel, finished_ago_sec=1)


def test_status_json_on_a_fresh_memory_shows_every_channel_missing(tmp_path: Path) -> None:
    result = market(fresh(tmp_path / "fresh.db"), "status", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [(r["source"], r["channel"], r["status"]) for r in document["rows"]] == [
        (c.source, c.name, "missing") for c in REGISTRY
    ]
    assert all(r["ageSec"] is None and r["rowsWritten"] is None for r in document["rows"])


def test_status_json_after_recorded_runs(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    recorded_at_ms = wall_clock_ms()
    record(db, CANDLES, finished_ago_sec=10, rows=512)
    record(db, FUNDING, finished_ago_sec=20, failed=True)
    record(db, FEATURES, finished_ago_sec=None)
    record(db, MAINTENANCE, finished_ago_sec=MAINTENANCE.stale_after_sec + 100)
    document = json.loads(market(db, "status", "--json").stdout)
    waited_sec = -(-(wall_clock_ms() - recorded_at_ms) // 1000)  # however slow the machine ran the CLI
    rows = {r["channel"]: r for r in document["rows"]}
    assert document["ok"] is False
    assert {name: r["status"] for name, r in rows.items()} == {
        "candles": "ok",
        "funding": "failed",
        "features": "running",
        "maintenance": "stale",
        "discovery": "missing",
        "summary": "missing",
        "macro": "missing",
    }
    assert rows["candles"]["rowsWritten"] == 512
    assert 10 <= rows["candles"]["ageSec"] <= 10 + waited_sec
    assert rows["maintenance"]["ageSec"] >= MAINTENANCE.stale_after_sec + 100


def test_check_exits_zero_only_when_every_channel_is_healthy(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    record_all_healthy(db)
    result = market(db, "check")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok:")
    assert json.loads(market(db, "status", "--json").stdout)["ok"] is True


def test_check_on_a_fresh_memory_names_each_missing_channel_a_setup_failure(tmp_path: Path) -> None:
    result = market(fresh(tmp_path / "fresh.db"), "check")
    assert result.returncode == 4
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(REGISTRY)
    assert all("missing: setup/configuration failure" in line for line in lines)
    assert lines[0].startswith("hyperliquid/candles: ") and "streamer" in lines[0]


def test_check_exits_3_for_stale_and_says_why(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    record_all_healthy(db, but=(DEFILLAMA_MACRO,))
    record(db, DEFILLAMA_MACRO, finished_ago_sec=DEFILLAMA_MACRO.stale_after_sec + 60)
    result = market(db, "check")
    assert result.returncode == 3
    [line] = result.stdout.strip().splitlines()
    assert line.startswith("defillama/macro: stale: last run finished")
    assert f"over its {DEFILLAMA_MACRO.stale_after_sec}s stale threshold" in line


def test_a_failed_channel_exits_5_and_is_listed_before_stale_ones(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    record_all_healthy(db, but=(MAINTENANCE, FUNDING))
    record(db, MAINTENANCE, finished_ago_sec=MAINTENANCE.stale_after_sec + 60)
    record(db, FUNDING, finished_ago_sec=5, failed=True)
    result = market(db, "check")
    assert result.returncode == 5
    lines = result.stdout.strip().splitlines()
    # 5 s ago when recorded; the command's start on a loaded machine may add a second or two.
    assert re.fullmatch(r"hyperliquid/funding: failed: latest run failed [5-9]s ago: HTTPStatusError: 503 from api\.llama\.fi", lines[0])
    assert lines[1].startswith("hyperliquid/maintenance: stale:")


def test_status_table_names_every_channel(tmp_path: Path) -> None:
    result = market(fresh(tmp_path / "m.db"), "status")
    assert result.returncode == 0
    for channel in REGISTRY:
        assert channel.name in result.stdout
    assert "setup/configuration failure" in result.stdout


@pytest.mark.parametrize("command", [("status",), ("status", "--json"), ("check",)])
def test_a_file_that_is_not_sqlite_is_one_line_of_error_and_exit_1(tmp_path: Path, command: tuple[str, ...]) -> None:
    db = tmp_path / "notes.db"
    db.write_text("not a database\n")
    result = market(db, *command)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"market: {db} is not a SQLite database; refusing to touch it"]
    assert db.read_text() == "not a database\n"


def test_an_unwritable_memory_path_is_one_line_of_error(tmp_path: Path) -> None:
    result = market(Path("/proc/self/market.db"), "hyperliquid", "features")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("market: cannot open the market memory /proc/self/market.db")


def test_market_db_environment_variable_picks_the_memory(tmp_path: Path) -> None:
    db = tmp_path / "from-env.db"
    env = {**os.environ, "MARKET_DB": str(db)}
    absent = subprocess.run([str(MARKET), "status", "--json"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert (absent.returncode, absent.stderr) == (1, f"market: no market memory at {db}\n")
    fresh(db)
    result = subprocess.run([str(MARKET), "status", "--json"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


def help_of(*command: str) -> str:
    result = subprocess.run(
        [str(MARKET), *command, "--help"], check=False, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


def test_market_replay_help_lists_the_replay_s_own_options() -> None:
    text = help_of("replay")
    for option in ("--http-port", "--ws-port", "--speed", "--start-ms", "--tick", "--seed", "--universe", "--no-weight-limit"):
        assert option in text


def help_in_process(*command: str) -> str:
    """``market ... --help`` through typer's runner: the same text, without a Python start per command."""
    from typer.testing import CliRunner

    from market_assets.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_each_command_s_help_says_what_it_does_today() -> None:
    """No help promises a later feature: `market api` serves the dashboard and the admin page now."""
    help_of = help_in_process
    api = help_of("api")
    assert "dashboard API" in api and "/admin/ingestion" in api and "/metrics" in api
    commands = [("status",), ("check",), ("checks",), ("monitor",), ("api",), ("up",), ("stream",), ("hyperliquid", "funding"),
                ("hyperliquid", "features"), ("hyperliquid", "maintain"), ("hyperliquid", "ohlcv"),
                ("polymarket", "discover"), ("polymarket", "summary"), ("defillama", "ingest")]
    for command in commands:
        assert "later" not in help_of(*command), command
    assert "write nothing anywhere" in help_of("defillama", "ingest")
