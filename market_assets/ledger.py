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

Under contention the record still ends right: :meth:`Ledger.run` retries ``database is locked``
(PostgreSQL: its write lock's timeout) when it finishes its run, for :data:`FINISH_PATIENCE_SEC` (beyond one busy timeout), so a run
that fails while another process holds the write lock is recorded ``failed`` with its own error;
past that it logs one line and the run's own exception goes on. A run left ``running`` by a
process that is gone is reaped as ``failed`` ("abandoned") by the next run of its channel, and by
maintenance (:func:`reap_abandoned_runs`). Error text is redacted (:mod:`market_assets.redact`):
the ledger is read by the API, the CLI and the alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from market_assets.clock import Clock, wall_clock_ms
from market_assets.memory import runs as sql
from market_assets.memory.connection import MemoryConnection, is_busy
from market_assets.memory.runs import RunStatus
from market_assets.redact import redact
from market_assets.registry import Channel

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
"""Error text is kept readable and the ledger compact; the head of a traceback says what failed."""

FINISH_PATIENCE_SEC = 60.0
"""How long finishing a run keeps retrying a busy memory: six busy timeouts, longer than any
write transaction of the platform holds the lock (a maintenance prune batch is the longest)."""

DATA_LATEST_LOOKBACK_MS = 24 * 3600 * 1000
"""How far back a finishing run looks for its channel's newest data timestamp, at least (twice
the channel's data-lag threshold when that is longer): a range on the time column. Data older
than that records no timestamp; the lag is then past anything the admin page draws."""

REAP_LOOKBACK_MS = 24 * 3600 * 1000
"""How far back a channel's next run looks for its abandoned runs (an index range: the
streamer's 1,440 windows a day); older leftovers are maintenance's, which looks everywhere."""


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
    data_latest_ms: int | None = None
    """The channel's newest data timestamp, when the writer knows it (the streamer does); left
    ``None``, finishing reads it from the channel's table."""

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
        self._finish(RunStatus.FAILED, redact(text)[:MAX_ERROR_CHARS], finished_at_ms)

    def _finish(self, status: RunStatus, error: str | None, finished_at_ms: int | None) -> None:
        finished = self.ledger.clock() if finished_at_ms is None else finished_at_ms
        latest = self.data_latest_ms
        if latest is None:
            lookback_ms = max(DATA_LATEST_LOOKBACK_MS, 2000 * self.channel.warnings.data_lag_sec)
            latest = sql.newest_data_ms(self.ledger.conn, self.channel.data, finished - lookback_ms)
        sql.finish(
            self.ledger.conn,
            self.run_id,
            status=status,
            finished_at_ms=finished,
            rows_written=self.rows_written,
            error=error,
            retries=self.retries,
            throttles=self.throttles,
            metadata=self.metadata,
            data_latest_ms=latest,
        )
        self.status = status


@dataclass
class Ledger:
    conn: MemoryConnection
    clock: Clock = wall_clock_ms
    finish_patience_sec: float = FINISH_PATIENCE_SEC

    def start(
        self,
        channel: Channel,
        *,
        started_at_ms: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Run:
        """Record a ``running`` run now and return its handle, after reaping the channel's
        runs whose process is gone."""
        now = self.clock()
        started = now if started_at_ms is None else started_at_ms
        meta = dict(metadata or {})
        reap_abandoned_runs(self.conn, [channel], now, since_ms=min(now, started) - REAP_LOOKBACK_MS)
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
                try:
                    self._patiently(partial(run.fail, exc, finished_at_ms=self.clock()))
                except Exception as busy:  # sqlite3's "database is locked" or PostgreSQL's lock timeout
                    if not is_busy(busy):
                        raise
                    log.error(
                        "ledger run %s of %s stays running: the memory stayed locked by another process for "
                        "%gs while recording its failure (%s); the next run of the channel reaps it",
                        run.run_id, channel.key, self.finish_patience_sec, redact(_describe(exc)),
                    )
            raise
        if run.status is RunStatus.RUNNING:
            self._patiently(partial(run.succeed, finished_at_ms=self.clock()))

    def _patiently(self, finish: Callable[[], None]) -> None:
        """``finish`` retried while the memory is locked, for :attr:`finish_patience_sec`.

        Only the runs this ledger drives (:meth:`run`) wait so long; a caller finishing its own
        runs (the streamer, which keeps unrecorded windows and retries them at its next flush)
        meets one busy timeout, as with any write.
        """
        Retrying(
            retry=retry_if_exception(is_busy),
            stop=stop_after_delay(self.finish_patience_sec),
            wait=wait_random(0.05, 0.5),
            reraise=True,
        )(finish)


def reap_abandoned_runs(
    conn: MemoryConnection, channels: Iterable[Channel], now_ms: int, *, since_ms: int | None = None
) -> list[int]:
    """Fail as abandoned the ``running`` runs of ``channels`` whose process is gone (or, where
    that cannot be told, that outlived their channel's stale window); one log line each.

    Maintenance sweeps every channel with no ``since_ms``:
    ``reap_abandoned_runs(conn, REGISTRY, now_ms)``.
    """
    windows = {(c.source, c.name): c.stale_after_sec * 1000 for c in channels}
    reaped = sql.reap_abandoned(conn, windows, now_ms, since_ms=since_ms)
    for run_id in reaped:
        log.warning("ledger run %s was left running by a process that is gone: recorded failed (abandoned)", run_id)
    return reaped


def _describe(error: BaseException) -> str:
    message = str(error)
    name = type(error).__name__
    return f"{name}: {message}" if message else name
