"""The funding checks: a missing hour, a rate beyond the cap and a revised settled hour turn them red."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from market_assets.memory.connection import MemoryConnection
from market_assets.memory.hyperliquid import (
    FundingRow,
    UniverseRow,
    upsert_funding,
    upsert_universe,
)
from market_assets.memory.rollups import HOUR_MS
from market_assets.quality.catalog import checks_of
from market_assets.quality.funding import (
    hourly_continuity,
    rate_bound,
    settled_hours_unchanged,
)
from market_assets.quality.outcome import CheckOutcome
from market_assets.registry import FUNDING
from market_assets.sources.hyperliquid import parse_funding
from tests.conftest import T0_MS

NOW_MS = T0_MS - T0_MS % HOUR_MS + 25 * 60_000
"""Twenty-five minutes into an hour: the hour before it has settled."""
CURRENT_HOUR = NOW_MS - NOW_MS % HOUR_MS
WINDOW_HOURS = FUNDING.quality.window_sec // 3600
FIXTURE = Path(__file__).parents[2] / "market_assets" / "fixtures" / "hyperliquid"


def rate(coin: str, hour_ms: int) -> Decimal:
    return Decimal(f"0.0000{len(coin)}{hour_ms // HOUR_MS % 97:02d}")


def settled(coin: str, first_ms: int, last_ms: int) -> list[FundingRow]:
    """Settled rows of every hour of ``[first_ms, last_ms]``."""
    return [
        FundingRow(coin, hour, rate(coin, hour), Decimal("0.0001"), True, hour + 48)
        for hour in range(first_ms, last_ms + 1, HOUR_MS)
    ]


def universe(conn: MemoryConnection, listed: tuple[str, ...], delisted: tuple[str, ...] = ()) -> None:
    rows = [UniverseRow(coin, "", i, 3, 20, False) for i, coin in enumerate(listed)]
    rows += [UniverseRow(coin, "", 100 + i, 3, 20, True) for i, coin in enumerate(delisted)]
    upsert_universe(conn, rows, NOW_MS)


def clean_funding(conn: MemoryConnection) -> None:
    """BTC and ETH settled for three days up to the last hour, and the current hour's estimate."""
    universe(conn, ("BTC", "ETH"))
    for coin in ("BTC", "ETH"):
        upsert_funding(conn, settled(coin, CURRENT_HOUR - 72 * HOUR_MS, CURRENT_HOUR - HOUR_MS), NOW_MS - 20 * 60_000)
        upsert_funding(conn, [FundingRow(coin, CURRENT_HOUR, Decimal("0.0000125"), None, False, NOW_MS)], NOW_MS)


def problems(outcome: CheckOutcome) -> list[tuple[str, int | None, object]]:
    return [(p.subject, p.at_ms, p.value) for p in outcome.problems]


def test_the_channel_has_the_three_funding_checks() -> None:
    assert [c.name for c in checks_of(FUNDING)] == ["hourly_continuity", "rate_bound", "settled_hours_unchanged"]
    assert all(c.description and not c.blocking for c in checks_of(FUNDING))


def test_clean_funding_passes_every_check(conn: MemoryConnection) -> None:
    clean_funding(conn)
    continuity = hourly_continuity(conn, NOW_MS)
    assert continuity.passed and continuity.checked == 2 * WINDOW_HOURS
    bound = rate_bound(conn, NOW_MS)
    assert bound.passed and bound.checked == 2 * (WINDOW_HOURS + 1)  # the current hour's estimate too
    unchanged = settled_hours_unchanged(conn, NOW_MS)
    assert unchanged.passed and unchanged.checked == 2 * WINDOW_HOURS


def test_a_missing_hour_of_one_coin_is_named_by_coin_and_hour(conn: MemoryConnection) -> None:
    clean_funding(conn)
    hole = CURRENT_HOUR - 7 * HOUR_MS
    conn.execute("DELETE FROM funding WHERE coin = 'ETH' AND hour_ms = ?", (hole,))
    outcome = hourly_continuity(conn, NOW_MS)
    assert not outcome.passed and outcome.failing == 1
    assert problems(outcome) == [("ETH", hole, None)]
    assert "ETH" in outcome.problems[0].what and outcome.summary().startswith(f"failed: 1 of {2 * WINDOW_HOURS}")


def test_a_hole_at_the_window_start_counts_when_the_coin_had_hours_before_it(conn: MemoryConnection) -> None:
    clean_funding(conn)
    first = CURRENT_HOUR - WINDOW_HOURS * HOUR_MS
    conn.execute("DELETE FROM funding WHERE coin = 'BTC' AND hour_ms IN (?, ?)", (first, first + HOUR_MS))
    assert problems(hourly_continuity(conn, NOW_MS)) == [("BTC", first, None), ("BTC", first + HOUR_MS, None)]


def test_a_followed_coin_whose_hours_stopped_owes_every_hour_since(conn: MemoryConnection) -> None:
    clean_funding(conn)
    conn.execute("DELETE FROM funding WHERE coin = 'ETH' AND hour_ms >= ?", (CURRENT_HOUR - 3 * HOUR_MS,))
    outcome = hourly_continuity(conn, NOW_MS)
    assert problems(outcome) == [("ETH", CURRENT_HOUR - h * HOUR_MS, None) for h in (3, 2, 1)]


