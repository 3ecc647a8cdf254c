"""The one writer: a bounded queue from the socket readers, batched upserts, one transaction per flush.

Frames re-send the forming bucket many times a minute, so the writer keeps the latest state of
each (coin, bucket) and writes that: a flush costs one row per bucket touched, not one per
frame. A flush runs on the memory thread while the writer keeps taking frames into the next
batch, so a memory locked by another process for seconds stalls nothing upstream; rows a flush
could not write are kept and written by a later one, never dropped. Memory stays bounded:
past ``max_pending_rows`` the writer stops taking frames until the flush in flight ends, the
queue fills, and the readers stop reading their sockets until there is room (back-pressure,
not growth: cryptofeed #426).

A row is only replaced by one at least as final (forming < closed < confirmed), here as in the
memory. Minutes owed to REST repair (:meth:`Writer.owe`) are queued durably by the flush that
writes the rows revealing them, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from market_assets.memory.candles import (
    CandleRow,
    Repair,
    close_ended_candles,
    write_candles,
)
from market_assets.memory.connection import is_database_error
from market_assets.memory.retention import WalBound
from market_assets.sources.timing import AsyncClock
from streamer.config import StreamerConfig
from streamer.counters import StreamCounters
from streamer.memory_thread import MemoryThread
from streamer.windows import WindowRecorder

log = logging.getLogger(__name__)

SHUTDOWN_ATTEMPTS = 3
"""Flush attempts at shutdown before giving up on a memory that stays locked."""


class _Barrier:
    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future


class _Stop:
    pass


_STOP = _Stop()
_Streamed = tuple[CandleRow, int]
_Item = _Streamed | _Barrier | _Stop | None
"""A streamed row with its receive time (``perf_counter_ns``), a barrier, the stop sign, or a
wake-up tick."""
_Key = tuple[str, int]


class Writer:
    def __init__(
        self,
        memory: MemoryThread,
        config: StreamerConfig,
        clock: AsyncClock,
        counters: StreamCounters,
        windows: WindowRecorder,
        window_report: Callable[[int | None], tuple[dict[str, Any], str | None]],
        on_owed: Callable[[], None] = lambda: None,
    ) -> None:
        self.memory = memory
        self.config = config
        self.clock = clock
        self.counters = counters
        self.windows = windows
        self.window_report = window_report
        """The metadata of the window being finished, and why its sockets could not stay
        connected (given its start), gathered on the event loop."""
        self.queue: asyncio.Queue[_Item] = asyncio.Queue(config.queue_bound)
        self.latencies_ns: deque[int] = deque(maxlen=100_000)
        """Frame received -> its row committed, for the newest rows written."""
        self.on_owed = on_owed
        """Called once owed minutes are committed to the repair queue."""
        self._held: deque[_Streamed] = deque()
        """Rows offered while the queue was full, in order, queued by :meth:`room`."""
        self._room_lock = asyncio.Lock()
        self._pending: dict[_Key, _Streamed] = {}
        self._owed: dict[_Key, Repair] = {}
        self._owed_in_flight = False
        self._waiters: list[asyncio.Future[None]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._next_flush_ms = 0
        self._retry_at_ms = 0
        self._task: asyncio.Task[None] | None = None
        self.wal_bound = WalBound(memory.path, config.wal_bound_bytes) if isinstance(memory.path, Path) else None
        """SQLite's WAL, bounded by its one writer; PostgreSQL recycles its own."""

    # What producers call -----------------------------------------------------------------------

    def offer(self, row: CandleRow) -> bool:
        """A streamed row, taken without waiting (the sockets hand frames over as websockets
        parses them). ``False`` once the queue is full: the row is held, in order, and the caller
        stops reading until :meth:`room`."""
        item = (row, time.perf_counter_ns())
        if not self._held:
            try:
                self.queue.put_nowait(item)
                return True
            except asyncio.QueueFull:
                pass
        self._held.append(item)
        return False

    async def room(self) -> None:
        """Return once every held row is queued (the queue had room for them)."""
        async with self._room_lock:
            while self._held:
                await self.queue.put(self._held[0])  # cancelled, the row stays held: never lost nor doubled
                self._held.popleft()

    def confirm(self, row: CandleRow) -> None:
        """A minute the stream proved final, with its latest state: merged at once, not queued
        (once a bucket a minute, not per frame; a less final row queued before it cannot
        replace it), so confirming costs the sockets no queue slot. Its latency counts from the
        frame that proved it final, now."""
        self._merge(row, time.perf_counter_ns())

    @property
    def depth(self) -> int:
        """Rows handed over and not yet taken into a batch: queued, or held behind a full queue."""
        return self.queue.qsize() + len(self._held)

    @property
    def owing(self) -> bool:
        """Owed minutes wait to be committed to the repair queue."""
        return bool(self._owed) or self._owed_in_flight

    def owe(self, repairs: Sequence[Repair]) -> None:
        """Minutes to queue for REST repair with the next flush (no wait: a repair entry committed
        before the row that revealed it is harmless, and callers may not be able to wait)."""
        for repair in repairs:
            self._owed.setdefault((repair[0], repair[1]), repair)
        self.counters.minutes_owed += len(repairs)
        self._wake()

    async def barrier(self) -> None:
        """Return once every row queued before this call is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.room()
        await self.queue.put(_Barrier(future))
        await future

    # Lifecycle -------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="writer")
        return self._task

    async def stop(self) -> None:
        """Write everything queued so far, record the open window, and end."""
        await self.room()
        await self.queue.put(_STOP)
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            while True:
                stop = self._absorb(await self.queue.get())
                while not stop and not self.queue.empty() and len(self._pending) < self.config.max_pending_rows:
                    stop = self._absorb(self.queue.get_nowait())
                self.counters.queue_depth_max = max(self.counters.queue_depth_max, self.depth)
                if stop:
                    break
                await self._maybe_flush()
        finally:
            ticker.cancel()
        await self._shutdown()

    async def _tick(self) -> None:
        while True:
            await self.clock.sleep(self.config.flush_interval_s)
            self._wake()

    def _wake(self) -> None:
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            pass  # the writer has work queued already

    # Batching ----------------------------------------------------------------------------------

    def _absorb(self, item: _Item) -> bool:
        if type(item) is tuple:  # a streamed row: nearly every item
            self._merge(*item)
            return False
        if isinstance(item, _Stop):
            return True
        if isinstance(item, _Barrier):
            self._waiters.append(item.future)
        return False

    def _merge(self, row: CandleRow, received_ns: int) -> None:
        key = (row.coin, row.open_time_ms)
        held = self._pending.get(key)
        # Replace unless the held row is more final: forming < closed < confirmed.
        if held is None or (
            row.confirmed or not held[0].confirmed and (row.closed or not held[0].closed)
        ):
            self._pending[key] = (row, received_ns)

    async def _maybe_flush(self) -> None:
        if self._flushing is not None:
            if not self._flushing.done() and len(self._pending) >= self.config.max_pending_rows:
                await asyncio.wait({self._flushing})  # back-pressure: take no frames until it ends
            if not self._flushing.done():
                return
            flushing, self._flushing = self._flushing, None
            flushing.result()  # a failure that is not the memory's is a bug: let it surface
        now_ms = self.clock.now_ms()
        window_due = self.windows.due(now_ms)
        rows_due = bool(self._pending or self._owed) and now_ms >= self._retry_at_ms and (
            len(self._pending) >= self.config.flush_rows or now_ms >= self._next_flush_ms or bool(self._waiters)
        )
        if not (rows_due or window_due):
            if not self._pending and not self._owed and self._waiters:
                self._release(self._waiters)
                self._waiters = []
            return
        batch, self._pending = (self._pending, {}) if rows_due else ({}, self._pending)
        owed, self._owed = (self._owed, {}) if rows_due else ({}, self._owed)
        self._owed_in_flight = bool(owed)
        waiters, self._waiters = (self._waiters, []) if rows_due else ([], self._waiters)
        self._flushing = asyncio.create_task(self._flush(batch, waiters, owed))
        self._flushing.add_done_callback(lambda _: self._wake())

    async def _flush(
        self, batch: dict[_Key, _Streamed], waiters: list[asyncio.Future[None]], owed: dict[_Key, Repair]
    ) -> None:
        now_ms = self.clock.now_ms()
        if self.windows.due(now_ms):
            # The window ends before this flush's rows, so its counts and its run agree.
            metadata, failure = self.window_report(self.windows.open.started_at_ms if self.windows.open else None)
            try:
                await self.memory.call(self.windows.roll, now_ms, metadata, failure)
            except Exception as exc:
                if not is_database_error(exc):
                    raise
                log.warning("could not record the ledger window yet: %s", exc)
        if batch or owed:
            rows = [row for row, _ in batch.values()]
            newest: dict[str, int] = {}
            for row in rows:
                if row.open_time_ms > newest.get(row.coin, -1):
                    newest[row.coin] = row.open_time_ms
            try:
                written, refused = await self.memory.call(
                    write_candles,
                    rows,
                    newest_open_by_coin=newest,
                    interval=self.config.interval,
                    close_ended_before_ms=now_ms,
                    now_ms=now_ms,
                    repairs=list(owed.values()),
                )
            except Exception as exc:
                if not is_database_error(exc):
                    raise
                self._keep(batch, waiters, owed, exc, now_ms)
                self._owed_in_flight = False
                return
            for refusal in refused:
                log.warning("the memory refused %s %d, queued for repair: %s", refusal.row.coin, refusal.row.open_time_ms, refusal.error)
            self.counters.rows_refused += len(refused)
            if owed or refused:
                self.on_owed()
            self._owed_in_flight = False
            committed_ns = time.perf_counter_ns()
            self.latencies_ns.extend(committed_ns - ns for _, ns in batch.values() if ns)
            self.counters.flushes += 1
            self.counters.rows_written += written
            self.windows.written(written, max(newest.values(), default=None))
            self._next_flush_ms = now_ms + int(self.config.flush_interval_s * 1000)
        self._release(waiters)
        if batch:
            await self._bound_wal()

    async def _bound_wal(self) -> None:
        """Truncate the WAL between two flushes once it passed its bound (readers never let it reset)."""
        if self.wal_bound is None or not self.wal_bound.due():
            return
        try:
            result = await self.memory.call(self.wal_bound)
        except Exception as exc:  # the flush is committed; a checkpoint refused is retried later
            if not is_database_error(exc):
                raise
            log.warning("could not truncate the WAL: %s", exc)
            return
        if result is not None:
            self.counters.wal_truncations += not result.busy
            self.counters.wal_truncations_held_back += result.busy

    async def _close_ended(self) -> None:
        """Close the minutes that ended since the last flush: with no frame after them there was
        no flush to do it, and left forming they would hold back features and rollups until a
        restart."""
        try:
            await self.memory.call(close_ended_candles, self.config.interval, self.clock.now_ms())
        except Exception as exc:
            if not is_database_error(exc):
                raise
            log.error("could not close the minutes that ended: %s", exc)

    def _keep(
        self,
        batch: dict[_Key, _Streamed],
        waiters: list[asyncio.Future[None]],
        owed: dict[_Key, Repair],
        error: Exception,
        now_ms: int,
    ) -> None:
        """The memory refused the flush: hold its rows (newer ones taken meanwhile win, unless
        less final) and owed minutes, and retry after ``write_retry_s``."""
        log.warning("flush of %d rows failed, kept for retry: %s", len(batch), error)
        self.counters.write_errors += 1
        self.windows.write_failed(error)
        for key, (row, ns) in batch.items():
            held = self._pending.get(key)
            if held is None or row.closed + row.confirmed > held[0].closed + held[0].confirmed:
                self._pending[key] = (row, ns)
        for key, repair in owed.items():
            self._owed.setdefault(key, repair)
        self._waiters = waiters + self._waiters
        self._retry_at_ms = now_ms + int(self.config.write_retry_s * 1000)

    @staticmethod
    def _release(waiters: list[asyncio.Future[None]]) -> None:
        for future in waiters:
            if not future.done():
                future.set_result(None)

    async def _shutdown(self) -> None:
        if self._flushing is not None:
            await self._flushing
            self._flushing = None
        for attempt in range(SHUTDOWN_ATTEMPTS):
            if not self._pending and not self._owed and not self._waiters:
                break
            if attempt:
                await self.clock.sleep(self.config.write_retry_s)
            batch, self._pending = self._pending, {}
            owed, self._owed = self._owed, {}
            waiters, self._waiters = self._waiters, []
            await self._flush(batch, waiters, owed)
        if self._pending or self._owed:
            log.error(
                "shutting down with %d rows and %d owed minutes the memory would not take (the next start owes them again)",
                len(self._pending), len(self._owed),
            )
        else:
            await self._close_ended()
        self._release(self._waiters)
        metadata, _ = self.window_report(None)
        try:
            await self.memory.call(self.windows.finish, self.clock.now_ms(), metadata)
        except Exception as exc:
            if not is_database_error(exc):
                raise
            log.error("could not record the last ledger window: %s", exc)
