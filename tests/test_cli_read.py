"""``market candles``, ``market features`` and ``market funding``: the installed command, run as a
subprocess on a seeded memory, prints (or writes) the rows the Python API returns for the same
arguments, value by value, and never writes the memory."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from market_assets.clock import wall_clock_ms
from market_assets.read import MarketReader
from tests.api.read_rows import csv_rows, python_rows
from tests.api.read_seeding import START_MS, Seeded, seed_read_memory

from .conftest import MARKET


def market(db: Path, *args: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")} | {"COLUMNS": str(columns)}
    return subprocess.run([str(MARKET), "--db", str(db), *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed_read_memory(tmp_path_factory.mktemp("cli-read") / "market.db")


@pytest.fixture(scope="module")
def reader(seeded: Seeded) -> Iterator[MarketReader]:
    with MarketReader(seeded.path) as opened:
        yield opened


def test_candles_to_a_pipe_are_csv_of_the_python_apis_bars(seeded: Seeded, reader: MarketReader) -> None:
    result = market(seeded.path, "candles", "ETH", "BTC", "--interval", "15m", "--since", "2026-11-16T06:00:00Z",
                    "--until", "2026-11-17T01:00:00Z")
    assert result.returncode == 0, result.stderr
    want = reader.candles(["ETH", "BTC"], "15m", "2026-11-16T06:00:00Z", "2026-11-17T01:00:00Z", output="arrow")
    assert want.num_rows > 100
    assert csv_rows(result.stdout, want.schema) == python_rows(want)


def test_as_of_with_the_forming_bar_and_verified_only(seeded: Seeded, reader: MarketReader) -> None:
    forming = market(seeded.path, "candles", "SOL", "--interval", "4h", "--since", "2026-11-16", "--as-of",
                     "2026-11-17T09:30:00Z", "--include-forming", "--format", "csv")
    want = reader.candles("SOL", "4h", "2026-11-16", as_of="2026-11-17T09:30:00Z", include_forming=True, output="arrow")
    assert csv_rows(forming.stdout, want.schema) == python_rows(want)
    assert python_rows(want)[-1]["complete"] is False  # the bar containing as_of, from the minutes closed by then

    verified = market(seeded.path, "candles", "BTC", "ETH", "--interval", "1h", "--since", "2026-11-15",
                      "--until", "2026-11-17", "--verified-only")
    want = reader.candles(["BTC", "ETH"], "1h", "2026-11-15", "2026-11-17", verified_only=True, output="arrow")
    rows = csv_rows(verified.stdout, want.schema)
    assert rows == python_rows(want) and rows and all(row["verified"] for row in rows)


def test_since_takes_a_duration_back_from_now(seeded: Seeded, reader: MarketReader) -> None:
    days = (wall_clock_ms() - START_MS) // 86_400_000 + 1  # back to before the first seeded minute
    result = market(seeded.path, "candles", "BTC", "--interval", "1d", "--since", f"{days}d")
    want = reader.candles("BTC", "1d", wall_clock_ms() - days * 86_400_000, output="arrow")
    assert want.num_rows >= 3
    assert csv_rows(result.stdout, want.schema) == python_rows(want)
    hours = market(seeded.path, "candles", "BTC", "--interval", "1h", "--since", f"{days * 24}h", "--until", f"{days * 24 - 5}h")
    assert len(csv_rows(hours.stdout, want.schema)) == 0  # five hours, long before the first minute


def test_features_and_funding_as_csv_and_parquet(seeded: Seeded, reader: MarketReader, tmp_path: Path) -> None:
    result = market(seeded.path, "features", "BTC", "SOL", "--since", "2026-11-17T20:00:00Z", "--column", "macd_hist",
                    "--column", "rsi_14", "--as-of", "2026-11-17T23:00:00Z")
    want = reader.features(["BTC", "SOL"], "2026-11-17T20:00:00Z", columns=["macd_hist", "rsi_14"],
                           as_of="2026-11-17T23:00:00Z", output="arrow")
    assert want.column_names == ["coin", "open_time", "close_time", "rsi_14", "macd_hist"] and want.num_rows > 300
    assert csv_rows(result.stdout, want.schema) == python_rows(want)

    path = tmp_path / "funding.parquet"
    written = market(seeded.path, "funding", "ETH", "SOL", "--since", "2026-11-15", "--output", str(path))
    assert written.returncode == 0 and written.stdout == ""
    want = reader.funding(["ETH", "SOL"], "2026-11-15", output="arrow")
    got = pq.read_table(path)
    assert got.schema.remove_metadata() == want.schema  # UTC timestamps, float64, bool: as the reader returns
    assert python_rows(got) == python_rows(want)
    assert f"wrote {want.num_rows} rows to {path}" in written.stderr

    csv_path = tmp_path / "bars.csv"
    assert market(seeded.path, "candles", "BTC", "--since", "2026-11-17", "-o", str(csv_path)).returncode == 0
    want = reader.candles("BTC", "1h", "2026-11-17", output="arrow")
    assert csv_rows(csv_path.read_text(), want.schema) == python_rows(want)


def test_a_table_shows_every_bar(seeded: Seeded, reader: MarketReader) -> None:
    result = market(seeded.path, "candles", "BTC", "--interval", "4h", "--since", "2026-11-16", "--until", "2026-11-17",
                    "--format", "table", columns=200)
    assert result.returncode == 0, result.stderr
    want = reader.candles("BTC", "4h", "2026-11-16", "2026-11-17")
    assert "BTC 4h candles: 6 rows, times UTC" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("│ BTC")]
    assert len(lines) == len(want) == 6
    for line, (_, bar) in zip(lines, want.iterrows(), strict=True):
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        assert cells[1] == bar["open_time"].strftime("%Y-%m-%d %H:%M:%S")
        assert [float(c) for c in cells[3:8]] == [bar[c] for c in ("open", "high", "low", "close", "volume")]
        assert (int(cells[8]), int(cells[9])) == (bar["trades"], bar["minutes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("candles", "BTC", "XYZ"), "market candles: coins: unknown coin 'XYZ'"),
        (("candles", "BTC", "--interval", "2m"), "market candles: interval: '2m' is not one of 1m, 3m,"),
        (("features", "BTC", "--column", "vwap"), "market features: columns: 'vwap' not among"),
        (("funding", "BTC", "--since", "2026-11-17", "--until", "2026-11-16"), "market funding: start: 2026-11-17T00:00:00Z is after end"),
        (("candles", "BTC", "--format", "parquet"), "market candles: --format parquet writes a file: give --output FILE"),
        (("candles", "BTC", "--format", "table", "-o", "x.txt"), "market candles: --format table is for a terminal"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(seeded: Seeded, args: tuple[str, ...], message: str) -> None:
    result = market(seeded.path, *args)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


def test_an_unreadable_time_is_a_usage_error(seeded: Seeded) -> None:
    result = market(seeded.path, "candles", "BTC", "--since", "2 days", columns=200)
    assert result.returncode == 2
    assert "'2 days' is neither a duration (90m, 12h, 2d, 1w) nor an ISO-8601 time" in result.stderr


@pytest.mark.parametrize("command", ["candles", "features", "funding"])
def test_no_memory_is_the_one_line_of_market_status_and_nothing_is_created(tmp_path: Path, command: str) -> None:
    path = tmp_path / "typo" / "market.db"
    result = market(path, command, "BTC", "--since", "2d")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"market: no market memory at {path}\n")
    assert list(tmp_path.iterdir()) == []


def test_reads_leave_the_memory_file_as_it_was(tmp_path: Path) -> None:
    seeded = seed_read_memory(tmp_path / "market.db")
    before = hashlib.sha256(seeded.path.read_bytes()).hexdigest()
    for args in (("candles", "BTC", "ETH", "--interval", "1m", "--since", "2026-11-15"),
                 ("features", "SOL", "--since", "2026-11-15"), ("funding", "BTC", "--since", "2026-11-15")):
        assert market(seeded.path, *args).returncode == 0
    assert hashlib.sha256(seeded.path.read_bytes()).hexdigest() == before
    assert datetime.fromtimestamp(seeded.now_ms / 1000, UTC) < datetime.now(UTC)  # the reads saw a finished past
