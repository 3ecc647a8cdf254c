"""The streamer process composed: universe, sockets, writer, repair, ledger windows, shutdown.

:class:`Streamer` is also the sink of every socket: the bucket book decides for each frame what
it may be stored as (forming, closed, confirmed) and which minutes it reveals as owed to REST,
which the writer queues durably for the repairer to drain.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from market_assets.memory.candles import RepairReason
from market_assets.memory.connection import is_database_error
from market_assets.memory.hyperliquid import listed_coins, upsert_universe
from market_assets.memory.repairs import queue_horizon
from market_assets.memory.target import MemoryTarget
from market_assets.sources.errors import SourceError
from market_assets.sources.hyperliquid import Candle, HyperliquidClient, RejectedCandle
from market_assets.sources.ratelimit import interval_ms, shared_budget
from market_assets.sources.timing import AsyncClock
from streamer.backoff import Backoff
from streamer.buckets import BucketBook, Feed
from streamer.config import StreamerConfig
from streamer.connection import SocketLimits
from streamer.counters import StreamCounters
from streamer.limits import RollingLimit
from streamer.memory_thread import MemoryThread
from streamer.pool import Pool
from streamer.repair import Repairer, bucket_start, window_floor
from streamer.universe import Universe, follows, read_universe, stored_universe
from streamer.windows import WindowRecorder
from streamer.writer import Writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    rest: str
    """Hyperliquid's REST base (``…/info`` is appended)."""
    ws: str


