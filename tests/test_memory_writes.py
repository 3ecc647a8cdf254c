"""Upserts of the scheduled channels: idempotent, settled data never downgraded, delistings followed."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import psycopg
import pytest

from market_assets.memory import hyperliquid, polymarket
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.defillama import SeriesPoint, series_points, upsert_series
from market_assets.memory.hyperliquid import FundingRow, UniverseRow

from .conftest import T0_MS

HOUR_MS = 3_600_000

@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """Every test of this module runs on SQLite and on PostgreSQL (``memory_conn``)."""
    return memory_conn



def test_universe_follows_listings_and_delistings(conn: MemoryConnection) -> None:
    first = [UniverseRow("BTC", "", 0, 5, 40, False), UniverseRow("ETH", "", 1, 4, 25, False),
             UniverseRow("MATIC", "", 2, 1, 20, True)]
    hyperliquid.upsert_universe(conn, first, T0_MS)
    assert hyperliquid.listed_coins(conn) == ["BTC", "ETH"]
    # ETH vanishes from the next listing and a new coin appears.
    hyperliquid.upsert_universe(conn, [first[0], UniverseRow("HYPE", "", 3, 2, 10, False)], T0_MS + 60_000)
    assert hyperliquid.listed_coins(conn) == ["BTC", "HYPE"]


def test_settled_funding_is_never_replaced_by_an_estimate(conn: MemoryConnection) -> None:
    hour = T0_MS - T0_MS % HOUR_MS
    estimate = FundingRow("BTC", hour, Decimal("0.0000125"), Decimal("0.0001"), False, hour + 1_234)
    settled = FundingRow("BTC", hour, Decimal("0.0000118"), Decimal("-0.00061334"), True, hour + 48)
    hyperliquid.upsert_funding(conn, [estimate], T0_MS)
    hyperliquid.upsert_funding(conn, [settled], T0_MS + 1)
    hyperliquid.upsert_funding(conn, [estimate], T0_MS + 2)  # a late estimate of a settled hour
    stored = conn.execute("SELECT funding_rate, premium, settled FROM funding").fetchall()
    assert stored == [(0.0000118, -0.00061334, 1)]
    assert hyperliquid.last_settled_funding_hours(conn) == {"BTC": hour}


def test_decimal_text_round_trips_through_real_storage(conn: MemoryConnection) -> None:
    rate = Decimal("-0.00061334")
    hyperliquid.upsert_funding(conn, [FundingRow("ETH", 0, rate, None, True, 0)], T0_MS)
    (stored,) = conn.execute("SELECT funding_rate FROM funding").fetchone()
    assert repr(stored) == str(rate)


def test_a_failing_batch_is_rolled_back_whole(conn: MemoryConnection) -> None:
    hyperliquid.upsert_funding(conn, [FundingRow("SOL", 0, Decimal("0.3"), None, True, 0)], T0_MS)
    good = FundingRow("BTC", 0, Decimal("0.1"), None, True, 0)
    broken = good._replace(coin=None)  # violates NOT NULL after the good row was written
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        hyperliquid.upsert_funding(conn, [good, broken], T0_MS)  # type: ignore[list-item]
    assert conn.execute("SELECT coin FROM funding").fetchall() == [("SOL",)]
    assert not conn.in_transaction


def test_tracked_markets_keep_their_first_sighting(conn: MemoryConnection) -> None:
    polymarket.track_markets(conn, [polymarket.TrackedMarket("517310", "bitcoin")], T0_MS)
    polymarket.track_markets(conn, [polymarket.TrackedMarket("517310", "btc")], T0_MS + 5_000)
    assert conn.execute(
        "SELECT search_term, first_seen_at_ms, last_seen_at_ms FROM polymarket_tracked_markets"
    ).fetchall() == [("bitcoin", T0_MS, T0_MS + 5_000)]
    assert polymarket.tracked_market_ids(conn) == ["517310"]


def test_market_summaries_are_upserted_in_place(conn: MemoryConnection) -> None:
    row = polymarket.MarketSummary(
        "517310", "Will BTC hit 150k?", "btc-150k", '["Yes", "No"]', '["0.12", "0.88"]',
        Decimal("1050000.5"), Decimal(20500), "2026-12-31T12:00:00Z", True, False,
    )
    polymarket.upsert_market_summaries(conn, [row], T0_MS)
    polymarket.upsert_market_summaries(conn, [row._replace(outcome_prices='["0.2", "0.8"]')], T0_MS + 1)
    assert conn.execute(
        "SELECT outcome_prices, volume, closed, updated_at_ms FROM polymarket_markets"
    ).fetchall() == [('["0.2", "0.8"]', 1050000.5, 0, T0_MS + 1)]


def test_series_points_are_idempotent(conn: MemoryConnection) -> None:
    points = [SeriesPoint("tvl", "Ethereum", day * 86_400_000, Decimal(day * 1000)) for day in range(3)]
    upsert_series(conn, points, T0_MS)
    upsert_series(conn, points, T0_MS + 1)
    assert series_points(conn, "tvl", "Ethereum") == [(0, 0.0), (86_400_000, 1000.0), (172_800_000, 2000.0)]
