"""``hyperliquid/maintenance``: roll candles up, then prune what is owed to nobody, then tidy the file.

One run, in this order (SPEC §10: roll up before pruning):

1. **Rollups** of the closed buckets queued since the last run (new closed minutes, filled gaps,
   revised minutes), 1m → 5m → 1h → 1d, in one transaction (``memory.rollups``).
2. **Retention**, every table on its registry policy (``registry.BOUNDED_TABLES``): 1-minute
   candles past ``CANDLES.retention``, a whole day per transaction, only once the day's Parquet
   partition exists and matches its stamp and the memory (``archive.verify_day``), and only for
   the coins whose rollups account for every minute of it; funding past ``FUNDING.retention``,
   a whole day at a time, under the same archive gate, and the revisions of the hours pruned
   (``funding_revisions``); a day the gate refuses stays whole and is
   named in the run's metadata (``archive_blocked``) and log; rollups per interval past ``ROLLUP_RETENTION``, a
   day at a time and only once the coarser interval holds every minute of it; gap runs and
   repair-queue entries about minutes past ``GAP_RETENTION``; every other channel's rows past
   its retention (features); Polymarket markets closed or not found for
   ``POLYMARKET_UNSEEN_AFTER`` untracked, and untracked ones past
   ``POLYMARKET_UNTRACKED_RETENTION`` pruned; ledger runs past ``LEDGER_RETENTION``, keeping
   each channel's latest.
3. **Hygiene**: ``PRAGMA optimize`` after the bulk changes, then a checkpoint that truncates the
   WAL but waits for readers at most ``checkpoint_wait_ms`` (``memory.retention.checkpoint``).
   On PostgreSQL: ``ANALYZE``, and no checkpoint (the server manages its WAL).

Every step is idempotent: a second run with nothing new queued writes and deletes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from market_assets import archive
from market_assets.ledger import Ledger, reap_abandoned_runs
from market_assets.memory import archive as stamps
from market_assets.memory import polymarket, retention, rollups
from market_assets.memory.archive import Dataset
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.dialect import Dialect, dialect_of
from market_assets.memory.polymarket import Untracked
from market_assets.memory.retention import Checkpoint, DayPrune, WalBound
from market_assets.memory.target import MemoryTarget
from market_assets.registry import (
    CANDLES,
    FUNDING,
    GAP_RETENTION,
    LEDGER_RETENTION,
    MAINTENANCE,
    POLYMARKET_UNSEEN_AFTER,
    POLYMARKET_UNTRACKED_RETENTION,
    REGISTRY,
    ROLLUP_RETENTION,
)

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT_WAIT_MS = 2_000
"""Long enough for a dashboard query to finish (p99 122 ms under load, peers.md §3), short enough
that a reader holding a snapshot open cannot stall the run."""


@dataclass(frozen=True)
class MaintenanceSettings:
    checkpoint_wait_ms: int = DEFAULT_CHECKPOINT_WAIT_MS
    wal_bound_bytes: int = retention.WAL_BOUND_BYTES
    """A rebuild truncates the WAL between two days once it passes this (``retention.WalBound``)."""
    archive_root: Path | None = None
    """The Parquet archive the prunes are gated on; ``None``: ``archive.archive_root`` of the memory's file."""


