"""``funding_revisions`` rows go with the funding hours they revised (``FUNDING.retention``)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.hyperliquid import FundingRow, upsert_funding
from market_assets.memory.rollups import HOUR_MS
from market_assets.memory.runs import runs_of
from market_assets.registry import FUNDING, MAINTENANCE
from tests.archive import archive_finished_days
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS
from tests.postgres.reuse import memory_target, reused_postgres

__all__ = ["memory_target", "reused_postgres"]  # the PostgreSQL memory reused, emptied per test


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The root conftest's ``memory_conn``: each test once per engine."""
    return memory_conn

assert FUNDING.retention is not None
RETENTION_DAYS = FUNDING.retention.days
NOW_MS = DAY0_MS + (RETENTION_DAYS + 2) * DAY_MS + 5 * HOUR_MS
"""Days 0 and 1 from DAY0 are past the funding retention; day 2 and later are not."""


def hour(day: int, h: int) -> int:
    return DAY0_MS + day * DAY_MS + h * HOUR_MS


def settle(conn: MemoryConnection, coin: str, hour_ms: int, rate: str, at_ms: int) -> None:
    upsert_funding(conn, [FundingRow(coin, hour_ms, Decimal(rate), None, True, hour_ms + 48)], at_ms)


def revisions(conn: MemoryConnection) -> list[tuple[str, int]]:
    return conn.execute("SELECT coin, hour_ms FROM funding_revisions ORDER BY hour_ms, coin").fetchall()


def seed(conn: MemoryConnection) -> None:
    """Settled hours on days 0, 1 and 3, each later upserted again with another rate (a revision)."""
    for day in (0, 1, 3):
        for coin in ("BTC", "ETH"):
            settle(conn, coin, hour(day, 7), "0.0000125", hour(day, 8))
    for day in (0, 1, 3):
        settle(conn, "BTC", hour(day, 7), "0.0000131", hour(day, 9))
    assert revisions(conn) == [("BTC", hour(0, 7)), ("BTC", hour(1, 7)), ("BTC", hour(3, 7))]


def test_revisions_of_pruned_hours_go_and_recent_ones_stay(conn: MemoryConnection, clock: FrozenClock) -> None:
    seed(conn)
    clock.now_ms = NOW_MS
    archive_finished_days(conn, NOW_MS)
    result = run_maintenance(conn, Ledger(conn, clock))
    assert result.rows_pruned[FUNDING.key] == 4 and result.rows_pruned["funding_revisions"] == 2
    assert revisions(conn) == [("BTC", hour(3, 7))]
    assert conn.execute("SELECT DISTINCT hour_ms FROM funding").fetchall() == [(hour(3, 7),)]
    (run,) = runs_of(conn, MAINTENANCE.source, MAINTENANCE.name)
    assert run.metadata["rows_pruned:funding_revisions"] == 2
    # Idempotent: nothing left to prune.
    assert run_maintenance(conn, Ledger(conn, clock)).rows_pruned["funding_revisions"] == 0


def test_an_hour_kept_past_retention_keeps_its_revisions(conn: MemoryConnection, clock: FrozenClock) -> None:
    seed(conn)
    clock.now_ms = NOW_MS
    archive_finished_days(conn, NOW_MS)
    conn.execute("DELETE FROM archived_days WHERE dataset = 'funding' AND day_ms = ?", (hour(1, 0),))  # day 1 not archived
    result = run_maintenance(conn, Ledger(conn, clock))
    assert result.rows_pruned[FUNDING.key] == 2 and result.rows_pruned["funding_revisions"] == 1
    assert revisions(conn) == [("BTC", hour(1, 7)), ("BTC", hour(3, 7))]
    assert "funding" in result.archive_blocked and list(result.archive_blocked["funding"]) != []