def test_a_new_listing_owes_nothing_before_its_first_funding_hour(conn: MemoryConnection) -> None:
    clean_funding(conn)
    universe(conn, ("BTC", "ETH", "NEW"))
    upsert_funding(conn, settled("NEW", CURRENT_HOUR - 5 * HOUR_MS, CURRENT_HOUR - HOUR_MS), NOW_MS)
    outcome = hourly_continuity(conn, NOW_MS)
    assert outcome.passed and outcome.checked == 2 * WINDOW_HOURS + 5


def test_a_delisted_coin_owes_hours_only_up_to_its_own_last_one(conn: MemoryConnection) -> None:
    clean_funding(conn)
    upsert_funding(conn, settled("OLD", CURRENT_HOUR - 60 * HOUR_MS, CURRENT_HOUR - 10 * HOUR_MS), NOW_MS)
    universe(conn, ("BTC", "ETH", "OLD"))
    listed = hourly_continuity(conn, NOW_MS)  # while listed, its last nine hours are missing
    assert [(s, t) for s, t, _ in problems(listed)] == [("OLD", CURRENT_HOUR - h * HOUR_MS) for h in range(9, 0, -1)]
    universe(conn, ("BTC", "ETH"), delisted=("OLD",))
    delisted = hourly_continuity(conn, NOW_MS)
    assert delisted.passed and delisted.checked == 2 * WINDOW_HOURS + WINDOW_HOURS - 9


def test_a_listed_coin_with_no_hour_in_the_window_owes_all_of_them(conn: MemoryConnection) -> None:
    clean_funding(conn)
    conn.execute("DELETE FROM funding WHERE coin = 'ETH' AND hour_ms >= ?", (CURRENT_HOUR - WINDOW_HOURS * HOUR_MS,))
    outcome = hourly_continuity(conn, NOW_MS)
    assert outcome.failing == WINDOW_HOURS and {p.subject for p in outcome.problems} == {"ETH"}
    assert outcome.problems[0].at_ms == CURRENT_HOUR - WINDOW_HOURS * HOUR_MS


def test_a_rate_beyond_the_cap_is_named_with_its_value(conn: MemoryConnection) -> None:
    clean_funding(conn)
    hour = CURRENT_HOUR - 5 * HOUR_MS
    upsert_funding(conn, [FundingRow("BTC", hour, Decimal("-0.05"), None, False, hour)], NOW_MS)  # an estimate never replaces a settled rate
    assert rate_bound(conn, NOW_MS).passed
    conn.execute("UPDATE funding SET funding_rate = -0.05 WHERE coin = 'BTC' AND hour_ms = ?", (hour,))
    upsert_funding(conn, [FundingRow("ETH", CURRENT_HOUR, Decimal("Infinity"), None, False, NOW_MS)], NOW_MS)
    outcome = rate_bound(conn, NOW_MS)
    assert problems(outcome) == [("BTC", hour, -0.05), ("ETH", CURRENT_HOUR, "inf")]  # JSON has no infinity
    assert "settled rate -0.05 of BTC" in outcome.problems[0].what


def test_a_rate_at_the_cap_passes(conn: MemoryConnection) -> None:
    clean_funding(conn)
    upsert_funding(conn, [FundingRow("BTC", CURRENT_HOUR, Decimal(str(FUNDING.quality.bound)), None, False, NOW_MS)], NOW_MS)
    assert rate_bound(conn, NOW_MS).passed


def test_recorded_funding_history_passes_the_rate_bound(conn: MemoryConnection) -> None:
    rows = parse_funding((FIXTURE / "info_fundingHistory_BTC_2023-05-12_to_2023-05-23.json").read_bytes())
    upsert_funding(conn, [FundingRow(r.coin, r.hour_ms, r.funding_rate, r.premium, True, r.time) for r in rows], rows[-1].time)
    outcome = rate_bound(conn, rows[-1].hour_ms + HOUR_MS)
    assert outcome.passed and outcome.checked == len([r for r in rows if r.hour_ms >= rows[-1].hour_ms - 47 * HOUR_MS])


def test_a_settled_hour_upserted_again_with_another_rate_is_named(conn: MemoryConnection) -> None:
    clean_funding(conn)
    hour = CURRENT_HOUR - 30 * HOUR_MS
    upsert_funding(conn, settled("BTC", hour, hour), NOW_MS - 60_000)  # the same rate again: no revision
    assert settled_hours_unchanged(conn, NOW_MS).passed
    revised_at = NOW_MS - 60_000
    upsert_funding(conn, [FundingRow("BTC", hour, Decimal("0.000777"), None, True, hour + 48)], revised_at)
    outcome = settled_hours_unchanged(conn, NOW_MS)
    assert problems(outcome) == [("BTC", hour, 0.000777)]
    assert f"from {float(rate('BTC', hour)):g} to 0.000777" in outcome.problems[0].what
    # Two days later the revision has left the window.
    assert settled_hours_unchanged(conn, revised_at + FUNDING.quality.window_sec * 1000 + 1).passed


def test_an_estimate_replaced_by_its_settled_rate_is_no_revision(conn: MemoryConnection) -> None:
    clean_funding(conn)
    upsert_funding(conn, [FundingRow("BTC", CURRENT_HOUR, Decimal("0.0000311"), None, True, CURRENT_HOUR + 48)], NOW_MS + HOUR_MS)
    assert settled_hours_unchanged(conn, NOW_MS + HOUR_MS).passed
    # BTC's hour settled, ETH's estimate is no settled rate: ETH owes that hour until its history comes.
    assert problems(hourly_continuity(conn, NOW_MS + HOUR_MS)) == [("ETH", CURRENT_HOUR, None)]
