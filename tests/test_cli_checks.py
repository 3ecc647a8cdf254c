"""``market checks``: every asset check of the catalog evaluated against the memory now, its results
recorded (as a Dagster check run records them), a table or JSON printed, exit 1 when a blocking
check fails; and the recorded results reaching ``market check`` and ``market status``.

The command runs in process through typer's runner (a ``market`` subprocess costs ~2 s to start on
the shared machine), at the wall clock; the memory is seeded relative to it. The missing-memory
case runs the installed command, whose ``main`` turns the error into one line.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner, Result

from market_assets.cli import app
from market_assets.clock import wall_clock_ms
from market_assets.ledger import Ledger
from market_assets.memory import open_memory
from market_assets.memory.checks import CheckResult, latest_results, record_results
from market_assets.memory.hyperliquid import UniverseRow, upsert_universe
from market_assets.quality.catalog import CHECKS, checks_of
from market_assets.registry import CANDLES, REGISTRY
from tests.market_data import MINUTE_MS, random_walk, series, store

from .conftest import MARKET

COINS = ("BTC", "ETH", "SOL")
CANDLE_CHECKS = [c.name for c in checks_of(CANDLES)]


def market(db: Path, *args: str) -> Result:
    """``market --db DB ARGS…`` in process; the environment it sets (DAGSTER_HOME) is restored after."""
    env: dict[str, str | None] = {"MARKET_DB": None, "COLUMNS": "250", "DAGSTER_HOME": os.environ.get("DAGSTER_HOME")}
    return CliRunner().invoke(app, ["--db", str(db), *args], env=env)


def seeded(db: Path, minutes: int = 90) -> int:
    """Clean confirmed candles of ``COINS`` up to the last closed minute (the current one forming),
    the coins listed, and a healthy run of every channel; the current minute's open time."""
    now = wall_clock_ms()
    forming = now - now % MINUTE_MS
    with open_memory(db) as conn:
        for i, coin in enumerate(COINS):
            closes = random_walk(i + 1, minutes + 1, 100.0 * (i + 1))
            rows = [r._replace(confirmed=True) for r in series(coin, forming - minutes * MINUTE_MS, closes[:-1], seed=i)]
            rows += [r._replace(closed=False) for r in series(coin, forming, closes[-1:], seed=i)]
            store(conn, rows, now)
        upsert_universe(conn, [UniverseRow(coin, "", i, 2, 20, False) for i, coin in enumerate(COINS)], now)
        for channel in REGISTRY:
            with Ledger(conn).run(channel) as run:
                run.add_rows(1)
    return forming


def low_above_high(db: Path, coin: str, open_ms: int) -> tuple[float, float]:
    """A candle a bug or a manual write left with its low above its high (the stream refuses one)."""
    with open_memory(db) as conn:
        conn.execute("UPDATE candles SET low = high + 1 WHERE coin = ? AND interval = '1m' AND open_time_ms = ?", (coin, open_ms))
        conn.commit()
        low, high = conn.execute("SELECT low, high FROM candles WHERE coin = ? AND open_time_ms = ?", (coin, open_ms)).fetchone()
    return low, high


def stored(db: Path) -> dict[str, bool]:
    with open_memory(db, readonly=True) as conn:
        return {f"{r.source}/{r.channel}:{r.check_name}": r.passed for r in latest_results(conn)}


