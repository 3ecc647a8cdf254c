"""Running one channel: its ledger run around collect + store, or a dry run that writes nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from market_assets.clock import Clock, wall_clock_ms
from market_assets.ingest.subjects import SUBJECT_ERRORS, AllSubjectsFailed
from market_assets.ledger import Ledger
from market_assets.memory import MemoryMissingError, open_memory
from market_assets.memory.weight import private_weight_ledger
from market_assets.registry import Channel
from market_assets.settings import Settings
from market_assets.sources.http import RequestStats


class Batch(Protocol):
    """What a channel collected: rows per kind, before anything is written."""

    def counts(self) -> dict[str, int]: ...

    def details(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ChannelResult:
    """The outcome of one run, as the ledger recorded it and as Dagster shows it."""

    channel: Channel
    rows: Mapping[str, int]
    """Rows written (or that a dry run would write) per kind."""
    retries: int
    throttles: int
    dry_run: bool
    details: Mapping[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    """The ledger run; ``None`` for a dry run, which records nothing."""

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())

    @property
    def subject_errors(self) -> Mapping[str, str]:
        """Subjects (coins, search terms, series) that failed in a run that kept the others."""
        errors: Mapping[str, str] = self.details.get(SUBJECT_ERRORS, {})
        return errors

    def metadata(self) -> dict[str, Any]:
        """Flat metadata for ``MaterializeResult`` and the ledger (``dagster/row_count`` included)."""
        return {
            "dagster/row_count": self.rows_written,
            "rows_written": self.rows_written,
            **{f"rows/{kind}": count for kind, count in self.rows.items()},
            "retries": self.retries,
            "throttles": self.throttles,
            **({"ledger_run_id": self.run_id} if self.run_id is not None else {}),
            **self.details,
        }


Collect = Callable[[sqlite3.Connection | None, Settings, RequestStats, int], Awaitable[Batch]]
Store = Callable[[sqlite3.Connection, Any, int], dict[str, int]]


def run_channel(
    channel: Channel,
    settings: Settings,
    collect: Collect,
    store: Store,
    *,
    dry_run: bool = False,
    clock: Clock = wall_clock_ms,
) -> ChannelResult:
    """Collect from the sources and store, inside the channel's ledger run.

    The run is recorded ``running`` before the first request, ``failed`` with the error if a
    source or the write fails (nothing of a failed batch is kept: each store is one
    transaction), ``succeeded`` with the rows otherwise. A run over many subjects keeps those
    that answered and lists the failed ones under ``subject_errors`` in its metadata; it fails
    only when every subject failed (``ingest.subjects``). A dry run calls the real sources,
    reads the memory only if it already exists, and writes nothing at all: not the memory, not
    its ``-wal``/``-shm``, not the shared weight budget (its charges stay in this process).
    """
    stats = RequestStats()
    if dry_run:
        with private_weight_ledger(settings.db_path, settings.home):
            try:
                with open_memory(settings.db_path, readonly=True) as conn:
                    batch = asyncio.run(collect(conn, settings, stats, clock()))
            except MemoryMissingError:
                batch = asyncio.run(collect(None, settings, stats, clock()))
        return ChannelResult(channel, batch.counts(), stats.retries, stats.throttles, True, batch.details())

    with open_memory(settings.db_path) as conn:
        with Ledger(conn, clock).run(channel) as run:
            try:
                batch = asyncio.run(collect(conn, settings, stats, clock()))
            except AllSubjectsFailed as exc:
                run.metadata[SUBJECT_ERRORS] = exc.errors
                raise
            finally:
                run.add_retries(stats.retries)
                run.add_throttles(stats.throttles)
                run.metadata["requests"] = stats.requests
                run.metadata["budget_waits"] = stats.budget_waits
            rows = store(conn, batch, clock())
            run.add_rows(sum(rows.values()))
            run.metadata.update({"rows": rows, **batch.details()})
        return ChannelResult(channel, rows, stats.retries, stats.throttles, False, batch.details(), run.run_id)
