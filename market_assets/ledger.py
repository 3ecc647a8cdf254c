"""The ingestion ledger's run API, used by every writer (SPEC §3).

A run is recorded ``running`` the moment it starts, so a process killed mid-run leaves a visible
record that health reports ``stale`` once it outlives the channel's threshold. It ends
``succeeded`` with the rows it wrote, or ``failed`` with the error text while the exception
still propagates to the caller.

    with Ledger(conn).run(FUNDING) as run:
        run.add_rows(write_funding(conn, rows))
        run.add_retries(client.retries)

The streamer, which never ends, opens one run per minute window with ``started_at_ms`` set to
the window start and finishes it when the window is flushed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from market_assets.clock import Clock, wall_clock_ms
from market_assets.memory import runs as sql
from market_assets.memory.runs import RunStatus
from market_assets.registry import Channel

MAX_ERROR_CHARS = 4000
"""Error text is kept readable and the ledger compact; the head of a traceback says what failed."""


@dataclass
class Run:
    """One run in flight. Counters accumulate here and are written when the run finishes."""

    ledger: Ledger
    channel: Channel
    run_id: int
    started_at_ms: int
    rows_written: int = 0
    retries: int = 0
    throttles: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING

    def add_rows(self, count: int) -> None:
        self.rows_written += count

    def add_retries(self, count: int) -> None:
        self.retries += count

    def add_throttles(self, count: int) -> None:
        self.throttles += count

    def succeed(self, *, finished_at_ms: int | None = None) -> None:
        self._finish(RunStatus.SUCCEEDED, None, finished_at_ms)

    def fail(self, error: BaseException | str, *, finished_at_ms: int | None = None) -> None:
        text = error if isinstance(error, str) else _describe(error)
        self._finish(RunStatus.FAILED, text[:MAX_ERROR_CHARS], finished_at_ms)

    def _finish(self, status: RunStatus, error: str | None, finished_at_ms: int | None) -> None:
        sql.finish(
            self.ledger.conn,
            self.run_id,
            status=status,
            finished_at_ms=self.ledger.clock() if finished_at_ms is None else finished_at_ms,
            rows_written=self.rows_written,
            error=error,
            retries=self.retries,
            throttles=self.throttles,
            metadata=self.metadata,
        )
        self.status = status


@dataclass
class Ledger:
    conn: sqlite3.Connection
    clock: Clock = wall_clock_ms

    def start(
        self,
        channel: Channel,
        *,
        started_at_ms: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Run:
        """Record a ``running`` run now and return its handle."""
        started = self.clock() if started_at_ms is None else started_at_ms
        meta = dict(metadata or {})
        run_id = sql.insert_running(self.conn, channel.source, channel.name, started, meta)
        return Run(self, channel, run_id, started, metadata=meta)

    @contextmanager
    def run(self, channel: Channel, *, metadata: dict[str, Any] | None = None) -> Iterator[Run]:
        """A run that succeeds when the block ends, or fails with the block's exception (re-raised)."""
        run = self.start(channel, metadata=metadata)
        try:
            yield run
        except BaseException as exc:
            if run.status is RunStatus.RUNNING:
                run.fail(exc)
            raise
        if run.status is RunStatus.RUNNING:
            run.succeed()


def _describe(error: BaseException) -> str:
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name
