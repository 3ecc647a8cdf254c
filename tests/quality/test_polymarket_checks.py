"""The Polymarket checks over Gamma's recorded markets: a price of 1.2, a missing price, a binary
market summing to 1.2 and a tracked market never summarized turn them red."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from market_assets.ingest.polymarket import SummaryBatch, store_summary, summary_row
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.polymarket import (
    MarketSummary,
    TrackedMarket,
    track_markets,
    untrack_markets,
)
from market_assets.quality.catalog import checks_of
from market_assets.quality.outcome import CheckOutcome
from market_assets.quality.polymarket import (
    binary_prices_sum_to_one,
    outcomes_match_prices,
    prices_in_range,
    tracked_markets_summarized,
)
from market_assets.registry import (
    POLYMARKET_DISCOVERY,
    POLYMARKET_SUMMARY,
    POLYMARKET_UNSEEN_AFTER,
)
from market_assets.sources.polymarket import parse_markets
from tests.conftest import T0_MS

FIXTURE = Path(__file__).parents[2] / "market_assets" / "fixtures" / "polymarket" / "gamma_markets_2026-01-10.json"
STALE_MS = POLYMARKET_SUMMARY.stale_after_sec * 1000


def recorded_markets(conn: MemoryConnection) -> list[MarketSummary]:
    """Gamma's 100 recorded markets, tracked by discovery and stored by the summary's own store."""
    rows = [summary_row(m) for m in parse_markets(FIXTURE.read_bytes())]
    track_markets(conn, [TrackedMarket(r.market_id, "bitcoin") for r in rows], T0_MS)
    store_summary(conn, SummaryBatch(rows, len(rows)), T0_MS + 60_000)
    return rows


def rewrite(conn: MemoryConnection, row: MarketSummary, **changes: Any) -> MarketSummary:
    """Store ``row`` again through the summary's writer with ``changes`` (the seeded fault)."""
    changed = row._replace(**changes)
    store_summary(conn, SummaryBatch([changed], 1), T0_MS + 120_000)
    return changed


def problems(outcome: CheckOutcome) -> list[tuple[str, int | None, object]]:
    return [(p.subject, p.at_ms, p.value) for p in outcome.problems]


def test_the_channels_have_their_checks() -> None:
    assert [c.name for c in checks_of(POLYMARKET_SUMMARY)] == ["prices_in_range", "outcomes_match_prices", "binary_prices_sum_to_one"]
    assert [c.name for c in checks_of(POLYMARKET_DISCOVERY)] == ["tracked_markets_summarized"]


def test_gammas_recorded_markets_pass_every_check(conn: MemoryConnection) -> None:
    rows = recorded_markets(conn)
    assert len(rows) == 100 and all(json.loads(r.outcome_prices or "[]") for r in rows)
    now = T0_MS + 2 * STALE_MS
    assert prices_in_range(conn, now).passed and prices_in_range(conn, now).checked == 200
    assert outcomes_match_prices(conn, now).passed and outcomes_match_prices(conn, now).checked == 100
    binary = binary_prices_sum_to_one(conn, now)
    assert binary.passed and binary.checked == 100  # all 100 open and binary; the widest is 0.9995 + 0.0005
    assert tracked_markets_summarized(conn, now).passed and tracked_markets_summarized(conn, now).checked == 100


def test_a_price_of_1_2_is_named_by_market_and_value(conn: MemoryConnection) -> None:
    row = recorded_markets(conn)[17]
    rewrite(conn, row, outcome_prices='["1.2", "0"]')
    outcome = prices_in_range(conn, T0_MS)
    assert problems(outcome) == [(row.market_id, None, 1.2)]
    assert row.question and row.question in outcome.problems[0].what and "'Yes'" in outcome.problems[0].what


def test_a_price_that_is_no_number_is_named(conn: MemoryConnection) -> None:
    row = recorded_markets(conn)[3]
    rewrite(conn, row, outcome_prices='["0.4", "NaN"]')
    assert problems(prices_in_range(conn, T0_MS)) == [(row.market_id, None, "NaN")]


def test_outcomes_and_prices_of_different_lengths_are_named(conn: MemoryConnection) -> None:
    rows = recorded_markets(conn)
    rewrite(conn, rows[5], outcome_prices='["0.2", "0.3", "0.5"]')
    rewrite(conn, rows[9], outcome_prices="0.5,0.5")
    rewrite(conn, rows[11], outcomes=None)
    outcome = outcomes_match_prices(conn, T0_MS)
    assert sorted(problems(outcome)) == sorted([(rows[5].market_id, None, 3), (rows[9].market_id, None, None), (rows[11].market_id, None, None)])
    assert outcome.failing == 3 and outcome.checked == 100


def test_a_market_without_outcomes_or_prices_is_counted_not_failed(conn: MemoryConnection) -> None:
    row = recorded_markets(conn)[0]
    rewrite(conn, row, outcomes=None, outcome_prices=None)
    outcome = outcomes_match_prices(conn, T0_MS)
    assert outcome.passed and outcome.checked == 99 and outcome.details["markets_without_prices"] == 1


def test_an_open_binary_market_summing_to_1_2_is_named_with_its_sum(conn: MemoryConnection) -> None:
    rows = recorded_markets(conn)
    rewrite(conn, rows[2], outcome_prices='["0.6", "0.6"]')
    rewrite(conn, rows[4], outcome_prices='["0.505", "0.505"]')  # within the tolerance
    outcome = binary_prices_sum_to_one(conn, T0_MS)
    assert problems(outcome) == [(rows[2].market_id, None, 1.2)]
    assert "0.6 + 0.6 sum to 1.2" in outcome.problems[0].what


def test_closed_markets_are_left_to_the_range_check(conn: MemoryConnection) -> None:
    rows = recorded_markets(conn)
    rewrite(conn, rows[2], outcome_prices='["0", "0"]', closed=True)
    rewrite(conn, rows[3], outcome_prices='["1", "0"]', active=False)
    outcome = binary_prices_sum_to_one(conn, T0_MS)
    assert outcome.passed and outcome.checked == 98 and outcome.details["closed_or_inactive"] == 2


def test_an_untracked_markets_frozen_row_is_not_checked(conn: MemoryConnection) -> None:
    row = recorded_markets(conn)[8]
    rewrite(conn, row, outcome_prices='["1.2", "0"]', closed=True)
    assert not prices_in_range(conn, T0_MS).passed
    untrack_markets(conn, int(POLYMARKET_UNSEEN_AFTER.total_seconds() * 1000), T0_MS + 180_000)  # maintenance untracks the closed market
    outcome = prices_in_range(conn, T0_MS + 180_000)
    assert outcome.passed and outcome.checked == 198


def test_a_tracked_market_never_summarized_is_named_with_its_term(conn: MemoryConnection) -> None:
    recorded_markets(conn)
    found_at = T0_MS + 5_000
    track_markets(conn, [TrackedMarket("999001", "ethereum")], found_at)
    assert tracked_markets_summarized(conn, found_at + STALE_MS).passed  # not yet past the summary's stale threshold
    outcome = tracked_markets_summarized(conn, found_at + STALE_MS + 1)
    assert problems(outcome) == [("999001", found_at, None)] and "'ethereum'" in outcome.problems[0].what
    assert outcome.checked == 101
