"""SQL of the durable repair queue (``candle_repairs``): the minutes the streamer owes to REST.

A minute is queued ``unverified`` (stored, but its final state is unknown: the socket dropped
while it formed, an unparseable frame came meanwhile, the process stopped), ``missing`` (never
stored: the stream skipped it) or ``rejected`` (its frame carried impossible values). Entries
are written in the transaction of the rows that revealed them, so a crash loses none, and
deleted in the transaction that repairs them: :func:`apply_repair` stores candleSnapshot's
closed candles as confirmed, counts the ones whose values differed from what was stored, and
records the missing minutes REST shows nobody traded in as ``no_trades`` (never synthesised).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from market_assets.memory.candles import (
    CandleRow,
    RepairReason,
    queue_repairs,
    upsert_candles,
)
from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.dialect import pick
from market_assets.memory.gaps import GapStatus


@dataclass(frozen=True)
class Backlog:
    """One coin's queued minutes."""

    coin: str
    minutes: int
    oldest_ms: int
    newest_ms: int


def backlog(conn: MemoryConnection, interval: str) -> list[Backlog]:
    """Per coin, how many minutes are queued and their span (no order)."""
    return [
        Backlog(*row)
        for row in conn.execute(
            "SELECT coin, count(*), min(open_time_ms), max(open_time_ms) FROM candle_repairs "
            "WHERE interval = ? GROUP BY coin",
            (interval,),
        )
    ]


def queued_minutes(conn: MemoryConnection, coin: str, interval: str) -> dict[int, RepairReason]:
    """One coin's queued minutes and why each is owed."""
    return {
        open_ms: RepairReason(reason)
        for open_ms, reason in conn.execute(
            "SELECT open_time_ms, reason FROM candle_repairs WHERE coin = ? AND interval = ?", (coin, interval)
        )
    }


@dataclass(frozen=True)
class RepairOutcome:
    confirmed: int
    """Queued minutes now stored as candleSnapshot returned them, closed."""
    corrected: int
    """Of those, the ones stored before with different values."""
    no_trades: int
    unfillable: int
    conflicts: int
    """Minutes the stream showed a candle for and REST has none: left unverified, dequeued."""


def apply_repair(
    conn: MemoryConnection,
    coin: str,
    interval: str,
    step_ms: int,
    closed: Sequence[CandleRow],
    *,
    minutes: Iterable[int],
    no_trades: Iterable[int],
    unfillable: Iterable[int],
    now_ms: int,
) -> RepairOutcome:
    """One repair of ``coin`` in one transaction: store ``closed`` (candleSnapshot's closed
    candles of queued ``minutes``) as confirmed, record ``no_trades`` and ``unfillable`` minutes
    as runs in ``candle_gaps``, and dequeue all three. A queued minute in none of them stays
    queued (REST does not know it yet)."""
    wanted = set(minutes)
    rows = [row._replace(closed=True, confirmed=True) for row in closed if row.open_time_ms in wanted]
    quiet = sorted(set(no_trades) & wanted)
    lost = sorted(set(unfillable) & wanted)
    with write_transaction(conn):
        before = _stored(conn, coin, interval, [row.open_time_ms for row in rows] + quiet)
        corrected = sum(
            1 for row in rows if row.open_time_ms in before and before[row.open_time_ms] != _values(row)
        )
        upsert_candles(conn, rows, now_ms)
        # A minute the stream stored (it saw trades) that REST has no candle for: the two
        # disagree; the row is kept, unverified, and not asked for again.
        conflicts = [open_ms for open_ms in quiet if open_ms in before]
        quiet = [open_ms for open_ms in quiet if open_ms not in before]
        filled = [row.open_time_ms for row in rows if row.open_time_ms not in before]
        _record_runs(conn, coin, interval, step_ms, filled, GapStatus.FILLED, now_ms)
        _record_runs(conn, coin, interval, step_ms, quiet, GapStatus.NO_TRADES, now_ms)
        _record_runs(conn, coin, interval, step_ms, lost, GapStatus.UNFILLABLE, now_ms)
        conn.executemany(
            "DELETE FROM candle_repairs WHERE coin = ? AND interval = ? AND open_time_ms = ?",
            [(coin, interval, open_ms) for open_ms in [*(row.open_time_ms for row in rows), *quiet, *lost, *conflicts]],
        )
    return RepairOutcome(len(rows), corrected, len(quiet), len(lost), len(conflicts))