@dataclass(frozen=True)
class MaintenanceResult:
    run_id: int
    buckets_rolled: Mapping[str, int]
    """Rollup rows written per interval (5m, 1h, 1d)."""
    buckets_queued: int
    """Buckets still waiting (not ended, a forming minute, a sub-bucket waiting)."""
    candle_rows_pruned: int
    candle_rows_held_back: int
    """1-minute rows past retention kept because their rollups do not account for them yet."""
    rows_pruned: Mapping[str, int] = field(default_factory=dict)
    """Rows deleted per other channel with a retention (``hyperliquid/features``, ...) and per
    other table (``candle_rollups/5m``, ``candle_gaps``, ``candle_repairs``, ``funding_revisions``,
    ``polymarket_markets``)."""
    rollup_rows_held_back: Mapping[str, int] = field(default_factory=dict)
    """Rollup rows past their interval's retention kept because the coarser rows do not hold them yet."""
    markets_untracked: Untracked = Untracked(0, 0)
    ledger_runs_pruned: int = 0
    runs_reaped: int = 0
    """``running`` runs of any channel whose process is gone, recorded failed ("abandoned")."""
    checkpoint: Checkpoint | None = None
    archive_blocked: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per dataset (``candles``, ``funding``), the days past retention kept whole because their
    archive partition is missing or does not match (``YYYY-MM-DD`` → why)."""

    @property
    def rows_written(self) -> int:
        return sum(self.buckets_rolled.values())

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {f"buckets_rolled_{k}": v for k, v in self.buckets_rolled.items()}
        meta |= {f"archive_blocked:{dataset}": dict(days) for dataset, days in self.archive_blocked.items() if days}
        meta |= {
            "buckets_queued": self.buckets_queued,
            "candle_rows_pruned": self.candle_rows_pruned,
            "candle_rows_held_back": self.candle_rows_held_back,
            "ledger_runs_pruned": self.ledger_runs_pruned,
            "runs_reaped": self.runs_reaped,
        }
        meta |= {f"rows_pruned:{key}": count for key, count in self.rows_pruned.items()}
        meta |= {f"rows_held_back:candle_rollups/{k}": v for k, v in self.rollup_rows_held_back.items()}
        meta |= {f"markets_untracked:{reason}": n for reason, n in self.markets_untracked._asdict().items()}
        if self.checkpoint is not None:
            meta |= {f"checkpoint_{name}": value for name, value in self.checkpoint._asdict().items()}
        return meta


def run_maintenance(
    conn: MemoryConnection, ledger: Ledger, *, settings: MaintenanceSettings = MaintenanceSettings()
) -> MaintenanceResult:
    """One maintenance run at ``ledger.clock()``, recorded in the ledger with its counts."""
    with ledger.run(MAINTENANCE) as run:
        now_ms = run.started_at_ms
        root = settings.archive_root or archive.archive_root(_target_of(conn))
        blocked: dict[str, dict[str, str]] = {"candles": {}, "funding": {}}
        with retention.checkpoint_at_the_end(conn):
            rolled = rollups.roll_pending(conn, now_ms)
            pruned, held_back = _prune_candles(conn, root, now_ms, blocked["candles"])
            others = {
                channel.key: retention.prune_before(conn, channel.data, now_ms - _ms(channel.retention))
                for channel in REGISTRY
                if channel.retention is not None and channel not in (CANDLES, FUNDING)
            }
            others[FUNDING.key] = _prune_funding(conn, root, now_ms, blocked["funding"])
            others["funding_revisions"] = retention.prune_funding_revisions(conn, _floor_day(now_ms - _ms(FUNDING.retention)))
            rollups_held_back: dict[str, int] = {}
            for level, coarser in zip(rollups.LEVELS, rollups.LEVELS[1:]):
                kept = ROLLUP_RETENTION[level.interval]
                if kept is not None:
                    outcome = _prune_rollups(conn, level.interval, coarser.interval, now_ms - _ms(kept))
                    others[f"candle_rollups/{level.interval}"] = outcome.deleted
                    rollups_held_back[level.interval] = outcome.held_back
            minutes_cutoff = _floor_day(now_ms - _ms(GAP_RETENTION))
            others["candle_gaps"] = retention.prune_gaps(conn, minutes_cutoff)
            others["candle_repairs"] = retention.prune_repairs(conn, minutes_cutoff)
            untracked = polymarket.untrack_markets(conn, _ms(POLYMARKET_UNSEEN_AFTER), now_ms)
            others["polymarket_markets"] = polymarket.prune_untracked(conn, now_ms - _ms(POLYMARKET_UNTRACKED_RETENTION))
            ledger_pruned = retention.prune_ledger(conn, now_ms - _ms(LEDGER_RETENTION))
            reaped = reap_abandoned_runs(conn, REGISTRY, now_ms)
        retention.optimize(conn)
        result = MaintenanceResult(
            run_id=run.run_id,
            buckets_rolled=rolled,
            buckets_queued=rollups.queued_rollups(conn),
            candle_rows_pruned=pruned,
            candle_rows_held_back=held_back,
            rows_pruned=others,
            rollup_rows_held_back=rollups_held_back,
            markets_untracked=untracked,
            ledger_runs_pruned=ledger_pruned,
            runs_reaped=len(reaped),
            checkpoint=retention.checkpoint(conn, settings.checkpoint_wait_ms),
            archive_blocked=blocked,
        )
        run.add_rows(result.rows_written)
        run.metadata.update(result.metadata())
    return result


@dataclass(frozen=True)
class RebuildResult:
    run_id: int
    days: int
    buckets_rolled: Mapping[str, int]
    wal_truncations: int = 0

    @property
    def rows_written(self) -> int:
        return sum(self.buckets_rolled.values())

    def metadata(self) -> dict[str, Any]:
        rolled = {f"buckets_rolled_{k}": v for k, v in self.buckets_rolled.items()}
        return {"days": self.days, **rolled, "wal_truncations": self.wal_truncations}


def rebuild_rollups(
    conn: MemoryConnection,
    ledger: Ledger,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    settings: MaintenanceSettings = MaintenanceSettings(),
) -> RebuildResult:
    """Recompute every closed rollup bucket of ``[start_ms, end_ms)`` (default: all stored minutes).

    For a day partition or a manual repair. One transaction per day, so the streamer's writes
    wait at most one day's rollup (~1 s for 200 coins: ``bench/rollups.py``) instead of the whole rebuild, and the
    WAL is bounded between days as the streamer bounds it (``retention.WalBound``): a rebuild of
    months of rollups beside a live dashboard would otherwise grow it by every page it rewrites.

    SQLite, not DuckDB. DuckDB reads SQLite only through its sqlite extension, and the only build
    on PyPI (``duckdb-extension-sqlite-scanner``) is for DuckDB 1.5.5: this project runs DuckDB 2,
    which refuses it ("built specifically for DuckDB version 'v1.5.5'") and crashes loading it
    with the version check off (measured). Even on 1.5.5 it would read the file through a second
    copy of SQLite inside this process, which releases this connection's POSIX locks whenever it
    closes the file (sqlite.org/howtocorrupt.html §2.2.1), and its GROUP BY alone is the
    yardstick the rebuild is measured against, before writing anything back
    (``bench/rollups.py``). Through Python's sqlite3 into Arrow instead, the transfer alone costs
    more than the rebuild.
    """
    with ledger.run(MAINTENANCE, metadata={"rebuild": True}) as run:
        now_ms = run.started_at_ms
        span = rollups.candle_time_span(conn)
        rolled = {level.interval: 0 for level in rollups.LEVELS}
        days = 0
        wal_bound = _wal_bound(conn, settings.wal_bound_bytes)
        if span is not None:
            day = _floor_day(span[0] if start_ms is None else start_ms)
            stop = span[1] + 1 if end_ms is None else end_ms
            while day < stop:
                for interval, count in rollups.rebuild_range(conn, day, day + rollups.DAY_MS, now_ms).items():
                    rolled[interval] += count
                if wal_bound is not None:
                    wal_bound(conn)
                day += rollups.DAY_MS
                days += 1
        retention.optimize(conn)
        retention.checkpoint(conn, settings.checkpoint_wait_ms)
        result = RebuildResult(run.run_id, days, rolled, 0 if wal_bound is None else wal_bound.truncations)
        run.add_rows(result.rows_written)
        run.metadata.update(result.metadata())
    return result


def _target_of(conn: MemoryConnection) -> MemoryTarget:
    """The memory the connection holds: its file (SQLite) or its URL (PostgreSQL)."""
    if dialect_of(conn) is Dialect.POSTGRES:
        return conn.target  # type: ignore[attr-defined, no-any-return]
    return Path(retention.database_path(conn))


def _wal_bound(conn: MemoryConnection, bound_bytes: int) -> WalBound | None:
    """SQLite's WAL bound between a rebuild's days; PostgreSQL manages its own WAL."""
    if dialect_of(conn) is Dialect.POSTGRES:
        return None
    return WalBound(retention.database_path(conn), bound_bytes)


def _prune_candles(conn: MemoryConnection, root: Path, now_ms: int, blocked: dict[str, str]) -> tuple[int, int]:
    """Prune each whole archived day that ended before the retention cutoff; returns (deleted,
    held back by rollups); a day the archive gate refuses goes into ``blocked``."""
    assert CANDLES.retention is not None
    cutoff = _floor_day(now_ms - _ms(CANDLES.retention))
    oldest = retention.oldest_candle_ms(conn)
    deleted = held_back = 0
    day = cutoff if oldest is None else _floor_day(oldest)
    while day + rollups.DAY_MS <= cutoff:
        stamp = _archived(conn, root, "candles", day, blocked)
        if stamp is not None:
            outcome = retention.prune_candle_day(conn, day, day + rollups.DAY_MS, stamp)
            deleted += outcome.deleted
            held_back += outcome.held_back
        day += rollups.DAY_MS
    return deleted, held_back


def _prune_funding(conn: MemoryConnection, root: Path, now_ms: int, blocked: dict[str, str]) -> int:
    """Prune each whole archived day of funding that ended before its retention cutoff."""
    assert FUNDING.retention is not None
    cutoff = _floor_day(now_ms - _ms(FUNDING.retention))
    day = stamps.oldest_day_ms(conn, "funding")
    deleted = 0
    while day is not None and day + rollups.DAY_MS <= cutoff:
        stamp = _archived(conn, root, "funding", day, blocked)
        if stamp is not None:
            deleted += retention.prune_funding_day(conn, day, day + rollups.DAY_MS, stamp)
        day += rollups.DAY_MS
    return deleted


def _archived(conn: MemoryConnection, root: Path, dataset: Dataset, day_ms: int, blocked: dict[str, str]) -> stamps.Stamp | None:
    """The day's stamp once its partition is verified against it and the memory; else ``None``,
    the reason in ``blocked`` and the log. A day with nothing left to prune passes unverified."""
    if not stamps.has_rows(conn, dataset, day_ms):
        return None
    stamp = stamps.stamp_of(conn, dataset, day_ms)
    reason = archive.verify_day(conn, root, dataset, day_ms)
    if reason is not None or stamp is None:
        blocked[archive.day_key(day_ms)] = reason or "not stamped"
        log.warning("%s of %s kept past retention: %s", dataset, archive.day_key(day_ms), reason)
        return None
    return stamp


def _prune_rollups(conn: MemoryConnection, interval: str, coarser: str, before_ms: int) -> DayPrune:
    """Prune each whole day of ``interval`` that ended before ``before_ms``; deleted and held back."""
    cutoff = _floor_day(before_ms)
    oldest = retention.oldest_rollup_ms(conn, interval)
    deleted = held_back = 0
    day = cutoff if oldest is None else _floor_day(oldest)
    while day + rollups.DAY_MS <= cutoff:
        outcome = retention.prune_rollup_day(conn, interval, coarser, day, day + rollups.DAY_MS)
        deleted += outcome.deleted
        held_back += outcome.held_back
        day += rollups.DAY_MS
    return DayPrune(deleted, held_back)


def _floor_day(ms: int) -> int:
    return ms - ms % rollups.DAY_MS


def _ms(span: timedelta | None) -> int:
    assert span is not None
    return int(span.total_seconds() * 1000)
