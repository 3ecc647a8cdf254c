"""Readers never write (issue 14): the CLI's readers and every dry run leave the disk as they found
it, whether there is no memory at all, an idle one, or one a writer process is attached to."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from market_assets.ledger import Ledger
from market_assets.memory import MemoryMissingError, connect, open_memory
from market_assets.memory.connection import close
from market_assets.memory.readiness import table_names
from market_assets.memory.target import PostgresUrl
from market_assets.memory.weight import POSTGRES_LEDGER_NAME
from market_assets.quality.catalog import CHECKS
from market_assets.registry import REGISTRY

from .conftest import MARKET
from .test_ledger_contention import worker

DRY_RUNS = [
    ("defillama", "ingest", "--dry-run"),
    ("polymarket", "discover", "--max-search-terms", "3", "--dry-run"),
    ("polymarket", "summary", "--dry-run"),
    ("hyperliquid", "funding", "--dry-run"),
]


def market(db: Path | str, *args: str, cwd: Path | None = None, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_")} | {"MARKET_PROFILE": "local"}
    if home is not None:
        env["MARKET_HOME"] = str(home)
    return subprocess.run(
        [str(MARKET), "--db", str(db), "--offline", *args], check=False, capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes; a ``-shm`` by name only: it is the attached
    writer's shared memory, where every reader, read-only ones too, marks the snapshot it reads."""
    return {
        str(p.relative_to(folder)): b"" if p.name.endswith("-shm") else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("command", [("check",), ("status",), ("status", "--json"), ("monitor", "--once")])
def test_a_reader_given_a_path_with_no_memory_says_so_in_one_line_and_creates_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = market("typo/a/b/market.db", *command, cwd=tmp_path)
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == ("", f"market: no market memory at {tmp_path}/typo/a/b/market.db\n")
    assert list(tmp_path.iterdir()) == []


def test_a_readonly_open_of_a_missing_memory_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "a" / "market.db"
    with pytest.raises(MemoryMissingError, match=f"^no market memory at {path}$"), open_memory(path, readonly=True):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command", [c for c in DRY_RUNS if c[1] != "summary"], ids=lambda c: "-".join(c[:2])
)  # summary refreshes tracked markets: without a memory there are none to call for
def test_a_dry_run_without_a_memory_creates_nothing_anywhere_and_shows_each_source_call(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = market(tmp_path / "market.db", *command)
    assert result.returncode == 0, result.stderr
    assert "would write" in result.stdout and "nothing written" in result.stdout
    assert list(tmp_path.iterdir()) == []  # no memory, no market.db.weight, no -wal/-shm
    progress = result.stderr.splitlines()
    assert progress[0].startswith(f"market: {command[0]}/") and progress[0].endswith("(dry run, writes nothing)")
    assert any(line.startswith("  HTTP Request: ") for line in progress)
    assert progress[-1].endswith(": done")


def rows_of(url: PostgresUrl) -> dict[str, list[tuple[object, ...]]]:
    """Every table of a PostgreSQL memory, each row with its ``xmin`` (the transaction that wrote
    it: a row rewritten with the same values changes it), and every sequence's position."""
    with psycopg.connect(url) as raw:
        tables = [n for (n,) in raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")]
        dump: dict[str, list[tuple[object, ...]]] = {
            table: raw.execute(f"SELECT xmin::text, * FROM {table} ORDER BY 1").fetchall() for table in tables}
        dump["sequences"] = raw.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1").fetchall()
    return dump


@contextmanager
def writer_attached(db: Path | str, attached: bool) -> Iterator[None]:
    """Optionally a process with a run open on ``db`` for the length of the block (as the streamer
    or a Dagster run is while a dry run reads): its ``-wal``/``-shm`` exist meanwhile."""
    if not attached:
        yield
        return
    with worker(db, "hang") as hung:
        assert hung.stdout is not None and hung.stdout.readline().strip().isdigit()
        yield


@pytest.mark.parametrize("attached", [False, True], ids=["idle memory", "writer attached"])
def test_a_dry_run_on_an_existing_memory_and_budget_leaves_every_file_byte_identical(
    tmp_path: Path, attached: bool
) -> None:
    db = tmp_path / "market.db"
    assert market(db, "hyperliquid", "funding").returncode == 0  # the memory and its weight budget
    assert (tmp_path / "market.db.weight").exists()
    with writer_attached(db, attached):
        before = snapshot(tmp_path)
        for command in DRY_RUNS:
            result = market(db, *command)
            assert result.returncode == 0, result.stderr
        assert snapshot(tmp_path) == before


def test_a_dry_run_on_an_existing_postgres_memory_leaves_every_row_and_the_host_s_budget_as_they_were(
    postgres_url: PostgresUrl, tmp_path: Path
) -> None:
    """The same on a PostgreSQL memory, a writer attached: no row rewritten (``xmin``), no
    sequence moved, and the host's weight ledger (in its own folder) byte-identical. Two of the
    dry runs (the memory is opened the same way by each; a CLI start costs seconds): the one
    spending Hyperliquid weight and the one reading what the memory tracks."""
    home = tmp_path / "home"
    assert market(postgres_url, "hyperliquid", "funding", home=home).returncode == 0
    assert (home / POSTGRES_LEDGER_NAME).exists()
    with writer_attached(postgres_url, True):
        before = rows_of(postgres_url), snapshot(home)
        for command in [c for c in DRY_RUNS if c[:2] in {("hyperliquid", "funding"), ("polymarket", "summary")}]:
            result = market(postgres_url, *command, home=home)
            assert result.returncode == 0, result.stderr
        assert (rows_of(postgres_url), snapshot(home)) == before


def test_status_and_check_leave_an_idle_memory_and_its_folder_as_they_were(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    close(connect(db))
    before = snapshot(tmp_path)
    assert market(db, "status", "--json").returncode == 0
    assert market(db, "check").returncode == 4
    assert snapshot(tmp_path) == before


def test_status_and_check_leave_a_postgres_memory_as_it_was(postgres_url: PostgresUrl, tmp_path: Path) -> None:
    connect(postgres_url).close()
    before = rows_of(postgres_url)
    assert market(postgres_url, "status", "--json", home=tmp_path).returncode == 0
    assert market(postgres_url, "check", home=tmp_path).returncode == 4
    assert rows_of(postgres_url) == before


def test_the_dagster_resource_opens_the_memory_read_only_for_a_sensor(tmp_path: Path) -> None:
    from market_assets.defs.resources import MarketMemory

    resource = MarketMemory(db_path=str(tmp_path / "absent" / "market.db"))
    with pytest.raises(MemoryMissingError), resource.connect(readonly=True):
        pass
    assert list(tmp_path.iterdir()) == []
    db = tmp_path / "market.db"
    close(connect(db))
    with (
        MarketMemory(db_path=str(db)).connect(readonly=True) as conn,
        pytest.raises(sqlite3.OperationalError, match="readonly|query_only|attempt to write"),
    ):
        conn.execute("DELETE FROM ingestion_runs")


def test_the_dagster_resource_opens_a_postgres_memory_read_only_for_a_sensor(postgres_url: PostgresUrl) -> None:
    from market_assets.defs.resources import MarketMemory

    with pytest.raises(MemoryMissingError), MarketMemory(db_path=postgres_url).connect(readonly=True):
        pass  # an empty database: no market tables, and none created
    connect(postgres_url).close()
    before = rows_of(postgres_url)
    with (
        MarketMemory(db_path=postgres_url).connect(readonly=True) as conn,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        conn.execute("DELETE FROM ingestion_runs")
    assert rows_of(postgres_url) == before


READERS = {"status", "check", "monitor", "api", "candles", "features", "funding"}
"""Open the memory read-only (and a dry run of a writer writes nothing)."""
WRITERS = {
    "up", "stream", "hyperliquid ohlcv", "hyperliquid funding", "hyperliquid features", "hyperliquid maintain",
    "polymarket discover", "polymarket summary", "defillama ingest",
    "checks",  # evaluates the asset checks read-only, then records their results, as a Dagster check run does
}
NEITHER = {"replay"}
"""Serves recorded payloads; never opens the memory."""


def test_every_command_is_classified_a_reader_or_a_writer() -> None:
    """A new command must say which it is, here, so a reader that writes cannot slip in unnoticed."""
    import typer.main
    from typer.core import TyperGroup

    from market_assets.cli import app

    def names(group: TyperGroup, prefix: tuple[str, ...] = ()) -> set[str]:
        found: set[str] = set()
        for name, command in group.commands.items():
            if isinstance(command, TyperGroup):
                found |= names(command, (*prefix, name))
            else:
                found.add(" ".join((*prefix, name)))
        return found

    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    assert names(root) == READERS | WRITERS | NEITHER
    assert not (READERS & WRITERS)


def test_market_checks_writes_its_results_and_nothing_else(tmp_path: Path) -> None:
    db = tmp_path / "market.db"
    with open_memory(db) as conn:
        for channel in REGISTRY:
            with Ledger(conn).run(channel) as run:
                run.add_rows(1)

    def tables() -> dict[str, list[tuple[object, ...]]]:
        with open_memory(db, readonly=True) as conn:
            names = sorted(table_names(conn))
            return {n: conn.execute(f"SELECT * FROM {n}").fetchall() for n in names}

    before = tables()
    result = market(db, "checks", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    after = tables()
    assert sorted(f"{source}/{channel}:{name}" for source, channel, name, *_ in after.pop("check_results")) == sorted(
        c.key for c in CHECKS
    )
    assert before.pop("check_results") == []
    assert after == before