def _stored(conn: MemoryConnection, coin: str, interval: str, open_times: Sequence[int]) -> dict[int, tuple[float, ...]]:
    if not open_times:
        return {}
    found: dict[int, tuple[float, ...]] = {}
    for open_ms, *values in conn.execute(
        "SELECT open_time_ms, open, high, low, close, volume, trades FROM candles "
        "WHERE coin = ? AND interval = ? AND open_time_ms BETWEEN ? AND ?",
        (coin, interval, min(open_times), max(open_times)),
    ):
        found[open_ms] = tuple(values)
    wanted = set(open_times)
    return {open_ms: values for open_ms, values in found.items() if open_ms in wanted}


def _values(row: CandleRow) -> tuple[float, ...]:
    return (float(row.open), float(row.high), float(row.low), float(row.close), float(row.volume), row.trades)


def _record_runs(
    conn: MemoryConnection, coin: str, interval: str, step_ms: int, minutes: Sequence[int], status: GapStatus, now_ms: int
) -> None:
    """Record consecutive ``minutes`` as runs of ``status`` in ``candle_gaps``; a run that starts
    where one of the same status ends extends it."""
    runs: list[list[int]] = []
    for open_ms in sorted(minutes):
        if runs and runs[-1][1] == open_ms:
            runs[-1][1] = open_ms + step_ms
        else:
            runs.append([open_ms, open_ms + step_ms])
    for run in runs:  # a run recorded just before this one (a repair stored in slices) grows
        before = conn.execute(
            "SELECT start_ms FROM candle_gaps WHERE coin = ? AND interval = ? AND status = ? AND end_ms = ?",
            (coin, interval, status.value, run[0]),
        ).fetchone()
        if before is not None:
            run[0] = before[0]
    conn.executemany(
        pick(conn, sqlite=_RECORD_RUN.format(greatest="max"), postgres=_RECORD_RUN.format(greatest="GREATEST")),
        [(coin, interval, start, end, status.value, (end - start) // step_ms, now_ms, now_ms, step_ms) for start, end in runs],
    )


_RECORD_RUN = (
    "INSERT INTO candle_gaps (coin, interval, start_ms, end_ms, status, missing_buckets, detected_at_ms, "
    "resolved_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (coin, interval, start_ms) DO UPDATE SET "
    "end_ms = {greatest}(candle_gaps.end_ms, excluded.end_ms), status = excluded.status, "
    "missing_buckets = ({greatest}(candle_gaps.end_ms, excluded.end_ms) - excluded.start_ms) / ?, "
    "resolved_at_ms = excluded.resolved_at_ms"
)
"""A run of minutes recorded, or grown (SQLite's scalar ``max`` is PostgreSQL's ``GREATEST``)."""


# What the dashboard and /metrics read ----------------------------------------------------------


@dataclass(frozen=True)
class Fidelity:
    """The candles channel's fidelity at a glance."""

    unverified_minutes: int
    """Closed minutes stored unconfirmed with an open time at or after ``since_ms``."""
    oldest_unverified_ms: int | None
    """Open time of the oldest of them."""
    repair_queue: int
    """Minutes queued for REST repair, all reasons, any age."""
    no_trade_minutes: int
    """Minutes recorded ``no_trades`` with an open time at or after ``since_ms``."""


_UNVERIFIED = (
    "SELECT count(*), min(open_time_ms) FROM candles{hint} "
    "WHERE closed = 1 AND confirmed = 0 AND open_time_ms >= ? AND interval = ?"
)
"""Through the unverified minutes' partial index (SQLite is told; PostgreSQL's planner picks it)."""


def fidelity(conn: MemoryConnection, since_ms: int, interval: str = "1m") -> Fidelity:
    unverified, oldest = conn.execute(
        pick(conn, sqlite=_UNVERIFIED.format(hint=" INDEXED BY candles_unverified"), postgres=_UNVERIFIED.format(hint="")),
        (since_ms, interval),
    ).fetchone()
    (queued,) = conn.execute("SELECT count(*) FROM candle_repairs WHERE interval = ?", (interval,)).fetchone()
    (quiet,) = conn.execute(
        "SELECT coalesce(sum(missing_buckets), 0) FROM candle_gaps WHERE status = 'no_trades' AND interval = ? "
        "AND start_ms >= ?",
        (interval, since_ms),
    ).fetchone()
    return Fidelity(unverified, oldest, queued, quiet)


# The start's horizon ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HorizonQueued:
    unverified: int
    missing: int
    unfillable: int
    """Minutes of an outage older than ``floor_ms`` (beyond candleSnapshot's reach), recorded."""


def queue_horizon(
    conn: MemoryConnection,
    coins: Sequence[str],
    interval: str,
    step_ms: int,
    *,
    horizon: int,
    until_ms: int,
    floor_ms: int,
    now_ms: int,
) -> HorizonQueued:
    """What a streamer starting now owes REST, queued in one transaction.

    Per coin, every minute in ``[until_ms - horizon * step_ms, until_ms)`` that is not stored
    confirmed and not known to have no candle (``no_trades``, ``unfillable``) is queued: the
    minutes a previous process left unverified or never stored, the history a new coin or an
    empty memory warms up with. An outage longer than the horizon is owed from the coin's newest
    stored minute on; its part older than ``floor_ms`` (beyond candleSnapshot's
    5,000-candle reach) is recorded unfillable. Forming rows that ended are closed first: the
    process that wrote them is gone.
    """
    unverified = missing = unfillable = 0
    with write_transaction(conn):
        conn.execute(
            "UPDATE candles SET closed = 1 WHERE closed = 0 AND close_time_ms < ? AND interval = ?", (now_ms, interval)
        )
        for coin in coins:
            start = until_ms - horizon * step_ms
            (last,) = conn.execute(
                "SELECT max(open_time_ms) FROM candles WHERE coin = ? AND interval = ? AND open_time_ms < ?",
                (coin, interval, until_ms),
            ).fetchone()
            if last is not None and last < start:
                start = last  # down longer than the horizon: owe the whole outage
            if start < floor_ms:
                lost = [m for m in range(start, min(floor_ms, until_ms), step_ms) if m != last]  # ``last`` is stored
                _record_runs(conn, coin, interval, step_ms, lost, GapStatus.UNFILLABLE, now_ms)
                unfillable += len(lost)
                start = floor_ms
            if start >= until_ms:
                continue
            confirmed: dict[int, int] = dict(
                conn.execute(
                    "SELECT open_time_ms, confirmed FROM candles WHERE coin = ? AND interval = ? "
                    "AND open_time_ms >= ? AND open_time_ms < ?",
                    (coin, interval, start, until_ms),
                ).fetchall()
            )
            quiet: set[int] = set()
            for gap_start, gap_end in conn.execute(
                "SELECT start_ms, end_ms FROM candle_gaps WHERE coin = ? AND interval = ? "
                "AND status IN ('no_trades', 'unfillable') AND end_ms > ? AND start_ms < ?",
                (coin, interval, start, until_ms),
            ):
                quiet.update(range(gap_start, gap_end, step_ms))
            owed: list[tuple[str, int, RepairReason]] = []
            for open_ms in range(start, until_ms, step_ms):
                state = confirmed.get(open_ms)
                if state == 1 or (state is None and open_ms in quiet):
                    continue
                owed.append((coin, open_ms, RepairReason.MISSING if state is None else RepairReason.UNVERIFIED))
            queue_repairs(conn, interval, owed, now_ms)
            missing += sum(1 for _, _, reason in owed if reason is RepairReason.MISSING)
            unverified += sum(1 for _, _, reason in owed if reason is RepairReason.UNVERIFIED)
    return HorizonQueued(unverified, missing, unfillable)
