"""One schema on two engines: a PostgreSQL memory holds SQLite's tables, keys, indexes, checks
and triggers, reaches the same version, migrates once under concurrent opens, and refuses what
SQLite refuses."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from market_assets.memory import SCHEMA_VERSION, MarketMemoryError, connect
from market_assets.memory.connection import close
from market_assets.memory.schema import FORWARD, MIGRATIONS
from market_assets.memory.schema_postgres import BASELINE_VERSION
from market_assets.memory.target import MemoryTarget, PostgresUrl

POSTGRES_TYPES = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text", "BLOB": "bytea"}
POSTGRES_ONLY_INDEXES = {"candles_by_time", "candle_rollups_by_time", "funding_by_time", "features_by_time", "defillama_series_by_time"}
"""PostgreSQL's time indexes: it has no skip scan, so "every subject, recent window" needs them."""


def sqlite_shape(conn: sqlite3.Connection) -> dict[str, Any]:
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    shape: dict[str, Any] = {}
    for table in tables:
        columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
        shape[table] = {
            "columns": [(c[1], POSTGRES_TYPES[c[2]], c[4]) for c in columns],
            "key": [c[1] for c in sorted((c for c in columns if c[5]), key=lambda c: c[5])],
        }
    indexes = {
        row[0]: (row[1], [c[2] for c in conn.execute(f"PRAGMA index_info({row[0]})")], bool(row[2]), _where(row[3]))
        for row in conn.execute("SELECT name, tbl_name, sql LIKE 'CREATE UNIQUE%', sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    }
    triggers = sorted(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    return {"tables": shape, "indexes": indexes, "triggers": triggers}


def _where(sql: str | None) -> str | None:
    return sql.split(" WHERE ", 1)[1].strip() if sql and " WHERE " in sql else None


def postgres_shape(conn: Any) -> dict[str, Any]:
    tables = [row[0] for row in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")]
    shape: dict[str, Any] = {}
    for table in tables:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position", (table,)).fetchall()
        key = [row[0] for row in conn.execute(
            "SELECT a.attname FROM pg_index AS i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = ?::regclass AND i.indisprimary ORDER BY k.n", (table,))]
        shape[table] = {
            "columns": [(c[0], c[1], _default(c[3])) for c in columns],
            "key": key,
        }
    indexes = {}
    for name, table, unique, where in conn.execute(
        "SELECT c.relname, t.relname, i.indisunique, pg_get_expr(i.indpred, i.indrelid) FROM pg_index AS i "
        "JOIN pg_class AS c ON c.oid = i.indexrelid JOIN pg_class AS t ON t.oid = i.indrelid "
        "JOIN pg_namespace AS n ON n.oid = t.relnamespace WHERE n.nspname = 'public' AND NOT i.indisprimary"):
        columns = [row[0] for row in conn.execute(
            "SELECT a.attname FROM pg_index AS i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indexrelid = ?::regclass ORDER BY k.n", (name,))]
        indexes[name] = (table, columns, unique, where.replace("(", "").replace(")", "") if where else None)
    triggers = sorted(row[0] for row in conn.execute(
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
    return {"tables": shape, "indexes": indexes, "triggers": triggers}


def _default(text: str | None) -> str | None:
    """PostgreSQL's default expression as SQLite shows it: ``'{}'::text`` → ``'{}'``; an
    identity column has none (SQLite's rowid alias has none either)."""
    if text is None:
        return None
    return text.split("::", 1)[0]


def test_postgres_holds_the_sqlite_schema_table_for_table(memory_path: Path, postgres_url: PostgresUrl) -> None:
    lite = connect(memory_path)
    pg = connect(postgres_url)
    try:
        expected, actual = sqlite_shape(lite), postgres_shape(pg)
    finally:
        close(lite)
        pg.close()
    assert sorted(actual["tables"]) == sorted(expected["tables"])
    for table, want in expected["tables"].items():
        assert actual["tables"][table]["key"] == want["key"], table
        assert actual["tables"][table]["columns"] == want["columns"], table
    assert {name: spec for name, spec in actual["indexes"].items() if name not in POSTGRES_ONLY_INDEXES} == expected["indexes"]
    assert POSTGRES_ONLY_INDEXES <= set(actual["indexes"])
    assert actual["triggers"] == expected["triggers"]


def test_not_null_columns_are_the_same_on_both(memory_path: Path, postgres_url: PostgresUrl) -> None:
    lite = connect(memory_path)
    pg = connect(postgres_url)
    try:
        for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            lite_required = {c[1] for c in lite.execute(f"PRAGMA table_info({table})") if c[3] or c[5]}
            pg_required = {row[0] for row in pg.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND is_nullable = 'NO'", (table,))}
            if table in ("ingestion_runs", "pending_features"):  # SQLite's rowid alias is never NULL either
                lite_required |= {c[1] for c in lite.execute(f"PRAGMA table_info({table})") if c[5]}
            assert pg_required == lite_required, table
    finally:
        close(lite)
        pg.close()


def test_both_engines_reach_the_same_version(memory_target: MemoryTarget) -> None:
    conn = connect(memory_target)
    try:
        if isinstance(memory_target, PostgresUrl):
            version = conn.execute("SELECT value FROM memory_info WHERE key = 'schema_version'").fetchone()[0]
        else:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        assert int(version) == SCHEMA_VERSION == len(MIGRATIONS) == BASELINE_VERSION + len(FORWARD)
    finally:
        conn.close()


def _open_once(target: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        connect(target, clock=lambda: 1_795_000_000_000).close()
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the test, which asserts every process opened it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_fresh_postgres_memory_at_once_migrate_it_once(postgres_url: PostgresUrl) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    processes = [ctx.Process(target=_open_once, args=(str(postgres_url), barrier, results)) for _ in range(3)]
    for process in processes:
        process.start()
    try:
        outcomes = sorted(results.get(timeout=60) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
                process.kill()
    assert outcomes == ["ok", "ok", "ok"]
    with psycopg.connect(postgres_url) as raw:
        assert raw.execute("SELECT key, value FROM memory_info ORDER BY key").fetchall() == [
            ("created_at_ms", "1795000000000"), ("schema_version", str(SCHEMA_VERSION))]
        assert raw.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'candles_closed_inserted'").fetchone()[0] == 1


def test_a_postgres_memory_from_a_newer_schema_is_refused_and_left_untouched(postgres_url: PostgresUrl) -> None:
    connect(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as raw:
        raw.execute("UPDATE memory_info SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        raw.execute("CREATE TABLE from_the_future (x int)")
    with pytest.raises(MarketMemoryError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        connect(postgres_url)
    with pytest.raises(MarketMemoryError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        connect(postgres_url, readonly=True)
    with psycopg.connect(postgres_url) as raw:
        assert raw.execute("SELECT value FROM memory_info WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION + 1)
        assert raw.execute("SELECT to_regclass('from_the_future')").fetchone()[0] == "from_the_future"


def test_a_readonly_postgres_connection_refuses_every_write(postgres_url: PostgresUrl) -> None:
    connect(postgres_url).close()
    reader = connect(postgres_url, readonly=True)
    try:
        for statement in ("INSERT INTO memory_info (key, value) VALUES ('x', 'y')", "DELETE FROM memory_info",
                          "CREATE TABLE scratch (x int)"):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                reader.execute(statement)
    finally:
        reader.close()
    with psycopg.connect(postgres_url) as raw:
        assert [row[0] for row in raw.execute("SELECT key FROM memory_info ORDER BY key")] == ["created_at_ms", "schema_version"]
        assert raw.execute("SELECT to_regclass('scratch')").fetchone()[0] is None


def test_a_readonly_open_of_an_empty_postgres_database_creates_nothing(postgres_url: PostgresUrl) -> None:
    with pytest.raises(MarketMemoryError, match="no market memory"):
        connect(postgres_url, readonly=True)
    with psycopg.connect(postgres_url) as raw:
        assert raw.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()[0] == 0


CANDLE = ("INSERT INTO candles (coin, interval, open_time_ms, close_time_ms, open, high, low, close, volume, trades, "
          "closed, ingested_at_ms) VALUES (?, '1m', ?, ?, ?, 2, 1, 1.5, 10, 3, 1, 5)")


def test_nan_is_refused_where_a_value_is_required_on_both_engines(memory_target: MemoryTarget) -> None:
    conn = connect(memory_target)
    try:
        with pytest.raises((sqlite3.IntegrityError, psycopg.errors.NotNullViolation), match="(?i)not[ -]null"):
            conn.execute(CANDLE, ("BTC", 60_000, 119_999, math.nan))
        conn.execute(CANDLE, ("BTC", 120_000, 179_999, 1.25))
        assert conn.execute("SELECT coin, open_time_ms, open FROM candles").fetchall() == [("BTC", 120_000, 1.25)]
        # A nullable float keeps NULL for NaN, as SQLite stores it.
        conn.execute("INSERT INTO funding (coin, hour_ms, funding_rate, premium, settled, source_time_ms, ingested_at_ms) "
                     "VALUES ('BTC', 0, 0.0001, ?, 1, 1, 1)", (math.nan,))
        assert conn.execute("SELECT funding_rate, premium FROM funding").fetchall() == [(0.0001, None)]
    finally:
        conn.close()


def test_a_nan_written_as_text_is_refused_on_postgres(postgres_url: PostgresUrl) -> None:
    conn = connect(postgres_url)
    try:
        with pytest.raises(psycopg.errors.CheckViolation, match="candles_open_check"):
            conn.execute(CANDLE.replace("?, 2, 1", "'NaN', 2, 1").replace("(?, '1m', ?, ?, ", "('BTC', '1m', 1, 2, "))
        assert conn.execute("SELECT count(*) FROM candles").fetchone()[0] == 0
    finally:
        conn.close()


def test_text_sorts_by_bytes_on_both_engines(memory_target: MemoryTarget) -> None:
    """SQLite compares text byte by byte; PostgreSQL's columns are ``COLLATE "C"`` so that every
    ``ORDER BY coin`` lists the same order whatever the database's locale."""
    conn = connect(memory_target)
    try:
        for coin in ("kPEPE", "BTC", "@107", "eth", "ETH"):
            conn.execute("INSERT INTO hyperliquid_universe (coin, asset_index, updated_at_ms) VALUES (?, 0, 0)", (coin,))
        assert [row[0] for row in conn.execute("SELECT coin FROM hyperliquid_universe ORDER BY coin")] == [
            "@107", "BTC", "ETH", "eth", "kPEPE"]
    finally:
        conn.close()
