"""REST gap backfill: the closed minutes a socket may have missed, from ``candleSnapshot``.

Planning is pure. A coin's owed range is cut to ``candleSnapshot``'s reach (the newest 5,000
candles: older buckets are unfillable and recorded so, never synthesised), split into pages,
newest first, and every page of every coin is ordered newest gap first, then most traded coin
first: after an outage the minutes a reader is most likely to look at come back first, and the
weight budget (1,200 per minute, enforced by the client's limiter) goes where it matters most.

Each page runs the continuity check around its fetch: the missing closed buckets are recorded
``detected`` before the request, and ``filled`` / ``unfillable`` once the answer is stored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from market_assets.memory.candles import closed_open_times
from market_assets.memory.gaps import GapStatus, record_detected, resolve_gap
from market_assets.sources.errors import SourceError
from market_assets.sources.hyperliquid import HyperliquidClient
from market_assets.sources.ratelimit import MAX_CANDLES_PER_SNAPSHOT, info_weight
from market_assets.sources.timing import AsyncClock
from streamer.buckets import row_of
from streamer.continuity import Span, bucket_start, missing_spans, resolve
from streamer.counters import StreamCounters
from streamer.memory_thread import MemoryThread
from streamer.writer import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Page:
    """One ``candleSnapshot`` request: buckets ``span`` of ``coin``."""

    coin: str
    span: Span


@dataclass(frozen=True)
class Plan:
    pages: tuple[Page, ...]
    """In the order to fetch them."""
    unfillable: tuple[Page, ...]
    """Parts of owed ranges older than the 5,000-candle window."""

    def weight(self, step_ms: int) -> int:
        """The weight the pages cost at most (base 20 plus one per 60 candles each)."""
        return sum(info_weight("candleSnapshot", page.span.buckets(step_ms)) for page in self.pages)


def window_floor(now_ms: int, step_ms: int, window: int = MAX_CANDLES_PER_SNAPSHOT) -> int:
    """Open time of the oldest bucket ``candleSnapshot`` still serves at ``now_ms``."""
    return bucket_start(now_ms, step_ms) - (window - 1) * step_ms


def plan(
    owed: Sequence[tuple[str, Span]],
    volumes: Mapping[str, float],
    *,
    now_ms: int,
    step_ms: int,
    page_candles: int = MAX_CANDLES_PER_SNAPSHOT,
) -> Plan:
    floor = window_floor(now_ms, step_ms)
    pages: list[Page] = []
    unfillable: list[Page] = []
    for coin, span in owed:
        if span.start_ms < floor:
            unfillable.append(Page(coin, Span(span.start_ms, min(span.end_ms, floor))))
            span = Span(floor, span.end_ms)
        end = span.end_ms
        while end > span.start_ms:
            start = max(span.start_ms, end - page_candles * step_ms)
            pages.append(Page(coin, Span(start, end)))
            end = start
    pages.sort(key=lambda page: (-page.span.end_ms, -volumes.get(page.coin, 0.0), page.coin, -page.span.start_ms))
    return Plan(tuple(pages), tuple(unfillable))


class Backfiller:
    """Fetches planned pages with ``concurrency`` workers; a failed page is retried later."""

    def __init__(
        self,
        client: HyperliquidClient,
        memory: MemoryThread,
        writer: Writer,
        clock: AsyncClock,
        counters: StreamCounters,
        volume: Callable[[str], float],
        *,
        interval: str,
        step_ms: int,
        concurrency: int,
        page_candles: int,
        retry_s: float,
    ) -> None:
        self.client = client
        self.memory = memory
        self.writer = writer
        self.clock = clock
        self.counters = counters
        self.volume = volume
        self.interval = interval
        self.step_ms = step_ms
        self.page_candles = page_candles
        self.retry_s = retry_s
        self._queue: asyncio.PriorityQueue[tuple[tuple[int, int, float, str], int, Page]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._workers = [asyncio.create_task(self._work(), name=f"backfill-{i}") for i in range(concurrency)]
        self._retries: set[asyncio.Task[None]] = set()
        self._busy = 0

    @property
    def idle(self) -> bool:
        return self._queue.empty() and self._busy == 0 and not self._retries

    def submit(self, coin: str, span: Span) -> None:
        """Owe ``span`` of ``coin`` to REST."""
        if span.end_ms <= span.start_ms:
            return
        now_ms = self.clock.now_ms()
        planned = plan([(coin, span)], {coin: self.volume(coin)}, now_ms=now_ms, step_ms=self.step_ms, page_candles=self.page_candles)
        for page in planned.unfillable:
            self._enqueue(page, fetch=False)
        for page in planned.pages:
            self._enqueue(page)

    def _enqueue(self, page: Page, *, fetch: bool = True) -> None:
        # Pages beyond the window go first: recording them costs no weight. Then newest gap
        # first, then most traded coin first.
        key = (0 if fetch else -1, -page.span.end_ms, -self.volume(page.coin), page.coin)
        self._queue.put_nowait((key, next(self._order), page))

    async def close(self) -> None:
        for task in [*self._workers, *self._retries]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._retries, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            key, _, page = await self._queue.get()
            self._busy += 1
            try:
                if key[0] < 0:
                    await self._record_unfillable(page)
                else:
                    await self._fill(page)
            except (SourceError, OSError) as exc:
                self.counters.backfill_failures += 1
                log.warning("backfill of %s %s failed, retrying in %.0f s: %s", page.coin, page.span, self.retry_s, exc)
                retry = asyncio.create_task(self._retry(page))
                self._retries.add(retry)
                retry.add_done_callback(self._retries.discard)
            finally:
                self._busy -= 1

    async def _retry(self, page: Page) -> None:
        await self.clock.sleep(self.retry_s)
        self._enqueue(page)

    async def _detect(self, page: Page) -> list[Span]:
        await self.writer.barrier()
        present = await self.memory.call(
            closed_open_times, page.coin, self.interval, page.span.start_ms, page.span.end_ms
        )
        gaps = missing_spans(present, page.span, self.step_ms)
        if gaps:
            runs = [(gap.start_ms, gap.end_ms, gap.buckets(self.step_ms)) for gap in gaps]
            await self.memory.call(record_detected, page.coin, self.interval, runs, self.clock.now_ms())
            self.counters.gaps_detected += len(gaps)
        return gaps

    async def _resolve(self, page: Page, gaps: list[Span]) -> None:
        if not gaps:
            return
        present = await self.memory.call(
            closed_open_times, page.coin, self.interval, page.span.start_ms, page.span.end_ms
        )
        now_ms = self.clock.now_ms()
        for gap in gaps:
            parts = resolve(gap, present, self.step_ms)
            await self.memory.call(
                resolve_gap,
                page.coin,
                self.interval,
                gap.start_ms,
                [(part.start_ms, part.end_ms, part.buckets(self.step_ms), status) for part, status in parts],
                now_ms,
            )
            for _, status in parts:
                if status is GapStatus.FILLED:
                    self.counters.gaps_filled += 1
                else:
                    self.counters.gaps_unfillable += 1

    async def _record_unfillable(self, page: Page) -> None:
        await self._resolve(page, await self._detect(page))

    async def _fill(self, page: Page) -> None:
        gaps = await self._detect(page)
        self.counters.backfill_requests += 1
        # Both ends are bucket-inclusive: ``end - 1`` stops at the span's last bucket.
        batch = await self.client.candle_snapshot(page.coin, self.interval, page.span.start_ms, page.span.end_ms - 1)
        rows = [
            row_of(candle, True)
            for candle in batch.closed
            if page.span.start_ms <= candle.open_ms < page.span.end_ms and candle.coin == page.coin
        ]
        self.counters.backfill_candles += len(rows)
        if rows:
            await self.writer.store(rows)
            await self.writer.barrier()
        await self._resolve(page, gaps)
