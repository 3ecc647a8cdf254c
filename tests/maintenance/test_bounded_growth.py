"""Issue 14 item 10: every table that grows has a retention in the registry, and maintenance
applies it: rollups per interval (never before the coarser rows hold them), gap and repair rows
with their minutes, Polymarket markets untracked once closed or not found, then pruned."""

from __future__ import annotations

from datetime import timedelta

import pytest

from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import polymarket
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import pick
from market_assets.memory.polymarket import MarketSummary, TrackedMarket, Untracked
from market_assets.memory.rollups import LEVELS, rollups_of
from market_assets.registry import (
    BOUNDED_TABLES,
    CANDLES,
    GAP_RETENTION,
    POLYMARKET_UNSEEN_AFTER,
    POLYMARKET_UNTRACKED_RETENTION,
    ROLLUP_RETENTION,
    check_rollup_retention,
)
from tests.archive import archive_finished_days
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, MINUTE_MS, random_walk, series, store
from tests.postgres.reuse import memory_target, reused_postgres

__all__ = ["memory_target", "reused_postgres"]  # the PostgreSQL memory reused, emptied per test


@pytest.fixture
def conn(memory_conn: MemoryConnection) -> MemoryConnection:
    """The root conftest's ``memory_conn``: each test once per engine."""
    return memory_conn

FIVE_DAYS = ROLLUP_RETENTION["5m"].days if ROLLUP_RETENTION["5m"] else 0
AFTER_5M_RETENTION_MS = DAY0_MS + (FIVE_DAYS + 3) * DAY_MS
"""A clock at which days 0, 1 and 2 from DAY0 are past the 5m rollups' retention, day 3 not."""


def rows_per_coin_day(conn: MemoryConnection, interval: str) -> dict[tuple[str, int], int]:
    rows = conn.execute(
        "SELECT coin, (open_time_ms - ?) / ?, count(*) FROM candle_rollups WHERE interval = ? GROUP BY 1, 2",
        (DAY0_MS, DAY_MS, interval),
    ).fetchall()
    return {(coin, day): count for coin, day, count in rows}


def four_rolled_days(conn: MemoryConnection, clock: FrozenClock, coins: tuple[str, ...]) -> Ledger:
    for i, coin in enumerate(coins):
        store(conn, series(coin, DAY0_MS, random_walk(i, 4 * 1440), seed=i), clock())
    clock.now_ms = DAY0_MS + 4 * DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)  # rolls all four days; prunes nothing yet
    archive_finished_days(conn, clock())  # the gate: only archived days are pruned
    return ledger


