"""Asset checks of ``defillama/macro``: volumes and fees never stored as a made-up zero,
stablecoin supply kept per peg, and chains' TVL jumps shown.

The series are daily points stamped 00:00 UTC (the ingest re-reads today's through the day).
The checks read the last ``DEFILLAMA_MACRO.quality.window_sec`` of UTC days, today included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from market_assets.ingest.defillama import DAY_MS, DEX_VOLUME, FEES, utc_day
from market_assets.ingest.subjects import SUBJECT_ERRORS
from market_assets.memory import quality_defillama as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.quality_defillama import FinishedRun, Point
from market_assets.memory.runs import RunStatus
from market_assets.quality.outcome import CheckOutcome, Problem, QualityCheck, Severity
from market_assets.registry import DEFILLAMA_MACRO

PEG = re.compile(r"pegged[A-Z]+")
"""DefiLlama's peg types: ``pegged`` and the currency (``peggedUSD``, ``peggedEUR``, ``peggedREAL``;
``peggedVAR`` for variable pegs), as ``stablecoins`` names them in each asset's ``circulating``."""

WITHHELD = ("unreported/{series}", "unreported/non_finite_points")
"""Run metadata keys by which the ingest says it withheld a series' point (``MacroBatch.details``):
DefiLlama sent 0 or null, or a value that is not a number."""


_DAYS = DEFILLAMA_MACRO.quality.window_sec * 1000 // DAY_MS


def _since(now_ms: int) -> int:
    """The first day of the window."""
    return utc_day(now_ms) - DEFILLAMA_MACRO.quality.window_sec * 1000 + DAY_MS


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def explained(run: FinishedRun, series: str) -> bool:
    """Whether ``run`` says why it stored no point of ``series``: it failed, its request for the
    series failed (``subject_errors``), or it withheld DefiLlama's 0, null or non-number."""
    errors: Mapping[str, Any] = run.metadata.get(SUBJECT_ERRORS) or {}
    return (
        run.status is not RunStatus.SUCCEEDED
        or series in errors
        or any(key.format(series=series) in run.metadata for key in WITHHELD)
    )


