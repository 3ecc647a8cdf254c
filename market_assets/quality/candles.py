"""Asset checks of ``hyperliquid/candles``: the streamed 1-minute candles of the last day.

Each check reads the window ``[now - CANDLES.quality.window_sec, now)`` of 1-minute buckets.
``ohlc_invariants`` is blocking: the features job computes only coins whose candles keep it
(``market_assets.indicators``), through the same SQL expression. ``universe_coverage`` and
``verified_minutes`` are WARN: a coin not seen for an hour or a minute not confirmed yet is not
wrong data (the dashboard's ``low_coverage`` and ``unverified_candles`` say the same); a broken,
duplicated or unexplained missing minute is (ERROR).
"""

from __future__ import annotations

import math

from market_assets.memory import quality_candles as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.rollups import HOUR_MS, MINUTE_MS
from market_assets.quality.outcome import (
    CheckOutcome,
    JsonScalar,
    Problem,
    QualityCheck,
    Severity,
    utc_minute,
)
from market_assets.registry import CANDLES, CHECK_PROBLEMS_LISTED

INTERVAL = CANDLES.data.scope["interval"]


def window_start_ms(now_ms: int) -> int:
    return now_ms - CANDLES.quality.window_sec * 1000


def _scalar(value: object) -> JsonScalar:
    """A stored value as JSON: a non-finite float as its text (JSON has no Inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def describe_broken(candle: sql.BrokenCandle) -> tuple[str, JsonScalar]:
    """The line a person reads for a broken candle, and the offending value."""
    values = {"open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close,
              "volume": candle.volume, "trades": candle.trades}
    fault = candle.fault
    if fault in values:
        return f"{fault} {candle_value(values[fault])} is not a finite number", _scalar(values[fault])
    if fault == "volume<0":
        return f"volume {candle.volume!r} is negative", _scalar(candle.volume)
    if fault == "trades<0":
        return f"trades {candle.trades!r} is negative or not a number", _scalar(candle.trades)
    if fault == "low>high":
        return f"low {candle.low!r} above high {candle.high!r}", _scalar(candle.low)
    if fault == "low>open/close":
        return f"low {candle.low!r} above min(open {candle.open!r}, close {candle.close!r})", _scalar(candle.low)
    return f"high {candle.high!r} below max(open {candle.open!r}, close {candle.close!r})", _scalar(candle.high)


def candle_value(value: object) -> str:
    return "NULL" if value is None else repr(value)


def ohlc_invariants(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    start = window_start_ms(now_ms)
    tally = sql.invariant_tally(conn, INTERVAL, start, now_ms)
    broken = sql.broken_candles(conn, INTERVAL, start, now_ms, CHECK_PROBLEMS_LISTED) if tally.failing else []
    problems = [Problem(c.coin, c.open_time_ms, *describe_broken(c)) for c in broken]
    return CheckOutcome(tally.checked, problems, tally.failing, {"window_start_ms": start})


def unique_minutes(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    start = window_start_ms(now_ms)
    tally = sql.alignment_tally(conn, INTERVAL, MINUTE_MS, start, now_ms)
    rows = sql.misaligned_candles(conn, INTERVAL, MINUTE_MS, start, now_ms, CHECK_PROBLEMS_LISTED) if tally.failing else []
    problems = []
    for row in rows:
        minute = row.open_time_ms - row.open_time_ms % MINUTE_MS
        if row.open_time_ms != minute:
            what = f"opens {row.open_time_ms - minute} ms into minute {utc_minute(minute)}: a second row of that minute"
            problems.append(Problem(row.coin, row.open_time_ms, what, row.open_time_ms - minute))
        else:
            what = f"closes at {row.close_time_ms}, not the minute's last millisecond {minute + MINUTE_MS - 1}"
            problems.append(Problem(row.coin, row.open_time_ms, what, row.close_time_ms))
    return CheckOutcome(tally.checked, problems, tally.failing, {"window_start_ms": start})


def continuity(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """Missing minutes between each coin's first minute of the window (the window's start when the
    coin has older ones) and its newest closed minute, not explained.

    A missing minute is explained by a ``no_trades`` or ``unfillable`` run of ``candle_gaps``, or
    by the repair queue while its entry is younger than ``unverified_after_sec`` (the streamer is
    repairing it; an older entry is a repair that is not coming, and fails). Minutes after a
    coin's newest candle are not judged: nobody may have traded yet, and ``no_trades`` is only
    known once a later candle exists (``universe_coverage`` and ``data_lag`` see a coin that stopped).
    """
    start = window_start_ms(now_ms)
    first_minute = start + -start % MINUTE_MS
    checked = 0
    jumps: list[tuple[str, int, int]] = []
    for span in sql.coin_spans(conn, INTERVAL, MINUTE_MS, start, now_ms):
        first = first_minute if span.earlier else span.first_ms
        expected = (span.newest_ms - first) // MINUTE_MS + 1
        checked += expected
        if span.minutes == expected:
            continue
        before = first - MINUTE_MS
        for minute in sql.closed_minutes(conn, span.coin, INTERVAL, MINUTE_MS, first, span.newest_ms):
            if minute - before > MINUTE_MS:
                jumps.append((span.coin, before + MINUTE_MS, minute))
            before = minute
    runs = _unexplained_runs(conn, jumps, start, now_ms) if jumps else []
    problems = [
        Problem(coin, run_start, f"{length} minute{'s' if length > 1 else ''} missing from {utc_minute(run_start)}"
                + (f", queued for repair since {utc_minute(queued)}" if queued is not None else
                   ", neither repaired nor recorded no_trades/unfillable"), length)
        for coin, run_start, length, queued in sorted(runs, key=lambda r: (r[1], r[0]))
    ]
    return CheckOutcome(checked, problems, sum(r[2] for r in runs), {"window_start_ms": start, "runs": len(runs)})


def _unexplained_runs(
    conn: MemoryConnection, jumps: list[tuple[str, int, int]], start_ms: int, now_ms: int
) -> list[tuple[str, int, int, int | None]]:
    """``(coin, first missing minute, run length, oldest queued_at_ms or None)`` of each run of
    unexplained missing minutes inside ``jumps``."""
    known = sql.excused(conn, INTERVAL, start_ms, now_ms)
    repairing_since = now_ms - int(CANDLES.warnings.unverified_after_sec or 0) * 1000
    quiet: dict[str, list[tuple[int, int]]] = {}
    for coin, gap_start, gap_end, _status in known.quiet:
        quiet.setdefault(coin, []).append((gap_start, gap_end))
    runs: list[tuple[str, int, int, int | None]] = []
    for coin, jump_start, jump_end in jumps:
        spans = quiet.get(coin, [])
        run: list[int] = []
        queued_at: int | None = None
        for minute in [*range(jump_start, jump_end, MINUTE_MS), None]:
            explained = minute is None or any(s <= minute < e for s, e in spans)
            if minute is not None and not explained:
                at = known.queued.get((coin, minute))
                explained = at is not None and at >= repairing_since
                if not explained and at is not None:
                    queued_at = at if queued_at is None else min(queued_at, at)
            if explained and run:
                runs.append((coin, run[0], len(run), queued_at))
                run, queued_at = [], None
            elif not explained and minute is not None:
                run.append(minute)
    return runs


def universe_coverage(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """Listed coins of the stored universe with a candle in the last hour, at least
    ``CANDLES.warnings.min_coverage`` of them (the dashboard's ``low_coverage`` rule)."""
    listed = sql.newest_of_listed(conn, INTERVAL)
    hour_start = now_ms - HOUR_MS
    missing = [(coin, newest) for coin, newest in listed if newest is None or newest < hour_start]
    coverage = 1.0 if not listed else (len(listed) - len(missing)) / len(listed)
    failed = coverage < CANDLES.warnings.min_coverage
    problems = [
        Problem(coin, newest, "no candle stored" if newest is None else f"no candle since {utc_minute(newest)}")
        for coin, newest in missing
    ] if failed else []
    details: dict[str, JsonScalar] = {
        "listed": len(listed), "covered": len(listed) - len(missing), "coverage": round(coverage, 4),
        "min_coverage": CANDLES.warnings.min_coverage,
        "missing": ", ".join(coin for coin, _ in missing[:CHECK_PROBLEMS_LISTED]),
    }
    return CheckOutcome(len(listed), problems, len(missing) if failed else 0, details)


def verified_minutes(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    """Closed minutes of the window still unconfirmed longer than ``unverified_after_sec`` after
    they closed (SPEC §8: the repair queue owes each one within minutes). ``checked`` counts the
    window's unconfirmed closed minutes: a confirmed one has nothing to examine."""
    start = window_start_ms(now_ms)
    closed_before = now_ms - int(CANDLES.warnings.unverified_after_sec or 0) * 1000
    tally = sql.unverified_tally(conn, INTERVAL, start, closed_before, MINUTE_MS)
    overdue = sql.overdue_unverified(conn, INTERVAL, start, closed_before, MINUTE_MS, CHECK_PROBLEMS_LISTED) if tally.failing else []
    problems = [
        Problem(coin, open_ms, f"unverified, closed {(now_ms - open_ms - MINUTE_MS) // 1000}s ago",
                (now_ms - open_ms - MINUTE_MS) // 1000)
        for coin, open_ms in overdue
    ]
    return CheckOutcome(tally.checked, problems, tally.failing, {"window_start_ms": start})


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck(
        CANDLES, "ohlc_invariants",
        "Every closed 1-minute candle of the last day has finite open/high/low/close/volume, "
        "low <= min(open, close), high >= max(open, close), low <= high, volume >= 0 and trades >= 0. "
        "Blocking: features skip a coin while it fails. On failure the problems name coin, minute and "
        "value. The stream refuses such frames, so the row came from elsewhere (a manual write, a bug): "
        "materialize hyperliquid/candles_history for that day in the Dagster UI (candleSnapshot's final "
        "candles replace the row, within its last 5,000 minutes), then re-run the features job.",
        ohlc_invariants, Severity.ERROR, blocking=True,
    ),
    QualityCheck(
        CANDLES, "unique_minutes",
        "One row per coin and minute: every 1-minute candle of the last day opens on a minute boundary "
        "and closes at its last millisecond (open + 59,999). The primary key refuses exact duplicates, "
        "so a row off the grid is a second row of its minute. On failure delete the misaligned row "
        "(named with its coin and open time; no writer of ours makes one); the minute's real row stays.",
        unique_minutes,
    ),
    QualityCheck(
        CANDLES, "continuity",
        "No coin misses a minute in the last day (from its first minute there to its newest closed "
        "one) unless REST showed nobody traded (no_trades) or it is beyond candleSnapshot's reach "
        "(unfillable); a minute queued for repair counts as missing once queued longer than the "
        "unverified threshold. On failure the problems name coin, first missing minute and run length: "
        "check the streamer's repair queue (dashboard repairQueue), restart the streamer (its start "
        "queues every missing minute of the warm-start horizon) or backfill the day (candles_history).",
        continuity,
    ),
    QualityCheck(
        CANDLES, "universe_coverage",
        "At least the registry's minimum coverage of the listed coins of the stored perp universe "
        "(the followed ones: a capped profile stores only its own) have a candle in the last hour. "
        "On failure the problems name the coins without one: check the streamer is running and "
        "subscribed to them (market stream logs), and whether they were delisted since the universe "
        "was stored (hyperliquid/funding refreshes it).",
        universe_coverage, Severity.WARN,
    ),
    QualityCheck(
        CANDLES, "verified_minutes",
        "Every closed minute of the last day is confirmed (SPEC §8) within the unverified threshold "
        "after it closed. On failure the problems name coin and minute: the REST repair queue is "
        "stuck or losing to new entries; check the streamer's log and its weight budget, and "
        "restart it if its repairs stopped.",
        verified_minutes, Severity.WARN,
    ),
)