def test_every_table_of_the_schema_declares_how_it_is_bounded(conn: MemoryConnection) -> None:
    listed = pick(conn, sqlite="SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                  postgres="SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    tables = {name for (name,) in conn.execute(listed)}
    assert tables == set(BOUNDED_TABLES)


def test_rollups_are_never_kept_shorter_than_what_they_are_rolled_from() -> None:
    assert list(ROLLUP_RETENTION) == [level.interval for level in LEVELS]
    assert ROLLUP_RETENTION["1h"] is None and ROLLUP_RETENTION["1d"] is None  # the long history
    assert CANDLES.retention is not None and ROLLUP_RETENTION["5m"] is not None
    assert ROLLUP_RETENTION["5m"] > CANDLES.retention
    with pytest.raises(ValueError, match="5m would be pruned before the rows they are rolled from"):
        check_rollup_retention({"5m": timedelta(days=7), "1h": None, "1d": None}, timedelta(days=30))
    with pytest.raises(ValueError, match="1h would be pruned before"):
        check_rollup_retention({"5m": timedelta(days=90), "1h": timedelta(days=60), "1d": None}, timedelta(days=30))
    with pytest.raises(ValueError, match="coarsest rollup interval must be kept for ever"):
        check_rollup_retention(
            {"5m": timedelta(days=90), "1h": timedelta(days=365), "1d": timedelta(days=3650)}, timedelta(days=30)
        )


def test_5m_rollups_past_their_retention_are_pruned_whole_days_and_1h_1d_kept(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    ledger = four_rolled_days(conn, clock, ("BTC", "ETH"))
    hours = {coin: rollups_of(conn, coin, "1h") for coin in ("BTC", "ETH")}
    days = {coin: rollups_of(conn, coin, "1d") for coin in ("BTC", "ETH")}
    fives = {coin: rollups_of(conn, coin, "5m") for coin in ("BTC", "ETH")}

    clock.now_ms = AFTER_5M_RETENTION_MS
    result = run_maintenance(conn, ledger)

    assert result.candle_rows_pruned == 2 * 4 * 1440  # the minutes went first, after their rollups
    assert result.rows_pruned["candle_rollups/5m"] == 2 * 3 * 288
    assert result.rollup_rows_held_back == {"5m": 0}
    assert rows_per_coin_day(conn, "5m") == {("BTC", 3): 288, ("ETH", 3): 288}
    for coin in ("BTC", "ETH"):
        assert rollups_of(conn, coin, "5m") == fives[coin][3 * 288:]  # day 3, untouched
        assert rollups_of(conn, coin, "1h") == hours[coin]  # every hour kept, values unchanged
        assert rollups_of(conn, coin, "1d") == days[coin]
    assert run_maintenance(conn, ledger).rows_pruned["candle_rollups/5m"] == 0  # idempotent


def test_5m_rollups_the_hours_do_not_hold_or_whose_minutes_remain_are_kept(
    conn: MemoryConnection, clock: FrozenClock
) -> None:
    four_days = 4 * 1440
    for i, coin in enumerate(("BTC", "ETH")):
        store(conn, series(coin, DAY0_MS, random_walk(i, four_days), seed=i), clock())
    sol = series("SOL", DAY0_MS, random_walk(3, four_days))
    sol[1440 + 7] = sol[1440 + 7]._replace(closed=False)  # day 1: a minute the streamer never closed
    store(conn, sol, clock())
    clock.now_ms = DAY0_MS + 4 * DAY_MS
    ledger = Ledger(conn, clock)
    run_maintenance(conn, ledger)
    archive_finished_days(conn, clock())
    # ETH day 0: one hour's rollup lost; its 5m rows are the only record of that hour.
    conn.execute("DELETE FROM candle_rollups WHERE coin = 'ETH' AND interval = '1h' AND open_time_ms = ?", (DAY0_MS,))
    before = rows_per_coin_day(conn, "5m")

    clock.now_ms = AFTER_5M_RETENTION_MS
    result = run_maintenance(conn, ledger)

    # SOL day 1 never rolled up whole, so its minutes are still stored, and so are its 5m rows.
    assert conn.execute("SELECT count(*) FROM candles WHERE coin = 'SOL'").fetchone() == (1440,)
    kept = rows_per_coin_day(conn, "5m")
    assert kept == {("ETH", 0): 288, ("SOL", 1): before[("SOL", 1)], **{(c, 3): before[(c, 3)] for c in ("BTC", "ETH", "SOL")}}
    assert result.rollup_rows_held_back == {"5m": 288 + before[("SOL", 1)]}
    assert result.rows_pruned["candle_rollups/5m"] == sum(before.values()) - sum(kept.values())


def test_gap_and_repair_rows_go_with_their_minutes(conn: MemoryConnection, clock: FrozenClock) -> None:
    assert GAP_RETENTION == CANDLES.retention and GAP_RETENTION is not None
    btc = series("BTC", DAY0_MS, random_walk(1, 1440))
    btc[100] = btc[100]._replace(closed=False)  # never closed: the day never rolls up, its minutes stay
    store(conn, btc, clock())
    old, recent = DAY0_MS - 2 * DAY_MS, DAY0_MS + 40 * DAY_MS
    conn.executemany(
        "INSERT INTO candle_gaps (coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms, "
        "resolved_at_ms) VALUES (?, '1m', ?, ?, ?, ?, ?, ?)",
        [
            ("ETH", old, old + 5 * MINUTE_MS, "no_trades", 5, old, old),  # past retention: goes
            ("SOL", old, old + 2 * MINUTE_MS, "unfillable", 2, old, old),  # past retention: goes
            ("BTC", DAY0_MS + 10 * MINUTE_MS, DAY0_MS + 12 * MINUTE_MS, "filled", 2, DAY0_MS, DAY0_MS),  # minutes still stored
            ("ETH", recent, recent + MINUTE_MS, "detected", 1, recent, None),  # recent
        ],
    )
    conn.executemany(
        "INSERT INTO candle_repairs (coin, interval, open_time_ms, reason, queued_at_ms) VALUES (?, '1m', ?, ?, ?)",
        [("ETH", old, "missing", old), ("XYZ", old + MINUTE_MS, "unverified", old), ("ETH", recent, "missing", recent)],
    )
    clock.now_ms = DAY0_MS + (GAP_RETENTION.days + 2) * DAY_MS
    archive_finished_days(conn, clock())
    result = run_maintenance(conn, Ledger(conn, clock))
    assert result.rows_pruned["candle_gaps"] == 2 and result.rows_pruned["candle_repairs"] == 2
    assert conn.execute("SELECT coin, start_ms FROM candle_gaps ORDER BY start_ms").fetchall() == [
        ("BTC", DAY0_MS + 10 * MINUTE_MS), ("ETH", recent)
    ]
    assert conn.execute("SELECT coin, open_time_ms FROM candle_repairs").fetchall() == [("ETH", recent)]
    assert result.candle_rows_held_back == 1440  # BTC's day, whose filled gap row is kept with it


T0 = DAY0_MS
UNSEEN_MS = int(POLYMARKET_UNSEEN_AFTER.total_seconds() * 1000)


def summary(market_id: str, *, closed: bool) -> MarketSummary:
    return MarketSummary(market_id, f"Question {market_id}?", market_id, '["Yes", "No"]', '["0.4", "0.6"]',
                         None, None, None, not closed, closed)


def test_markets_closed_or_not_found_are_untracked_and_keep_their_history(conn: MemoryConnection, clock: FrozenClock) -> None:
    polymarket.track_markets(conn, [TrackedMarket("closed", "fed"), TrackedMarket("gone", "fed"), TrackedMarket("quiet", "etf")], T0)
    polymarket.upsert_market_summaries(conn, [summary("closed", closed=True), summary("gone", closed=False)], T0)
    later = T0 + UNSEEN_MS - DAY_MS
    polymarket.track_markets(conn, [TrackedMarket("quiet", "etf"), TrackedMarket("open", "fed")], later)
    newest = T0 + UNSEEN_MS + 1
    polymarket.track_markets(conn, [TrackedMarket("open", "fed")], newest)
    polymarket.track_markets(conn, [TrackedMarket("quiet", "etf")], later)  # seen 6 days before the newest

    clock.now_ms = newest + 60_000
    result = run_maintenance(conn, Ledger(conn, clock))

    assert result.markets_untracked == Untracked(closed=1, not_found=1)
    assert polymarket.tracked_market_ids(conn) == ["open", "quiet"]  # what the summary asks for now
    assert polymarket.untracked_markets(conn) == {"closed": "closed", "gone": "not_found"}
    assert conn.execute(
        "SELECT market_id, search_term, first_seen_at_ms, last_seen_at_ms, untracked_at_ms FROM polymarket_untracked_markets "
        "ORDER BY market_id"
    ).fetchall() == [("closed", "fed", T0, T0, clock.now_ms), ("gone", "fed", T0, T0, clock.now_ms)]
    # their last summaries (the closed market's final prices) stay
    assert {m for (m,) in conn.execute("SELECT market_id FROM polymarket_markets")} == {"closed", "gone"}

    # found again: tracked again, first seen when it was first seen
    polymarket.track_markets(conn, [TrackedMarket("gone", "fed")], clock.now_ms + 1)
    assert polymarket.tracked_market_ids(conn) == ["gone", "open", "quiet"]
    assert polymarket.untracked_markets(conn) == {"closed": "closed"}
    assert conn.execute("SELECT first_seen_at_ms FROM polymarket_tracked_markets WHERE market_id = 'gone'").fetchone() == (T0,)


def test_a_discovery_outage_untracks_nothing(conn: MemoryConnection, clock: FrozenClock) -> None:
    polymarket.track_markets(conn, [TrackedMarket("a", "fed"), TrackedMarket("b", "etf")], T0)
    clock.now_ms = T0 + 10 * UNSEEN_MS  # discovery found nothing since: the source is down, not the markets
    assert run_maintenance(conn, Ledger(conn, clock)).markets_untracked == Untracked(0, 0)
    assert polymarket.tracked_market_ids(conn) == ["a", "b"]


def test_untracked_markets_are_pruned_after_their_retention(conn: MemoryConnection, clock: FrozenClock) -> None:
    polymarket.track_markets(conn, [TrackedMarket("old", "fed"), TrackedMarket("new", "fed"), TrackedMarket("live", "etf")], T0)
    polymarket.upsert_market_summaries(
        conn, [summary("old", closed=True), summary("new", closed=False), summary("live", closed=False)], T0
    )
    ledger = Ledger(conn, clock)
    clock.now_ms = T0 + 60_000
    run_maintenance(conn, ledger)  # "old" untracked (closed)
    conn.execute("UPDATE polymarket_markets SET closed = 1 WHERE market_id = 'new'")
    kept_ms = int(POLYMARKET_UNTRACKED_RETENTION.total_seconds() * 1000)
    clock.now_ms = T0 + kept_ms - DAY_MS
    polymarket.track_markets(conn, [TrackedMarket("live", "etf")], clock.now_ms)
    run_maintenance(conn, ledger)  # "new" untracked (closed), a year after "old"

    clock.now_ms = T0 + kept_ms + 2 * 60_000
    polymarket.track_markets(conn, [TrackedMarket("live", "etf")], clock.now_ms)
    result = run_maintenance(conn, ledger)
    assert result.rows_pruned["polymarket_markets"] == 1
    assert polymarket.untracked_markets(conn) == {"new": "closed"}
    assert {m for (m,) in conn.execute("SELECT market_id FROM polymarket_markets")} == {"new", "live"}
    assert polymarket.tracked_market_ids(conn) == ["live"]
