"""Hyperliquid's REST budget: 1,200 weight per rolling minute per IP, enforced before each call.

Weights (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits):
every info request we make costs 20, plus one per 60 candles a ``candleSnapshot`` returns and
one per 20 rows a ``fundingHistory`` returns. The extra is only known once the answer is in, so
a call reserves the most it could cost and settles at the real cost when the response has been
read. Until then it counts in full. Because a reservation is stamped at *completion* (never
earlier than the server saw the request) with a weight never below what the server charged,
the limiter's rolling minute always contains at least what the server's does: it cannot let a
burst through that the server would answer with 429.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from market_assets.memory import weight as weight_ledger
from market_assets.memory.target import MemoryTarget
from market_assets.sources.timing import AsyncClock

log = logging.getLogger(__name__)
T = TypeVar("T")

HYPERLIQUID_WEIGHT_PER_MINUTE = 1200
WINDOW_MS = 60_000
INFO_BASE_WEIGHT = 20
CANDLES_PER_EXTRA_WEIGHT = 60
FUNDING_ROWS_PER_EXTRA_WEIGHT = 20
MAX_CANDLES_PER_SNAPSHOT = 5000
""""Only the most recent 5000 candles are available" (info endpoint docs, candle snapshot)."""
MAX_ROWS_PER_TIME_RANGE_PAGE = 500
"""Time-range info responses return at most 500 elements (info endpoint docs, pagination)."""

_INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
}
HOUR_MS = 3_600_000


def interval_ms(interval: str) -> int:
    """Length of a candle interval; ``1M`` (calendar month) has none and is refused."""
    try:
        return _INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(f"unsupported candle interval {interval!r}; one of {', '.join(_INTERVAL_MS)}") from None


def info_weight(request_type: str, items: int = 0) -> int:
    """Weight the server charges for one info request of ``request_type`` that returned ``items``.

    The docs say "per 60 items"; rounding up errs on the side of the budget.
    """
    if request_type == "candleSnapshot":
        return INFO_BASE_WEIGHT + math.ceil(items / CANDLES_PER_EXTRA_WEIGHT)
    if request_type == "fundingHistory":
        return INFO_BASE_WEIGHT + math.ceil(items / FUNDING_ROWS_PER_EXTRA_WEIGHT)
    return INFO_BASE_WEIGHT


def max_candles(interval: str, start_ms: int, end_ms: int) -> int:
    """Upper bound of the candles a bucket-inclusive ``[start_ms, end_ms]`` range can return."""
    step = interval_ms(interval)
    return max(0, min(MAX_CANDLES_PER_SNAPSHOT, end_ms // step - start_ms // step + 1))


def max_funding_rows(start_ms: int, end_ms: int | None) -> int:
    """Upper bound of one ``fundingHistory`` page: hourly rows, each hour possibly jittered in."""
    if end_ms is None:
        return MAX_ROWS_PER_TIME_RANGE_PAGE
    return max(0, min(MAX_ROWS_PER_TIME_RANGE_PAGE, (end_ms - start_ms) // HOUR_MS + 2))


@dataclass
class _Charge:
    weight: int
    stamped_ms: int | None = None
    """``None`` while the request is in flight: it then counts whatever the time."""


class Reservation:
    """One request's claim on the budget; :meth:`settle` with the real item count when known."""

    def __init__(self, request_type: str, waited: bool) -> None:
        self._request_type = request_type
        self.waited = waited
        """Whether the budget held this request back before admitting it."""
        self.settled_weight: int | None = None

    def settle(self, items: int) -> None:
        self.settled_weight = info_weight(self._request_type, items)

    @property
    def charged_weight(self) -> int:
        """What the request costs once over: its settled weight, or the base weight for one
        that failed before it could be settled (the server may well have counted it)."""
        return self.settled_weight if self.settled_weight is not None else INFO_BASE_WEIGHT


class WeightBudget(Protocol):
    def reserve(self, request_type: str, max_items: int = 0) -> AbstractAsyncContextManager[Reservation]:
        """Hold the budget for one request until it is answered (or fails)."""
        ...


class WeightLimiter:
    """A rolling-minute weight budget shared by every request to one host from this process.

    ``waits`` and ``waited_ms`` count how often and how long callers were held back. That is
    pacing we impose on ourselves, not the host throttling us: a caller's ledger run records it
    as ``budget_waits`` metadata, apart from its throttle count (429s).
    """

    def __init__(
        self,
        clock: AsyncClock,
        capacity: int = HYPERLIQUID_WEIGHT_PER_MINUTE,
        window_ms: int = WINDOW_MS,
    ) -> None:
        self._clock = clock
        self.capacity = capacity
        self.window_ms = window_ms
        self._charges: deque[_Charge] = deque()
        self._admission = asyncio.Lock()
        self._settled = asyncio.Event()
        self.waits = 0
        self.waited_ms = 0

    def used(self) -> int:
        """Weight counted in the rolling minute ending now, in-flight reservations included."""
        self._expire(self._clock.now_ms())
        return sum(charge.weight for charge in self._charges)

    @asynccontextmanager
    async def reserve(self, request_type: str, max_items: int = 0) -> AsyncIterator[Reservation]:
        """Hold the budget for one request; on exit charge what it really cost
        (:attr:`Reservation.charged_weight`)."""
        charge, waited = await self._admit(min(self.capacity, info_weight(request_type, max_items)))
        reservation = Reservation(request_type, waited)
        try:
            yield reservation
        finally:
            charge.weight = reservation.charged_weight
            charge.stamped_ms = self._clock.now_ms()
            self._settled.set()

    async def _admit(self, weight: int) -> tuple[_Charge, bool]:
        async with self._admission:
            waited = False
            started_ms = self._clock.now_ms()
            while True:
                now_ms = self._clock.now_ms()
                self._expire(now_ms)
                if sum(charge.weight for charge in self._charges) + weight <= self.capacity:
                    break
                waited = True
                stamped = [c.stamped_ms for c in self._charges if c.stamped_ms is not None]
                if stamped:
                    await self._clock.sleep((min(stamped) + self.window_ms - now_ms + 1) / 1000)
                else:
                    # Only in-flight requests hold the budget: wait until one of them settles.
                    self._settled.clear()
                    await self._settled.wait()
            if waited:
                self.waits += 1
                self.waited_ms += self._clock.now_ms() - started_ms
            charge = _Charge(weight)
            self._charges.append(charge)
            return charge, waited

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.window_ms
        self._charges = deque(
            charge for charge in self._charges if charge.stamped_ms is None or charge.stamped_ms > horizon
        )


