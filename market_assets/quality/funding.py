"""Asset checks of ``hyperliquid/funding``: every hour settled, every rate sane, no settled hour revised.

The window is ``FUNDING.quality.window_sec`` of whole hours before the current one.
A settled hour is one ``fundingHistory`` returned (``settled = 1``); the current hour's row is the
asset contexts' estimate, overwritten once the hour settles.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from market_assets.memory import quality_funding as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.quality_funding import CoinHours
from market_assets.memory.rollups import HOUR_MS
from market_assets.quality.outcome import CheckOutcome, Problem, QualityCheck
from market_assets.registry import FUNDING

_HOURS = FUNDING.quality.window_sec * 1000 // HOUR_MS
_SINCE = f"{_HOURS}h"
"""The window as ``market funding --since`` takes it."""


def _window(now_ms: int) -> tuple[int, int]:
    """``[since, until)``: the window's whole hours, up to (not including) the current hour."""
    until = now_ms - now_ms % HOUR_MS
    return until - FUNDING.quality.window_sec * 1000, until


def _hour(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:00 UTC")


def expected_span(coin: CoinHours, since_ms: int, newest_ms: int) -> tuple[int, int] | None:
    """The first and last settled hour ``coin`` owes the window, or ``None`` when it owes none.

    It starts at the window's start when the coin had settled hours before it, else at its first
    settled hour in the window (a new listing owes nothing before its first funding). A coin the
    ingest follows (listed, not delisted) owes every hour up to ``newest_ms``, the newest hour
    settled for any coin; a delisted coin, or one no longer followed (a capped profile marks it
    delisted too), stops where its own hours stop: when it left is not recorded, and the hours
    after it has no funding to owe.
    """
    if not coin.hours and (coin.last_before is None or not coin.listed):
        return None
    first = since_ms if coin.last_before is not None else coin.hours[0]
    last = newest_ms if coin.listed else coin.hours[-1]
    return (first, last) if first <= last else None


def hourly_continuity(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    since, until = _window(now_ms)
    coins = sql.settled_hours(conn, since, until)
    newest = max((c.hours[-1] for c in coins if c.hours), default=None)
    if newest is None:
        return CheckOutcome(0, (), details={"window_start_ms": since, "coins": 0})
    expected = 0
    missing: list[Problem] = []
    for coin in coins:
        span = expected_span(coin, since, newest)
        if span is None:
            continue
        held = set(coin.hours)
        owed = range(span[0], span[1] + HOUR_MS, HOUR_MS)
        expected += len(owed)
        missing.extend(
            Problem(coin.coin, hour, f"no settled funding for {coin.coin} at {_hour(hour)}")
            for hour in owed
            if hour not in held
        )
    missing.sort(key=lambda p: (p.at_ms, p.subject))
    return CheckOutcome(
        expected, missing, details={"window_start_ms": since, "newest_settled_ms": newest, "coins": len(coins)}
    )


def rate_bound(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    since, until = _window(now_ms)
    bound = FUNDING.quality.bound
    beyond = sql.rates_beyond(conn, since, until + HOUR_MS, bound)
    return CheckOutcome(
        sql.rows_in_window(conn, since, until + HOUR_MS),
        [
            Problem(
                r.coin,
                r.hour_ms,
                f"{'settled' if r.settled else 'current'} rate {r.funding_rate:g} of {r.coin} at {_hour(r.hour_ms)} "
                f"is beyond ±{bound:g} an hour",
                r.funding_rate if math.isfinite(r.funding_rate) else str(r.funding_rate),
            )
            for r in beyond
        ],
        details={"window_start_ms": since, "bound": bound},
    )


def settled_hours_unchanged(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    since, until = _window(now_ms)
    revisions = sql.revisions_between(conn, now_ms - FUNDING.quality.window_sec * 1000, now_ms)
    return CheckOutcome(
        sql.rows_in_window(conn, since, until, settled_only=True),
        [
            Problem(
                r.coin,
                r.hour_ms,
                f"settled rate of {r.coin} at {_hour(r.hour_ms)} changed from {r.old_rate:g} to {r.new_rate:g} "
                f"at {datetime.fromtimestamp(r.revised_at_ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC",
                r.new_rate,
            )
            for r in revisions
        ],
        details={"window_start_ms": since},
    )


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck(
        FUNDING,
        "hourly_continuity",
        f"Every coin has a settled funding rate for every hour of the last {_HOURS} hours, from the window's start "
        "(or its listing) to the newest hour settled for any coin; a delisted or no longer followed coin up to "
        "its own last hour. Failing: each missing coin and hour is listed. The run's subject_errors usually say "
        "why (that coin's fundingHistory failed). The ingest resumes each coin after its newest settled hour, so "
        "a hole at the end fills at the next run (`market hyperliquid funding` runs one now). A hole inside a "
        f"coin's hours is not fetched again: look the hour up in fundingHistory (`market funding COIN --since {_SINCE}` "
        "shows what is stored); if Hyperliquid has no rate for it either, no funding was paid that hour and the "
        "failure leaves the window when the hour does.",
        hourly_continuity,
    ),
    QualityCheck(
        FUNDING,
        "rate_bound",
        f"Every funding rate of the last {_HOURS} hours (settled hours and the current hour's estimate) is finite "
        f"and within ±{FUNDING.quality.bound:g} ({FUNDING.quality.bound:.0%}) an hour, the registry's bound (Hyperliquid's cap). Failing: the coin, "
        "hour and rate "
        "are listed; such a rate was misread (a unit or parsing error), not paid. Compare it with Hyperliquid's "
        f"fundingHistory for that coin and hour (`market funding COIN --since {_SINCE}` shows the stored rows) and fix "
        "the parser; the memory keeps the row as stored.",
        rate_bound,
    ),
    QualityCheck(
        FUNDING,
        "settled_hours_unchanged",
        f"No settled funding hour changed in the last {_HOURS} hours (the memory records every change to a settled "
        "rate in funding_revisions). Failing: each coin, hour and old -> new rate is listed. A settled rate is "
        "final at Hyperliquid, so a change means one of the two reads was wrong: compare both with "
        "fundingHistory for that coin and hour; the funding row holds the newer one, the revision the older.",
        settled_hours_unchanged,
    ),
)
