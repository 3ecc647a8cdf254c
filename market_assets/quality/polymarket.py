"""Asset checks of Polymarket: the summary rows of the tracked markets, and the registry behind them.

The summary keeps each market's ``outcomes`` and ``outcomePrices`` as the JSON text Gamma sent
(``["Yes", "No"]``, ``["0.0105", "0.9895"]``); the checks parse them as a reader would. Only
tracked markets are read: an untracked market's last row stays a year for analysis, frozen,
and a check over it could never turn green again.
"""

from __future__ import annotations

import json
import math
from typing import Any

from market_assets.memory import quality_polymarket as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.quality_polymarket import StoredSummary
from market_assets.quality.outcome import CheckOutcome, Problem, QualityCheck
from market_assets.registry import POLYMARKET_DISCOVERY, POLYMARKET_SUMMARY


def json_list(text: str | None) -> list[Any] | None:
    """The JSON array ``text`` holds; ``None`` when it is missing or not an array."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def price(raw: Any) -> float | None:
    """A price as a finite number (Gamma sends decimal strings); ``None`` when it is not one."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _label(market: StoredSummary) -> str:
    return f"{market.market_id} ({market.question!r})" if market.question else market.market_id


def is_open(market: StoredSummary) -> bool:
    """Trading, as discovery reads it: not reported inactive, not closed."""
    return market.active is not False and market.closed is not True


def prices_in_range(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    checked = 0
    problems: list[Problem] = []
    for market in sql.tracked_summaries(conn):
        outcomes = json_list(market.outcomes) or []
        for i, raw in enumerate(json_list(market.outcome_prices) or []):
            checked += 1
            value = price(raw)
            name = repr(outcomes[i]) if i < len(outcomes) else f"#{i + 1}"
            if value is None:
                problems.append(Problem(market.market_id, None, f"{_label(market)}: price of {name} is not a number", str(raw)))
            elif not 0.0 <= value <= 1.0:
                problems.append(Problem(market.market_id, None, f"{_label(market)}: price of {name} is {raw}, outside [0, 1]", value))
    return CheckOutcome(checked, problems)


def outcomes_match_prices(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    markets = sql.tracked_summaries(conn)
    problems: list[Problem] = []
    without = 0
    for market in markets:
        if market.outcomes is None and market.outcome_prices is None:
            without += 1
            continue
        outcomes, prices = json_list(market.outcomes), json_list(market.outcome_prices)
        if outcomes is None or prices is None:
            bad = ", ".join(
                f"{field} {text!r} is not a JSON list"
                for field, text, parsed in (("outcomes", market.outcomes, outcomes), ("prices", market.outcome_prices, prices))
                if parsed is None
            )
            problems.append(Problem(market.market_id, None, f"{_label(market)}: {bad}"))
        elif len(outcomes) != len(prices):
            problems.append(
                Problem(market.market_id, None, f"{_label(market)}: {len(outcomes)} outcomes but {len(prices)} prices", len(prices))
            )
    return CheckOutcome(len(markets) - without, problems, details={"markets_without_prices": without})


def binary_prices_sum_to_one(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """Open two-outcome markets only: Gamma prices both sides of one order book, so they sum to 1.
    A closed or inactive market's prices are its payout (``["1", "0"]``, ``["0.5", "0.5"]``), which
    the range check still reads; they are not a book the sum could test."""
    tolerance = POLYMARKET_SUMMARY.quality.tolerance
    checked = not_open = 0
    problems: list[Problem] = []
    for market in sql.tracked_summaries(conn):
        outcomes, raw = json_list(market.outcomes), json_list(market.outcome_prices)
        if outcomes is None or raw is None or len(outcomes) != 2 or len(raw) != 2:
            continue  # not binary, or the other checks' failure
        if not is_open(market):
            not_open += 1
            continue
        prices = [price(p) for p in raw]
        if None in prices:
            continue  # prices_in_range names it
        checked += 1
        total = sum(p for p in prices if p is not None)
        if abs(total - 1.0) > tolerance:
            problems.append(
                Problem(market.market_id, None, f"{_label(market)}: prices {raw[0]} + {raw[1]} sum to {total:g}, not 1 ± {tolerance:g}", total)
            )
    return CheckOutcome(checked, problems, details={"closed_or_inactive": not_open, "tolerance": tolerance})


def tracked_markets_summarized(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """Every market tracked longer than the summary's stale threshold has a summary row."""
    before = now_ms - POLYMARKET_SUMMARY.stale_after_sec * 1000
    return CheckOutcome(
        sql.tracked_since(conn, before),
        [
            Problem(m.market_id, m.first_seen_at_ms, f"tracked since its discovery by {m.search_term!r}, no summary stored")
            for m in sql.unsummarized(conn, before)
        ],
        details={"first_seen_before_ms": before},
    )


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck(
        POLYMARKET_SUMMARY,
        "prices_in_range",
        "Every outcome price of every tracked market is a number within [0, 1] (a probability). Failing: the "
        "market id, question, outcome and price are listed. Gamma never sends such a price, so the row was "
        "misread or written by something else: compare it with Gamma (GET /markets?id=<id>), then run "
        "`market polymarket summary` to store the market's row again.",
        prices_in_range,
    ),
    QualityCheck(
        POLYMARKET_SUMMARY,
        "outcomes_match_prices",
        "Every tracked market's outcomes and outcome prices are JSON lists of the same length (one price per "
        "outcome); a market with neither has published no prices yet and is only counted. Failing: the market "
        "and the mismatch are listed. Compare with Gamma (GET /markets?id=<id>) and run `market polymarket "
        "summary`; if Gamma itself sends the mismatch, the market is malformed at the source.",
        outcomes_match_prices,
    ),
    QualityCheck(
        POLYMARKET_SUMMARY,
        "binary_prices_sum_to_one",
        "The two prices of every open two-outcome market sum to 1 within the registry's tolerance (both are "
        "read from one order book). Closed or inactive markets are skipped: their prices are the payout, and "
        "the market leaves the tracked registry at the next maintenance. Failing: the market, its prices and "
        "their sum are listed; a stale or half-written row: run `market polymarket summary` and compare with Gamma.",
        binary_prices_sum_to_one,
    ),
    QualityCheck(
        POLYMARKET_DISCOVERY,
        "tracked_markets_summarized",
        "Every market discovery has tracked for longer than the summary's stale threshold has a summary row. "
        "Failing: the market id, the search term that found it and when are listed. Look at the latest "
        "polymarket/summary run: its subject_errors (the request failed: the next run asks again) or "
        "not_returned (Gamma no longer serves the market by id; discovery stops finding it and it is untracked "
        "after POLYMARKET_UNSEEN_AFTER). `market polymarket summary` runs one now.",
        tracked_markets_summarized,
    ),
)