def no_zero_volumes_or_fees(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """No stored volume or fee point is zero (or negative); and a day without one was explained.
    Checked: the points, and the days without one that a run lay within.

    A day lacks a point only when every run of it withheld or failed the series: a run that
    started and finished within the day, succeeded and says nothing about the series stored
    today's point (its clock was inside the day). So a day lacking a point with such a run means
    the point was lost after it was stored. A day with no run at all is not judged here: the
    channel's freshness (``data_lag``, ``stale``) tells an outage, and DefiLlama's 24 h totals
    cannot be fetched for a past day.
    """
    since = _since(now_ms)
    runs = sql.finished_runs(conn, DEFILLAMA_MACRO.source, DEFILLAMA_MACRO.name, since, now_ms)
    checked = unjudged = 0
    problems: list[Problem] = []
    for series in (DEX_VOLUME, FEES):
        stored = sql.points(conn, series, since, now_ms)
        checked += len(stored)
        problems.extend(
            Problem(f"{series}/{p.subject}", p.ts_ms, f"{series} of {p.subject} stored as {p.value:g} for {_day(p.ts_ms)}", p.value)
            for p in stored
            if not p.value > 0
        )
        held = {p.ts_ms for p in stored}
        for day in range(since, utc_day(now_ms) + DAY_MS, DAY_MS):
            within = [r for r in runs if day <= r.started_at_ms and r.finished_at_ms < day + DAY_MS]
            if day in held:
                continue
            if not within:
                unjudged += 1
                continue
            checked += 1
            silent = [r for r in within if not explained(r, series)]
            if silent:
                problems.append(
                    Problem(
                        f"{series}/total", day,
                        f"no {series} point for {_day(day)}, though run {silent[0].run_id} of that day succeeded "
                        "without withholding it or failing its request",
                    )
                )
    problems.sort(key=lambda p: (p.at_ms or 0, p.subject))
    return CheckOutcome(
        checked, problems, details={"window_start_ms": since, "runs": len(runs), "days_without_point_or_run": unjudged}
    )


def stablecoin_supply_per_peg(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    since = _since(now_ms)
    stored = sql.points(conn, "stablecoin_supply", since, now_ms)
    problems: list[Problem] = []
    for p in stored:
        if not PEG.fullmatch(p.subject):
            problems.append(
                Problem(p.subject, p.ts_ms, f"stablecoin supply of {p.subject!r} on {_day(p.ts_ms)} is no peg type: "
                        "supply summed across pegs adds EUR to USD", p.value)
            )
        elif not p.value > 0:
            problems.append(Problem(p.subject, p.ts_ms, f"stablecoin supply of {p.subject} on {_day(p.ts_ms)} is {p.value:g}", p.value))
    problems.sort(key=lambda p: (p.at_ms or 0, p.subject))
    return CheckOutcome(len(stored), problems, details={"window_start_ms": since})


def jump(before: Point, after: Point) -> float:
    """By what factor the value moved between two points, up or down (≥ 1; ``inf`` from or to 0)."""
    low, high = sorted((before.value, after.value))
    if high <= 0:
        return 1.0
    return high / low if low > 0 else float("inf")


def tvl_jumps(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """Each chain's (and the total's) TVL against its previous stored day: the day before, or the
    last one before a gap (the jump over the gap is still a jump). A pair of days both under the
    registry's floor is not judged: a chain holding a few thousand dollars triples on one deposit."""
    since = _since(now_ms)
    bound, floor = DEFILLAMA_MACRO.quality.bound, DEFILLAMA_MACRO.quality.floor
    stored = sql.points(conn, "tvl", since - DAY_MS, now_ms)
    checked = under_floor = 0
    problems: list[Problem] = []
    for before, after in pairwise(stored):
        if before.subject != after.subject or after.ts_ms < since:
            continue
        if max(before.value, after.value) < floor:
            under_floor += 1
            continue
        checked += 1
        factor = jump(before, after)
        if factor > bound:
            moved = "rose" if after.value > before.value else "fell"
            problems.append(
                Problem(
                    after.subject, after.ts_ms,
                    f"TVL of {after.subject} {moved} from {before.value:,.0f} on {_day(before.ts_ms)} to "
                    f"{after.value:,.0f} on {_day(after.ts_ms)} (x{factor:.2f} beyond x{bound:g})",
                    factor if factor != float("inf") else None,
                )
            )
    problems.sort(key=lambda p: (p.at_ms or 0, p.subject))
    return CheckOutcome(
        checked, problems, details={"window_start_ms": since, "bound": bound, "floor": floor, "under_floor": under_floor}
    )


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck(
        DEFILLAMA_MACRO,
        "no_zero_volumes_or_fees",
        f"No DEX volume or fees point of the last {_DAYS} days is stored as 0 or less (DefiLlama's 0 and null mean "
        "'not reported': the ingest withholds them and flags unreported/<series> in the run's metadata), and a "
        "day without a point had a run that said why (withheld, or the request failed). Failing: the series and "
        "day are listed. A stored 0 was written by something other than the ingest: delete the point and run "
        "`market defillama ingest`. A day lost without a word is an ingest bug: today's point comes back with "
        "the next run; a past day's 24 h total cannot be fetched again.",
        no_zero_volumes_or_fees,
    ),
    QualityCheck(
        DEFILLAMA_MACRO,
        "stablecoin_supply_per_peg",
        f"Every stablecoin supply point of the last {_DAYS} days is one peg type (peggedUSD, peggedEUR, ...) with a "
        "positive supply: never a sum across pegs (a 'total' adds euros to dollars). Failing: the subject, day "
        "and value are listed. A subject that is no peg was written by something other than the ingest "
        "(which sums per peg): delete its points and run `market defillama ingest`.",
        stablecoin_supply_per_peg,
    ),
    QualityCheck(
        DEFILLAMA_MACRO,
        "tvl_jumps",
        f"No chain's TVL (nor the total) moved by more than x{DEFILLAMA_MACRO.quality.bound:g} (up, or down to "
        f"1/{DEFILLAMA_MACRO.quality.bound:g}) from its previous stored day over the last {_DAYS} days; a pair of "
        f"days both under ${DEFILLAMA_MACRO.quality.floor:,.0f} is noise and not judged (thresholds: the registry). "
        "A WARN: the jump may be real (an exploit, a bridge, a migration) or DefiLlama's error, and this check is the flag: it lists the chain, day, both "
        "values and the factor while the jump is in the window. Compare with defillama.com/chain/<name>; a "
        "source error DefiLlama corrects is stored again by `market defillama ingest` while it is today's point.",
        tvl_jumps,
        severity=Severity.WARN,
    ),
)