ABANDONED_CHARGE_MS = 2 * WINDOW_MS
"""A charge never settled (its process died mid-request) stops counting this long after its
reservation: every attempt ends within its timeout (10 s), far inside it."""

IN_FLIGHT_POLL_MS = 250
"""When only requests in flight (maybe in another process) hold the budget, look again this often."""


class SharedWeightLimiter:
    """:class:`WeightLimiter`'s budget, kept in a file every process on the machine shares.

    Hyperliquid's 1,200 weight per minute is per IP: the streamer's backfills and the Dagster
    runs (funding, candle history) each kept their own budget, so together they could spend
    it twice and draw 429s. Charges go to ``path`` (``memory.weight``); admission is one
    SQLite transaction, off the event loop. Inside the process, admissions queue in order, as
    :class:`WeightLimiter`'s do.
    """

    def __init__(
        self,
        clock: AsyncClock,
        path: Path,
        host: str = "hyperliquid",
        capacity: int = HYPERLIQUID_WEIGHT_PER_MINUTE,
        window_ms: int = WINDOW_MS,
    ) -> None:
        self._clock = clock
        self.path = path
        self.host = host
        self.capacity = capacity
        self.window_ms = window_ms
        self._admission = asyncio.Lock()
        self.waits = 0
        self.waited_ms = 0

    def used(self) -> int:
        """Weight counted by every process in the rolling minute ending now, in flight included."""
        return self._ledger(weight_ledger.used_weight, self.host, self._clock.now_ms(), self.window_ms, ABANDONED_CHARGE_MS)

    @asynccontextmanager
    async def reserve(self, request_type: str, max_items: int = 0) -> AsyncIterator[Reservation]:
        """As :meth:`WeightLimiter.reserve`: held at the most it could cost, settled at what it did."""
        weight = min(self.capacity, info_weight(request_type, max_items))
        charge_id, waited = await self._admit(weight)
        reservation = Reservation(request_type, waited)
        try:
            yield reservation
        finally:
            try:
                await asyncio.to_thread(
                    self._ledger, weight_ledger.settle, charge_id, reservation.charged_weight, self._clock.now_ms()
                )
            except sqlite3.Error as exc:  # the charge keeps its reserved weight until abandoned
                log.warning("could not settle a weight charge in %s: %s", self.path, exc)

    async def _admit(self, weight: int) -> tuple[int, bool]:
        async with self._admission:
            waited = False
            started_ms = self._clock.now_ms()
            while True:
                now_ms = self._clock.now_ms()
                admission = await asyncio.to_thread(
                    self._ledger, weight_ledger.admit, self.host, weight, capacity=self.capacity,
                    now_ms=now_ms, window_ms=self.window_ms, abandoned_ms=ABANDONED_CHARGE_MS,
                )
                if admission.charge_id is not None:
                    break
                waited = True
                room_at_ms = admission.room_at_ms if admission.room_at_ms is not None else now_ms + IN_FLIGHT_POLL_MS
                await self._clock.sleep((room_at_ms - now_ms) / 1000)
            if waited:
                self.waits += 1
                self.waited_ms += self._clock.now_ms() - started_ms
            return admission.charge_id, waited

    def _ledger(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """One call on a connection of its own: calls come from worker threads, a few a second."""
        conn = weight_ledger.open_weight_ledger(self.path)
        try:
            return fn(conn, *args, **kwargs)
        finally:
            conn.close()


def shared_budget(target: MemoryTarget, clock: AsyncClock, home: Path | None = None) -> SharedWeightLimiter:
    """The Hyperliquid budget of every process of this host using the memory at ``target``.

    The budget is per IP, so per host: beside a SQLite memory, or in the host's folder ``home``
    (``Settings.home``; ``None``: the folder ``Settings`` derives from the environment,
    ``MARKET_HOME``) beside a PostgreSQL memory that other hosts share."""
    if home is None:
        from market_assets.settings import (
            home_dir,  # settings imports the sources: a cycle at the top
        )

        home = home_dir(target, os.environ)
    return SharedWeightLimiter(clock, weight_ledger.weight_ledger_path(target, home))
