"""REST repair: drains the durable repair queue (``candle_repairs``) through ``candleSnapshot``.

One request per coin covers every minute queued for it (inside the newest 5,000 candles, the
most the server keeps), so a coin's whole outage costs one base weight; coins go newest owed
minute first, then most traded first, so after an outage the minutes a reader looks at first
come back first. Every request is charged to the machine's shared weight budget (the client's
limiter). A repaired minute is stored confirmed in the transaction that dequeues it
(``memory.repairs.apply_repair``); a queued minute REST has no candle for while it has a later
one is ``no_trades``; one older than the window is ``unfillable``; one REST cannot tell yet
(the coin's newest minute, nothing traded since) stays queued and is asked again later.

Workers never die of an error: any exception is logged, counted and backed off per coin
(capped exponential), and a worker that ends anyway is restarted by the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import astuple, dataclass, replace

from market_assets.memory.candles import CandleRow
from market_assets.memory.repairs import Backlog, RepairOutcome, apply_repair, backlog, queued_minutes
from market_assets.sources.hyperliquid import HyperliquidClient
from market_assets.sources.ratelimit import MAX_CANDLES_PER_SNAPSHOT
from market_assets.sources.timing import AsyncClock
from streamer.backoff import Backoff
from streamer.buckets import row_of
from streamer.counters import StreamCounters
from streamer.memory_thread import MemoryThread

log = logging.getLogger(__name__)

REPAIR_MINUTES_PER_TRANSACTION = 120
"""A repair is stored two hours of a coin at a time: a stream flush waits for that much, not a day."""


def bucket_start(at_ms: int, step_ms: int) -> int:
    return at_ms - at_ms % step_ms


def window_floor(now_ms: int, step_ms: int, window: int = MAX_CANDLES_PER_SNAPSHOT) -> int:
    """Open time of the oldest bucket ``candleSnapshot`` still serves at ``now_ms``."""
    return bucket_start(now_ms, step_ms) - (window - 1) * step_ms


@dataclass(frozen=True)
class RepairPolicy:
    concurrency: int = 4
    retry_initial_s: float = 5.0
    """First wait before asking again for a coin whose request failed; doubles per failure."""
    retry_cap_s: float = 120.0
    unresolved_retry_s: float = 30.0
    """Wait before asking again for minutes REST could not tell yet (no later candle exists)."""
    idle_poll_s: float = 30.0
    """With nothing to do, look at the queue again this often (another process may fill it)."""


class Repairer:
    def __init__(
        self,
        client: HyperliquidClient,
        memory: MemoryThread,
        clock: AsyncClock,
        counters: StreamCounters,
        volume: Callable[[str], float],
        *,
        interval: str,
        step_ms: int,
        policy: RepairPolicy,
        follows: Callable[[str], bool] | None = None,
    ) -> None:
        """``follows``: whether this process repairs ``coin`` (a shard repairs only its own coins,
        with its own IP's weight); ``None``: every coin."""
        self.client = client
        self.memory = memory
        self.clock = clock
        self.counters = counters
        self.volume = volume
        self.interval = interval
        self.step_ms = step_ms
        self.policy = policy
        self.follows = follows
        self._backlog: dict[str, Backlog] = {}
        self._stale = True
        """The queue changed since :attr:`_backlog` was read."""
        self._in_flight: set[str] = set()
        self._queued_in_flight: set[str] = set()
        self._not_before_ms: dict[str, int] = {}
        self._backoffs: dict[str, Backoff] = {}
        self._changed = asyncio.Event()
        """Set when minutes were queued or a repair ended: waiting workers look again."""
        self._workers: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued (as last read) and no request in flight."""
        return not self._stale and not self._backlog and not self._in_flight

    @property
    def queued(self) -> int:
        return sum(entry.minutes for entry in self._backlog.values())

    def wake(self) -> None:
        """Minutes were queued: read the queue again."""
        self._stale = True
        self._changed.set()

    def start(self) -> None:
        self._workers = [self._spawn(i) for i in range(self.policy.concurrency)]
        self._supervisor = asyncio.create_task(self._supervise(), name="repair-supervisor")

    async def close(self) -> None:
        tasks = [*self._workers, *([self._supervisor] if self._supervisor else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, index: int) -> asyncio.Task[None]:
        return asyncio.create_task(self._work(), name=f"repair-{index}")

    async def _supervise(self) -> None:
        """Restart a worker that ended (only a bug can end one)."""
        while True:
            await asyncio.wait(self._workers, return_when=asyncio.FIRST_COMPLETED)
            for index, task in enumerate(self._workers):
                if task.done():
                    error = task.exception() if not task.cancelled() else None
                    self.counters.repair_worker_restarts += 1
                    log.error("repair worker %d ended (%r); restarting it", index, error)
                    self._workers[index] = self._spawn(index)
            await self.clock.sleep(self.policy.retry_initial_s)  # never a tight restart loop

    async def _work(self) -> None:
        while True:
            entry: Backlog | None = None
            try:
                entry = await self._next()
                self._in_flight.add(entry.coin)
                left = await self._repair(entry.coin)
                self._backoffs.pop(entry.coin, None)
                if left:  # REST could not tell yet: ask again later
                    self._backlog[entry.coin] = replace(entry, minutes=left)
                    self._not_before_ms[entry.coin] = self.clock.now_ms() + int(self.policy.unresolved_retry_s * 1000)
                else:
                    self._not_before_ms.pop(entry.coin, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a worker must survive whatever one request or read does
                self.counters.repair_failures += 1
                if entry is None:  # the queue could not be read (a locked memory): wait, then again
                    log.warning("repair queue unreadable, reading it again in %.0f s: %s", self.policy.retry_initial_s, exc)
                    await self.clock.sleep(self.policy.retry_initial_s)
                    continue
                backoff = self._backoffs.setdefault(
                    entry.coin, Backoff(self.policy.retry_initial_s, self.policy.retry_cap_s, 0.0)
                )
                delay = backoff.next_delay()
                self._backlog[entry.coin] = entry
                self._not_before_ms[entry.coin] = self.clock.now_ms() + int(delay * 1000)
                log.warning("repair of %s failed, asking again in %.0f s: %s", entry.coin, delay, exc)
            finally:
                if entry is not None:
                    self._in_flight.discard(entry.coin)
                    if entry.coin in self._queued_in_flight:
                        self._queued_in_flight.discard(entry.coin)
                        self._stale = True
                    self._changed.set()  # workers waiting on a backed-off coin look again

    async def _next(self) -> Backlog:
        """The next coin to repair, taken out of the backlog: newest owed minute first, then
        most traded. The queue is read again only when minutes were queued (:meth:`wake`) or
        every ``idle_poll_s``; in between, the backlog as read, minus what was repaired, is it."""
        while True:
            if self._stale:
                self._stale = False
                entries = await self.memory.call(backlog, self.interval)
                if self.follows is not None:
                    entries = [entry for entry in entries if self.follows(entry.coin)]
                self._backlog = {entry.coin: entry for entry in entries if entry.coin not in self._in_flight}
                # A coin queued again while its repair is in flight is read again once it ends.
                self._queued_in_flight.update(entry.coin for entry in entries if entry.coin in self._in_flight)
            now_ms = self.clock.now_ms()
            ready = [entry for entry in self._backlog.values() if self._not_before_ms.get(entry.coin, 0) <= now_ms]
            if ready:
                best = min(ready, key=lambda e: (-e.newest_ms, -self.volume(e.coin), e.coin))
                del self._backlog[best.coin]
                return best
            waits = [self._not_before_ms[coin] - now_ms for coin in self._backlog if coin in self._not_before_ms]
            self._changed.clear()
            if self._stale:
                continue
            poll_ms = self.policy.idle_poll_s * 1000
            changed = asyncio.create_task(self._changed.wait())
            sleeping = asyncio.create_task(self.clock.sleep(min([poll_ms, *waits]) / 1000))
            try:
                done, _ = await asyncio.wait({changed, sleeping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                sleeping.cancel()
            if sleeping in done and min([poll_ms, *waits]) == poll_ms:
                self._stale = True  # the periodic look at the queue

    async def _repair(self, coin: str) -> int:
        """Repair every queued minute of ``coin`` REST can tell about; returns how many are left."""
        queued = await self.memory.call(queued_minutes, coin, self.interval)
        if not queued:
            return 0
        now_ms = self.clock.now_ms()
        floor = window_floor(now_ms, self.step_ms)
        beyond = [m for m in queued if m < floor]
        reachable = [m for m in queued if m >= floor]
        closed: list[CandleRow] = []
        no_trades: list[int] = []
        latest_ms = -1
        if reachable:
            first, last = min(reachable), max(reachable)
            self.counters.repair_requests += 1
            # Bucket-inclusive bounds; asking through now shows whether a later candle exists.
            batch = await self.client.candle_snapshot(coin, self.interval, first, max(now_ms, last + self.step_ms - 1))
            for candle in batch.candles:
                if candle.coin == coin:
                    latest_ms = max(latest_ms, candle.open_ms)
            # A candle refused for impossible values exists at the venue: never "no trades".
            returned = {c.open_ms for c in batch.candles if c.coin == coin} | {r.open_ms for r in batch.rejected if r.coin == coin}
            closed = [row_of(c, True, True) for c in batch.closed if c.coin == coin and c.open_ms in queued]
            absent = [m for m in reachable if m not in returned]
            # The window moves on while the request is out: a minute that left it by the time of
            # the answer is beyond reach, not a minute nobody traded in.
            answered_floor = window_floor(batch.as_of_ms, self.step_ms)
            beyond += [m for m in absent if m < answered_floor]
            no_trades = [m for m in absent if answered_floor <= m < latest_ms]
        # Stored in slices of minutes, each its own transaction: the stream's flushes share the
        # memory thread, and a day of a coin in one transaction held them back (frame -> commit
        # p99 384 ms during a warm start, 123 ms without one).
        outcome = RepairOutcome(0, 0, 0, 0, 0)
        ordered = sorted(queued)
        for start in range(0, len(ordered), REPAIR_MINUTES_PER_TRANSACTION):
            part = set(ordered[start : start + REPAIR_MINUTES_PER_TRANSACTION])
            done: RepairOutcome = await self.memory.call(
                apply_repair,
                coin,
                self.interval,
                self.step_ms,
                [row for row in closed if row.open_time_ms in part],
                minutes=part,
                no_trades=[m for m in no_trades if m in part],
                unfillable=[m for m in beyond if m in part],
                now_ms=self.clock.now_ms(),
            )
            outcome = RepairOutcome(*(a + b for a, b in zip(astuple(outcome), astuple(done))))
        left = len(queued) - outcome.confirmed - outcome.no_trades - outcome.unfillable - outcome.conflicts
        self.counters.repaired_minutes += outcome.confirmed
        self.counters.corrected_minutes += outcome.corrected
        self.counters.no_trade_minutes += outcome.no_trades
        self.counters.gaps_unfillable += outcome.unfillable
        self.counters.repair_conflicts += outcome.conflicts
        log.info(
            "repaired %s: %d minutes confirmed (%d corrected), %d without trades, %d beyond reach, %d still owed; "
            "%d minutes queued for %d other coins",
            coin, outcome.confirmed, outcome.corrected, outcome.no_trades, outcome.unfillable, left,
            self.queued, len(self._backlog),
        )
        return left
