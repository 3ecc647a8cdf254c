"""Asset check of ``hyperliquid/maintenance``: rollups equal the aggregate of their 1-minute rows.

A sample of ``MAINTENANCE.quality.sample`` buckets per level (5m, 1h, 1d), each compared with
its closed minutes aggregated directly (not through the level below, as maintenance computes
1h from 5m and 1d from 1h): open, high, low, close, trades, minutes, confirmed minutes and the
complete flag exactly; volume within what summing in another order can change (maintenance
sums per level).

**Which buckets.** Only current ones (nothing of them queued in ``pending_rollups``) whose
minutes are still stored. The sample is deterministic: each coin's newest such bucket first,
then each coin's second newest, and so on, the coins taken in turn from an offset that moves
with the hour, so successive hourly evaluations cover every coin's newest buckets.
A bucket whose minutes number fewer than its rollup's ``minutes`` lost some to retention (a
day pruned, then partly written again by a manual backfill): maintenance never replaces a
rollup by one of fewer minutes, so it is skipped, counted in ``details``, not a mismatch.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from market_assets.memory import quality_rollups as sql
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.rollups import HOUR_MS, LEVELS, RollupLevel
from market_assets.quality.outcome import (
    CheckOutcome,
    JsonScalar,
    Problem,
    QualityCheck,
    utc_minute,
)
from market_assets.registry import MAINTENANCE


def sample(candidates: Sequence[sql.StoredRollup], size: int, now_ms: int) -> list[sql.StoredRollup]:
    """``size`` of ``candidates`` (by coin, newest first within a coin): every coin's newest,
    then every coin's second newest, …, the coins from an offset that moves by ``size`` an hour."""
    by_coin: dict[str, list[sql.StoredRollup]] = {}
    for rollup in candidates:
        by_coin.setdefault(rollup.coin, []).append(rollup)
    coins = sorted(by_coin)
    if not coins:
        return []
    offset = (now_ms // HOUR_MS * size) % len(coins)
    turn = coins[offset:] + coins[:offset]
    ranked = sorted(
        ((rank, position, rollup) for position, coin in enumerate(turn) for rank, rollup in enumerate(by_coin[coin])),
        key=lambda item: (item[0], item[1]),
    )
    return [rollup for _, _, rollup in ranked[:size]]


def differences(level: RollupLevel, stored: sql.StoredRollup, minutes: sql.MinuteAggregate) -> list[tuple[str, JsonScalar, JsonScalar]]:
    """``(field, stored, from the minutes)`` of every field that differs."""
    expected: dict[str, JsonScalar] = {
        "open": minutes.open, "high": minutes.high, "low": minutes.low, "close": minutes.close,
        "trades": minutes.trades, "minutes": minutes.minutes, "confirmed_minutes": minutes.confirmed_minutes,
        "complete": int(minutes.minutes == level.minutes),
    }
    found = [(name, getattr(stored, name), value) for name, value in expected.items() if getattr(stored, name) != value]
    # Summed per level in another order: each of the ``n`` additions may round by half an ulp
    # of the running sum, at most the total (volumes are not negative), on either side.
    total = minutes.volume or 0.0
    if abs(stored.volume - total) > 2 * minutes.minutes * sys.float_info.epsilon * abs(total):
        found.insert(4, ("volume", stored.volume, minutes.volume))
    return found


def rollups_match_minutes(conn: MemoryConnection, now_ms: int) -> CheckOutcome:
    size = MAINTENANCE.quality.sample
    problems: list[Problem] = []
    details: dict[str, JsonScalar] = {
        "sample": f"{size} current buckets a level with minutes: each coin's newest first, coins rotated hourly",
    }
    checked = failing = partly_pruned = 0
    for level in LEVELS:
        chosen = sample(sql.current_rollups(conn, level.interval, level.width_ms, size), size, now_ms)
        compared = 0
        for stored in chosen:
            minutes = sql.minute_aggregate(conn, stored.coin, stored.open_time_ms, stored.open_time_ms + level.width_ms)
            if minutes.minutes < stored.minutes:
                partly_pruned += 1
                continue
            compared += 1
            found = differences(level, stored, minutes)
            if found:
                failing += 1
                what = "; ".join(f"{name} {have!r} stored, {want!r} from its minutes" for name, have, want in found)
                problems.append(Problem(stored.coin, stored.open_time_ms, f"{level.interval} {utc_minute(stored.open_time_ms)}: {what}", found[0][1]))
        details[f"compared_{level.interval}"] = compared
        checked += compared
    details["skipped_partly_pruned"] = partly_pruned
    problems.sort(key=lambda p: (p.at_ms or 0, p.subject))
    return CheckOutcome(checked, problems, failing, details)


CHECKS: tuple[QualityCheck, ...] = (
    QualityCheck(
        MAINTENANCE, "rollups_match_minutes",
        "A sample of current 5m, 1h and 1d rollups (each coin's newest first, coins rotated hourly) "
        "equals the aggregate of its stored 1-minute candles: first open, last close, max high, min low, "
        "summed volume, trades, minutes and confirmed minutes. Buckets queued for rolling, or whose "
        "minutes were pruned, are not compared. On failure the problems name coin, interval, bucket and "
        "field: re-roll the day concerned (market_assets.maintenance.rebuild_rollups with start_ms/end_ms "
        "of that UTC day; it replaces every bucket of the day from its minutes); a mismatch that comes "
        "back after a rebuild is a bug in the rollup SQL.",
        rollups_match_minutes,
    ),
)
