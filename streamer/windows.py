"""One ledger run per minute window (SPEC §3): the streamer never ends, so each window of the
channel's cadence is a run of its own, ``started_at_ms`` = the window start, so the Dagster
sensor can report each as a materialization.

A window ``succeeded`` with the rows written in it, or ``failed`` when in it the memory refused
a flush that no later flush of the window made good ("cannot write"), or a socket carrying coins
was down from the window's start to its end ("cannot stay connected"). :meth:`roll` and
:meth:`finish` write the ledger and run on the memory thread; their arguments are gathered on
the event loop, which owns the counters.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from market_assets.clock import Clock
from market_assets.ledger import Ledger, Run
from market_assets.registry import CANDLES
from market_assets.sources.http import RequestStats


class WindowRecorder:
    def __init__(
        self,
        window_ms: int,
        clock: Clock,
        request_stats: RequestStats | None = None,
    ) -> None:
        self.window_ms = window_ms
        self.clock = clock
        self.request_stats = request_stats
        self.run: Run | None = None
        self.write_failure: str | None = None
        self.recorded: list[int] = []
        """Run ids finished by this process, oldest first."""
        self._stats_at_window = (0, 0)

    def window_of(self, at_ms: int) -> int:
        return at_ms - at_ms % self.window_ms

    def written(self, rows: int) -> None:
        """A flush committed ``rows``: a failure earlier in the window was made good."""
        self.write_failure = None
        if self.run is not None:
            self.run.add_rows(rows)

    def write_failed(self, error: BaseException) -> None:
        self.write_failure = f"cannot write: {type(error).__name__}: {error}"

    def due(self, now_ms: int) -> bool:
        """Whether ``now_ms`` lies outside the open window (or none is open)."""
        return self.run is None or self.window_of(now_ms) != self.run.started_at_ms

    def roll(self, conn: sqlite3.Connection, now_ms: int, metadata: dict[str, Any], failure: str | None) -> None:
        """Finish the open window with ``metadata`` (``failure``: why its sockets could not stay
        connected) and open ``now_ms``'s."""
        if not self.due(now_ms):
            return
        if self.run is not None:
            self.finish(now_ms, metadata, failure)
        self.run = Ledger(conn, self.clock).start(CANDLES, started_at_ms=self.window_of(now_ms))

    def finish(self, now_ms: int, metadata: dict[str, Any], failure: str | None = None) -> None:
        """Record the open window as succeeded, or failed with a write failure or ``failure``."""
        run = self.run
        if run is None:
            return
        run.metadata.update(metadata)
        if self.request_stats is not None:
            retries, throttles = self.request_stats.retries, self.request_stats.throttles
            run.add_retries(retries - self._stats_at_window[0])
            run.add_throttles(throttles - self._stats_at_window[1])
            self._stats_at_window = (retries, throttles)
        error = self.write_failure or failure
        if error is None:
            run.succeed(finished_at_ms=now_ms)
        else:
            run.fail(error, finished_at_ms=now_ms)
        # Only once recorded: a memory that refused the ledger write leaves the run to retry.
        self.run = None
        self.write_failure = None
        self.recorded.append(run.run_id)
