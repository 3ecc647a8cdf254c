"""One ledger run per minute window (SPEC §3): the streamer never ends, so each window of the
channel's cadence is a run of its own, ``started_at_ms`` = the window start, so the Dagster
sensor can report each as a materialization.

A window is recorded when it ends, started and finished together: were it recorded ``running``
at its start, the channel's latest run would always be the window in progress and health would
report candles ``running`` for ever instead of ``ok`` (SPEC §4's example).

A window that is recorded only when it ends leaves nothing when its process is killed, so each
window opened is also stored as the memory's open window (:mod:`market_assets.memory.open_window`)
and a clean stop removes it. The first roll of the next process finds a window left open and
records it ``failed`` (:data:`ENDED_UNCLOSED`), finished when the window would have ended or at
the restart if sooner: health reads ``failed`` until this process's first window completes. The
marker is stored (or removed) in the transaction that records the windows just closed, so a kill
never leaves a window recorded twice (reaped as abandoned, and failed again from the marker) nor
one that ended recorded by nobody.

A window ``succeeded`` with the rows written in it, or ``failed`` when in it the memory refused
a flush that no later flush of the window made good ("cannot write"), or a socket carrying coins
was down from the window's start to its end ("cannot stay connected"). :meth:`roll` and
:meth:`finish` write the ledger and run on the memory thread; their arguments are gathered on
the event loop, which owns the counters. A window the memory would not take is kept and
recorded by the next call that gets through.

A shard (``--shard I/N``) marks each of its windows with its ``I/N`` (``memory.shards.SHARD_KEY``)
and keeps its own open-window marker, so a shard's restart records only its own window left open.

Each window records the newest open time this process had written when it closed (the data lag
the admin page draws), kept from the flushes, never queried; a window before the first write
(or the one a killed process left) leaves it to the ledger, which reads it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from market_assets.clock import Clock
from market_assets.ledger import Ledger
from market_assets.memory.connection import MemoryConnection, write_transaction
from market_assets.memory.open_window import (
    clear_open_window,
    mark_open_window,
    open_window_ms,
)
from market_assets.memory.shards import (
    SHARD_KEY,
    Shard,
    clear_shard_open_window,
    mark_shard_open_window,
    shard_open_window_ms,
)
from market_assets.registry import CANDLES
from market_assets.sources.http import RequestStats

ENDED_UNCLOSED = "the streamer ended without closing this window"
"""The error of the window a killed streamer left open, recorded by the next start."""


@dataclass
class _Window:
    started_at_ms: int
    rows: int = 0
    retries: int = 0
    throttles: int = 0
    finished_at_ms: int = 0
    metadata: dict[str, Any] | None = None
    error: str | None = None
    data_latest_ms: int | None = None
    """The newest open time this process had written when the window closed."""


class WindowRecorder:
    def __init__(
        self, window_ms: int, clock: Clock, request_stats: RequestStats | None = None, shard: Shard | None = None
    ) -> None:
        self.window_ms = window_ms
        self.shard = shard
        self.clock = clock
        self.request_stats = request_stats
        self.open: _Window | None = None
        self.write_failure: str | None = None
        self.data_latest_ms: int | None = None
        """The newest open time written by this process: each window's data lag, with no query."""
        self.recorded: list[int] = []
        """Run ids recorded by this process, oldest first."""
        self._unrecorded: list[_Window] = []
        self._stats_at_window = (0, 0, 0)
        self._took_over = False
        """Whether the marker a previous process left was read: from then on it is this one's."""

    def window_of(self, at_ms: int) -> int:
        return at_ms - at_ms % self.window_ms

    def due(self, now_ms: int) -> bool:
        """Whether ``now_ms`` lies outside the open window (or none is open)."""
        return self.open is None or self.window_of(now_ms) != self.open.started_at_ms

    def written(self, rows: int, newest_ms: int | None = None) -> None:
        """A flush committed ``rows``, the newest opened at ``newest_ms``: a failure earlier in
        the window was made good."""
        self.write_failure = None
        if newest_ms is not None and (self.data_latest_ms is None or newest_ms > self.data_latest_ms):
            self.data_latest_ms = newest_ms
        if self.open is not None:
            self.open.rows += rows

    def write_failed(self, error: BaseException) -> None:
        self.write_failure = f"cannot write: {type(error).__name__}: {error}"

    def roll(self, conn: MemoryConnection, now_ms: int, metadata: dict[str, Any], failure: str | None) -> None:
        """Close the open window with ``metadata`` (``failure``: why its sockets could not stay
        connected), open ``now_ms``'s, and record what is closed."""
        if not self.due(now_ms):
            return
        self._close(now_ms, metadata, failure)
        self.open = _Window(self.window_of(now_ms))
        # One transaction: a process killed amid it leaves either the closed windows recorded and
        # the new one marked open, or neither (a window started in the ledger but never finished
        # was reaped as abandoned, and its successor's marker recorded it failed a second time).
        with write_transaction(conn):
            if not self._took_over:
                self._take_over(conn, now_ms)
            if self.shard is None:
                mark_open_window(conn, self.open.started_at_ms)
            else:
                mark_shard_open_window(conn, self.shard, self.open.started_at_ms)
            recorded = self._record(conn)
        self._recorded(recorded)

    def finish(self, conn: MemoryConnection, now_ms: int, metadata: dict[str, Any]) -> None:
        """At shutdown: record the open window as it stands."""
        self._close(now_ms, metadata, None)
        with write_transaction(conn):
            if self._took_over:
                if self.shard is None:
                    clear_open_window(conn)
                else:
                    clear_shard_open_window(conn, self.shard)
            recorded = self._record(conn)
        self._recorded(recorded)

    def _take_over(self, conn: MemoryConnection, now_ms: int) -> None:
        """Queue the window a previous process left open as failed; before this process's own
        marker replaces it."""
        left_open = open_window_ms(conn) if self.shard is None else shard_open_window_ms(conn, self.shard)
        self._took_over = True
        if left_open is not None:
            ended = min(now_ms, left_open + self.window_ms)
            self._unrecorded.append(_Window(left_open, finished_at_ms=ended, metadata=self._marked({}), error=ENDED_UNCLOSED))

    def _marked(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """``metadata`` with this process's shard, if it is one."""
        if self.shard is not None:
            metadata[SHARD_KEY] = str(self.shard)
        return metadata

    def _close(self, now_ms: int, metadata: dict[str, Any], failure: str | None) -> None:
        window, self.open = self.open, None
        if window is None:
            return
        window.finished_at_ms = now_ms
        window.data_latest_ms = self.data_latest_ms
        window.metadata = self._marked(metadata)
        window.error = self.write_failure or failure
        self.write_failure = None
        if self.request_stats is not None:
            stats = self.request_stats
            retries, throttles, budget_waits = stats.retries, stats.throttles, stats.budget_waits
            window.retries = retries - self._stats_at_window[0]
            window.throttles = throttles - self._stats_at_window[1]
            window.metadata["budget_waits"] = budget_waits - self._stats_at_window[2]
            self._stats_at_window = (retries, throttles, budget_waits)
        self._unrecorded.append(window)

    def _record(self, conn: MemoryConnection) -> list[int]:
        """Record every closed window not recorded yet as one finished run, in the caller's
        transaction; their run ids (:meth:`_recorded` once it has committed)."""
        ledger = Ledger(conn, self.clock)
        recorded = []
        for window in self._unrecorded:
            run = ledger.start(CANDLES, started_at_ms=window.started_at_ms, metadata=window.metadata)
            run.add_rows(window.rows)
            run.add_retries(window.retries)
            run.add_throttles(window.throttles)
            run.data_latest_ms = window.data_latest_ms
            if window.error is None:
                run.succeed(finished_at_ms=window.finished_at_ms)
            else:
                run.fail(window.error, finished_at_ms=window.finished_at_ms)
            recorded.append(run.run_id)
        return recorded

    def _recorded(self, run_ids: list[int]) -> None:
        del self._unrecorded[: len(run_ids)]
        self.recorded.extend(run_ids)