class Streamer:
    def __init__(
        self,
        db_path: MemoryTarget,
        endpoints: Endpoints,
        config: StreamerConfig,
        clock: AsyncClock,
        *,
        rng: random.Random | None = None,
        home: Path | None = None,
    ) -> None:
        """``home``: this host's folder (``Settings.home``), where the IP's weight budget is kept
        beside a PostgreSQL memory; ``None``: the one ``Settings`` derives from the environment."""
        self.config = config
        self.clock = clock
        self.step_ms = interval_ms(config.interval)
        self.counters = StreamCounters()
        self.memory = MemoryThread(db_path, clock.now_ms)
        self.client = HyperliquidClient(endpoints.rest, clock=clock, limiter=shared_budget(db_path, clock, home))
        self.book = BucketBook(self.step_ms)
        self.universe = Universe((), {}, ())
        self.windows = WindowRecorder(config.window_ms, clock.now_ms, self.client.stats, config.shard)
        limits = SocketLimits(
            url=endpoints.ws,
            config=config,
            clock=clock,
            counters=self.counters,
            new_connections=RollingLimit(clock, config.new_connections_per_minute, name="new connections"),
            messages=RollingLimit(clock, config.messages_per_minute, name="messages sent"),
            rng=rng or random.Random(),
        )
        self.pool = Pool(limits, self)
        self.repairer = Repairer(
            self.client,
            self.memory,
            clock,
            self.counters,
            lambda coin: self.universe.volume(coin),
            interval=config.interval,
            step_ms=self.step_ms,
            policy=config.repair,
            follows=None if config.shard is None else partial(follows, config.shard),
        )
        self.writer = Writer(
            self.memory, config, clock, self.counters, self.windows, self._window_report, on_owed=self.repairer.wake
        )
        self.started = asyncio.Event()
        """Set once the universe is placed on the sockets."""
        self._universe_error: str | None = None
        """Why the latest universe read failed; ``None`` while the first one is still in flight."""
        self._first_window_ms: int | None = None
        """The start of the first window reported: the one the streamer started in (opening the
        memory may take it past the window it was created in)."""

    @property
    def repaired(self) -> bool:
        """Nothing owed to REST: no minute waiting to be queued, none queued, none in flight."""
        return not self.writer.owing and self.repairer.idle

    # Sink of the sockets ---------------------------------------------------------------------

    def candle(self, candle: Candle, received_ms: int, feed: Feed) -> bool:
        row, confirmed, owed = self.book.observe(candle, received_ms, feed)
        if confirmed is not None:
            self.counters.confirmed_minutes += 1
            self.writer.confirm(confirmed)
        if owed:
            self.writer.owe(owed)
        return self.writer.offer(row)

    async def room(self) -> None:
        await self.writer.room()

    def rejected(self, error: RejectedCandle) -> None:
        self.book.rejected(error.coin, error.open_ms)
        self.writer.owe([(error.coin, error.open_ms, RepairReason.REJECTED)])

    def lost(self, coins: Collection[str], feed: Feed) -> None:
        owed = self.book.lost(coins, feed, self.clock.now_ms())
        if owed:
            self.writer.owe(owed)

    def resubscribed(self, coin: str) -> None:
        """A stale subscription started again: what it delivered before is not provably final."""
        owed = self.book.lost([coin], None, self.clock.now_ms())
        if owed:
            self.writer.owe(owed)

    # Running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set, then flush, record the window and close everything."""
        await self.memory.open()
        writer_task = self.writer.start()
        poller: asyncio.Task[None] | None = None
        try:
            universe = await self._first_universe(stop)
            if universe is not None:
                await self._queue_horizon(universe.coins)
                self.repairer.start()
                self.follow(universe)
                self.started.set()
                poller = asyncio.create_task(self._poll_universe(), name="universe")
                stopping = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait({stopping, writer_task}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if writer_task in done:
                    writer_task.result()  # the writer only ends early on a bug: surface it
        finally:
            if poller is not None:
                poller.cancel()
            await self.pool.close()
            await self.repairer.close()
            if not writer_task.done():
                await self.writer.stop()
            await self.client.aclose()
            await self.memory.close()

    async def _queue_horizon(self, coins: Sequence[str]) -> None:
        """Owe REST what this process cannot stream: the minutes before now that are not stored
        confirmed, over the warm-start horizon (and an outage longer than it)."""
        now_ms = self.clock.now_ms()
        until_ms = bucket_start(now_ms, self.step_ms)
        queued = await self.memory.call(
            queue_horizon,
            coins,
            self.config.interval,
            self.step_ms,
            horizon=self.config.warm_start_minutes,
            until_ms=until_ms,
            floor_ms=window_floor(now_ms, self.step_ms),
            now_ms=now_ms,
        )
        for coin in coins:
            self.book.covered_from[coin] = until_ms
        self.counters.gaps_unfillable += queued.unfillable
        if queued.missing or queued.unverified:
            log.info(
                "owed to REST for %d coins: %d missing and %d unverified minutes (warm start over %d minutes)",
                len(coins), queued.missing, queued.unverified, self.config.warm_start_minutes,
            )
        self.repairer.wake()

    def follow(self, universe: Universe) -> None:
        """Stream exactly ``universe``'s coins from now on (a shard's share, already taken):
        listings are subscribed and delistings unsubscribed on the sockets already open."""
        self.universe = universe
        placement = self.pool.follow(universe.coins)
        log.info(
            "streaming %d coins on %d socket(s)%s",
            sum(len(s) for s in placement.sockets),
            len(self.pool.connections),
            "" if self.config.shard is None else f" (shard {self.config.shard})",
        )

    async def _first_universe(self, stop: asyncio.Event) -> Universe | None:
        """Read the universe, retrying forever; while REST is down, start from the coins the
        memory last listed if it has any."""
        backoff = Backoff(self.config.backoff_initial_s, self.config.universe_retry_cap_s, self.config.backoff_jitter_s)
        while not stop.is_set():
            try:
                return await self._read_universe()
            except SourceError as exc:
                self._universe_error = str(exc)
                stored = await self.memory.call(listed_coins)
                if stored:
                    log.warning("universe unreadable (%s); streaming the %d coins stored", exc, len(stored))
                    return stored_universe(stored, self.config.max_coins).share(self.config.shard)
                log.warning("universe unreadable, retrying: %s", exc)
                await self.clock.sleep(backoff.next_delay())
        return None

    async def _read_universe(self) -> Universe:
        """The coins to follow: this shard's share of the universe read (all of it unsharded)."""
        universe = await read_universe(self.client, self.config.hip3_dexes, self.config.max_coins)
        await self.memory.call(upsert_universe, list(universe.rows), self.clock.now_ms())
        return universe.share(self.config.shard)

    async def _poll_universe(self) -> None:
        while True:
            await self.clock.sleep(self.config.universe_poll_s)
            try:
                universe = await self._read_universe()
            except SourceError as exc:
                log.warning("universe poll failed, keeping %d coins: %s", len(self.universe.coins), exc)
                continue
            added = set(universe.coins) - set(self.universe.coins)
            removed = set(self.universe.coins) - set(universe.coins)
            if added or removed:
                log.info("universe changed: +%d -%d coins", len(added), len(removed))
            if added:
                try:
                    await self._queue_horizon(sorted(added))  # a new listing warms up like an empty memory
                except Exception as exc:
                    if not is_database_error(exc):
                        raise
                    log.warning("could not queue the history of %d new coins yet: %s", len(added), exc)
            self.follow(universe)

    def _window_report(self, window_start_ms: int | None) -> tuple[dict[str, object], str | None]:
        metadata = self.counters.window(self.writer.depth)
        latencies = sorted(self.writer.latencies_ns)
        self.writer.latencies_ns.clear()
        if latencies:
            metadata["commit_latency_ms_p50"] = round(latencies[len(latencies) // 2] / 1e6, 2)
            metadata["commit_latency_ms_p99"] = round(latencies[int(len(latencies) * 0.99)] / 1e6, 2)
        metadata["coins"] = len(self.pool.coins)
        metadata["coins_beyond_subscription_limit"] = len(self.pool.unplaced)
        metadata["sockets_live"] = sum(1 for conn in self.pool.connections if conn.down_since_ms is None)
        if window_start_ms is None:
            return metadata, None
        if self._first_window_ms is None:
            self._first_window_ms = window_start_ms
        if not self.started.is_set():
            if self._universe_error is None and window_start_ms == self._first_window_ms:
                return metadata, None  # the window it started in: still starting, nothing failed yet
            return metadata, f"cannot stream: no perp universe ({self._universe_error or 'the first read is still in flight'})"
        return metadata, self.pool.outage(window_start_ms)