def test_the_candle_checks_pass_on_clean_candles_and_are_recorded(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    seeded(db)
    result = market(db, "checks", "--channel", "hyperliquid/candles")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert sum("passed" in line for line in lines[:-1]) == len(CANDLE_CHECKS)
    assert lines[-1] == f"{len(CANDLE_CHECKS)} checks: {len(CANDLE_CHECKS)} passed, 0 failed (0 blocking); results recorded"
    assert stored(db) == {f"hyperliquid/candles:{name}": True for name in CANDLE_CHECKS}


def test_a_low_above_high_fails_the_blocking_check_exits_1_and_names_coin_minute_and_value(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    forming = seeded(db)
    bad = forming - 30 * MINUTE_MS
    low, high = low_above_high(db, "ETH", bad)

    result = market(db, "checks", "--json", "--channel", "hyperliquid/candles")

    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is False
    outcomes = {o["check"]: o for o in document["checks"]}
    assert sorted(outcomes) == sorted(CANDLE_CHECKS)
    ohlc = outcomes["ohlc_invariants"]
    assert (ohlc["blocking"], ohlc["severity"], ohlc["passed"], ohlc["failing"]) == (True, "ERROR", False, 1)
    assert ohlc["problems"] == [{"subject": "ETH", "atMs": bad, "what": f"low {low!r} above high {high!r}", "value": low}]
    assert all(o["passed"] for name, o in outcomes.items() if name != "ohlc_invariants")
    assert stored(db)["hyperliquid/candles:ohlc_invariants"] is False


def test_a_recorded_blocking_failure_makes_market_check_exit_5_and_status_show_it(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    forming = seeded(db)
    bad = forming - 30 * MINUTE_MS
    low, high = low_above_high(db, "ETH", bad)
    table = market(db, "checks")
    assert table.exit_code == 1
    minute = datetime.fromtimestamp(bad / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    row = next(line for line in table.stdout.splitlines() if "ohlc_invariants" in line)
    assert "failed" in row and f"ETH at {minute}: low {low!r} above high {high!r}" in row

    check = market(db, "check")
    assert check.exit_code == 5
    assert check.stdout.splitlines() == [
        (
            f"hyperliquid/candles: failed: blocking check ohlc_invariants failed: 1 of {3 * 90:,}; "
            f"first: ETH at {minute}: low {low!r} above high {high!r}"
        )
    ]
    status = market(db, "status")
    candles_row = next(line for line in status.stdout.splitlines() if "candles" in line)
    assert "failed" in candles_row and "ohlc_invariants (blocking)" in candles_row
    assert "overall: not ok" in status.stdout
    assert json.loads(market(db, "status", "--json").stdout)["rows"][0]["status"] == "failed"

    with open_memory(db) as conn:  # repaired (as candles_history's final candle would)
        conn.execute("UPDATE candles SET low = high - 1 WHERE coin = 'ETH' AND open_time_ms = ?", (bad,))
        conn.commit()
    assert market(db, "checks").exit_code == 0
    assert market(db, "check").exit_code == 0


def test_every_check_of_the_catalog_is_evaluated_without_a_channel(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    seeded(db)
    result = market(db, "checks", "--json")
    document = json.loads(result.stdout)
    assert [(o["source"], o["channel"], o["check"]) for o in document["checks"]] == [
        (c.channel.source, c.channel.name, c.name) for c in CHECKS
    ]
    assert set(stored(db)) == {c.key for c in CHECKS}
    assert result.exit_code == (0 if document["ok"] else 1)


def test_an_unknown_channel_is_a_usage_error_naming_the_channels(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    seeded(db, minutes=5)
    result = market(db, "checks", "--channel", "hyperliquid/candle")
    assert result.exit_code == 2
    assert result.stderr.startswith("market checks: no channel 'hyperliquid/candle'; the channels are hyperliquid/candles, ")
    assert stored(db) == {}


def test_checks_on_a_path_without_a_memory_create_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MARKET_DB"}
    command = [str(MARKET), "--db", str(tmp_path / "absent" / "market.db"), "checks"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert (result.returncode, result.stderr) == (1, f"market: no market memory at {tmp_path}/absent/market.db\n")
    assert list(tmp_path.iterdir()) == []



def test_a_retired_checks_failing_result_is_dropped_when_the_checks_are_recorded(tmp_path: Path) -> None:
    """A blocking check renamed or removed while its last result failed no longer pins its channel."""
    db = tmp_path / "market.db"
    seeded(db)
    with open_memory(db) as conn:
        record_results(conn, [CheckResult(CANDLES.source, CANDLES.name, "ohlc_sanity", False, True, "ERROR", wall_clock_ms(), 9, 1,
                                          "failed: 1 of 9; first: BTC: an old check's finding")])
    assert market(db, "check").exit_code == 5
    assert market(db, "checks", "--channel", "hyperliquid/candles").exit_code == 0
    assert "hyperliquid/candles:ohlc_sanity" not in stored(db)
    assert market(db, "check").exit_code == 0
