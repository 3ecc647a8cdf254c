"""The market memory: pragmas, versioned schema, and refusing bad input without touching it."""

from __future__ import annotations

import ast
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from market_assets.memory import SCHEMA_VERSION, MarketMemoryError, connect
from market_assets.memory.connection import BUSY_TIMEOUT_SEC, close
from market_assets.memory.weight import open_weight_ledger
from market_assets.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
SQL = re.compile(
    r"^\s*(SELECT\s.+\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|CREATE\s+(TABLE|INDEX|UNIQUE|VIEW)\s"
    r"|DROP\s+(TABLE|INDEX|VIEW)\s|ALTER\s+TABLE\s|PRAGMA\s|BEGIN\b|COMMIT\b|ROLLBACK\b|WITH\s+\w+\s+AS\s|ANALYZE\b|VACUUM\b)",
    re.S,
)
"""SQL as this codebase writes it (upper-case keywords), not English or HTTP verbs."""


def test_connection_uses_wal_normal_sync_and_a_busy_timeout(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_SEC * 1000 >= 5000


def test_fresh_memory_is_at_the_current_schema_version(conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1


def test_every_channel_table_exists_and_candles_are_without_rowid(conn: sqlite3.Connection) -> None:
    tables = {row[0]: row[1] for row in conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    for channel in REGISTRY:
        assert channel.data.table in tables
    assert {"ingestion_runs", "hyperliquid_universe", "funding", "features", "candles"} <= set(tables)
    assert tables["candles"].rstrip().endswith("WITHOUT ROWID")
    assert "PRIMARY KEY (coin, interval, open_time_ms)" in tables["candles"]


def test_latest_run_lookup_is_an_index_seek(conn: sqlite3.Connection) -> None:
    from market_assets.memory.runs import LATEST_RUN_SQL

    plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {LATEST_RUN_SQL}", ("a", "b")))
    assert "USING INDEX ingestion_runs_by_channel (source=? AND channel=?)" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index already orders by started_at_ms


def test_reopening_applies_no_migration_twice(memory_path: Path, clock) -> None:
    first = connect(memory_path, clock=clock)
    created = first.execute("SELECT value FROM memory_info").fetchall()
    close(first)
    clock.advance(seconds=60)
    second = connect(memory_path, clock=clock)
    assert second.execute("SELECT value FROM memory_info").fetchall() == created
    close(second)


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"my trading notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(MarketMemoryError, match="is not a SQLite database"):
        connect(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]  # no -wal/-shm created


def test_a_corrupt_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    healthy = connect(path)
    close(healthy)
    data = bytearray(path.read_bytes())
    data[16:100] = b"\xff" * 84  # page size and header fields destroyed, magic string intact
    path.write_bytes(bytes(data))
    with pytest.raises(MarketMemoryError, match="cannot use the market memory"):
        connect(path)
    assert path.read_bytes() == bytes(data)


def test_a_memory_from_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.execute("CREATE TABLE from_the_future (x)")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(MarketMemoryError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        connect(path)
    assert path.read_bytes() == before


def test_an_unwritable_directory_is_a_clear_error() -> None:
    # /proc refuses new files even to root, who ignores permission bits elsewhere.
    with pytest.raises(MarketMemoryError, match="cannot open the market memory /proc/self/market.db"):
        connect(Path("/proc/self/market.db"))


def test_a_path_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(MarketMemoryError, match="Not a directory"):
        connect(blocker / "market.db")
    assert blocker.read_text() == "a file where a directory should be"


def test_a_directory_at_the_memory_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MarketMemoryError, match="is a directory"):
        connect(tmp_path)


def sql_outside_memory() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in ("market_assets", "streamer", "api"):
        for path in (ROOT / package).rglob("*.py"):
            if "memory" in path.relative_to(ROOT).parts:
                continue
            hits = [
                node.value[:60]
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value)
            ]
            if hits:
                found[str(path.relative_to(ROOT))] = hits
    return found


def test_every_sql_statement_lives_in_the_memory_package() -> None:
    assert sql_outside_memory() == {}


def test_the_sql_detector_tells_sql_from_prose() -> None:
    statements = ["SELECT coin FROM candles", "INSERT INTO funding (coin) VALUES (?)", "PRAGMA optimize",
                  "UPDATE candles SET closed = 1", "DELETE FROM candles WHERE coin = ?", "BEGIN IMMEDIATE"]
    prose = ["DELETE", "Drop each connection after 10 s", "Select the coins to follow", "UPDATE"]
    assert all(SQL.match(text) for text in statements)
    assert not any(SQL.match(text) for text in prose)


def test_a_readonly_connection_cannot_write(memory_path: Path) -> None:
    close(connect(memory_path))
    reader = connect(memory_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO memory_info (key, value) VALUES ('x', 'y')")
    reader.close()


def test_a_readonly_connection_needs_an_existing_memory(tmp_path: Path) -> None:
    with pytest.raises(MarketMemoryError, match="no market memory"):
        connect(tmp_path / "absent.db", readonly=True)
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("opener", [connect, open_weight_ledger], ids=["memory", "weight ledger"])
def test_processes_opening_a_fresh_file_at_the_same_moment_all_get_it(
    opener: Callable[[Path], sqlite3.Connection], tmp_path: Path
) -> None:
    """`market up` starts the streamer, the API and Dagster at once on a fresh machine. The switch
    to WAL needs the file to itself and SQLite answers a concurrent one "database is locked"
    without waiting (about one file in twenty here, before it was retried)."""
    paths = [tmp_path / f"{n}.db" for n in range(100)]
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def open_each() -> None:
        for path in paths:
            start.wait()
            try:
                opener(path).close()
            except Exception as exc:
                failures.append(exc)

    threads = [threading.Thread(target=open_each) for _ in range(start.parties)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for path in paths:
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_sqlite_process_never_loads_psycopg() -> None:
    """psycopg costs ~300 ms to import; only a process that opens a PostgreSQL memory pays it."""
    code = "import sys, market_assets.memory, market_assets.cli, market_assets.ledger; print('psycopg' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.strip() == "False"
