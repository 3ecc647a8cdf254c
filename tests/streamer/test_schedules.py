"""Pure pieces of reconnecting within Hyperliquid's limits: the backoff schedule, the rolling
limits on new connections and messages, and the configuration's bounds."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from market_assets.sources.timing import VirtualClock
from streamer.backoff import Backoff
from streamer.config import HL_MAX_NEW_CONNECTIONS_PER_MINUTE, StreamerConfig
from streamer.limits import RollingLimit

T0_MS = 1_795_000_000_000


def test_backoff_doubles_from_its_start_and_is_capped_with_jitter() -> None:
    backoff = Backoff(0.25, 5.0, 0.2, random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    bases = [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert all(base <= delay <= base + 0.2 for base, delay in zip(bases, delays))
    assert len({round(d - b, 6) for d, b in zip(delays, bases)}) > 1  # jitter varies


def test_backoff_never_gives_up_and_stays_capped_after_days_of_attempts() -> None:
    backoff = Backoff(0.25, 5.0, 0.2, random.Random(1))
    delays = [backoff.next_delay() for _ in range(100_000)]
    assert len(delays) == 100_000 and max(delays) <= 5.2 and min(delays[10:]) >= 5.0


def test_a_session_that_went_live_restarts_the_schedule() -> None:
    backoff = Backoff(0.25, 5.0, 0.0)
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 0.25


def test_rolling_limit_admits_its_capacity_then_waits_for_the_oldest_to_leave_the_minute() -> None:
    clock = VirtualClock(T0_MS)
    limit = RollingLimit(clock, capacity=30)

    async def open_many() -> list[int]:
        times = []
        for _ in range(31):
            await limit.acquire()
            times.append(clock.now_ms())
        return times

    times = asyncio.run(open_many())
    assert times[:30] == [T0_MS] * 30
    assert times[30] == T0_MS + 60_000
    assert limit.waits == 1 and limit.waited_ms == 60_000


def test_rolling_limit_counts_any_sixty_second_span_not_calendar_minutes() -> None:
    limit = RollingLimit(VirtualClock(T0_MS), capacity=3)
    limit.record(T0_MS + 59_000)
    limit.record(T0_MS + 59_500)
    limit.record(T0_MS + 60_500)  # a new calendar minute, same rolling minute
    assert limit.wait_ms(T0_MS + 61_000) == 59_000 + 60_000 - 61_000
    assert limit.wait_ms(T0_MS + 119_000) == 0


def test_a_connection_counts_while_it_opens_and_from_when_it_opened() -> None:
    clock = VirtualClock(T0_MS)
    limit = RollingLimit(clock, capacity=2)

    async def open_slowly() -> None:
        async with limit.slot():
            assert limit.wait_ms(clock.now_ms()) == 0  # one in flight, one still fits
            async with limit.slot():
                assert limit.wait_ms(clock.now_ms()) is None  # only a settling open makes room
                clock.advance(5)  # the socket takes 5 s to open
        assert limit.wait_ms(clock.now_ms()) == 60_000  # counted from the end, not the ask

    asyncio.run(open_slowly())


def test_an_attempt_refunded_as_never_reaching_the_server_leaves_no_trace_in_the_minute() -> None:
    clock = VirtualClock(T0_MS)
    limit = RollingLimit(clock, capacity=2)

    async def outage_then_return() -> None:
        for _ in range(20):  # refused: nothing listened
            async with limit.slot() as slot:
                clock.advance(0.5)
                slot.refund()
        assert limit.wait_ms(clock.now_ms()) == 0
        for _ in range(2):
            async with limit.slot():
                clock.advance(0.5)
        assert limit.wait_ms(clock.now_ms()) == 60_000 - 500  # only the two opens count

    asyncio.run(outage_then_return())
    assert limit.waits == 0


def test_a_refund_lets_an_attempt_waiting_behind_it_in_at_once() -> None:
    clock = VirtualClock(T0_MS)
    limit = RollingLimit(clock, capacity=1)

    async def admitted_at() -> int:
        async with limit.slot():
            return clock.now_ms()

    async def two_sockets() -> int:
        async with limit.slot() as slot:
            waiting = asyncio.create_task(admitted_at())
            await asyncio.sleep(0)
            assert not waiting.done()  # only this attempt's outcome can make room
            slot.refund()
            return await waiting

    assert asyncio.run(two_sockets()) == T0_MS


def test_an_attempt_that_failed_without_a_refund_still_counts() -> None:
    clock = VirtualClock(T0_MS)
    limit = RollingLimit(clock, capacity=1)

    async def answered_429() -> None:
        with pytest.raises(ConnectionError):
            async with limit.slot():
                raise ConnectionError("HTTP 429")

    asyncio.run(answered_429())
    assert limit.wait_ms(clock.now_ms()) == 60_000


def test_each_wait_on_a_limit_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamer.limits")
    clock = VirtualClock(T0_MS)
    limit = RollingLimit(clock, capacity=2, name="new connections")

    async def five_opens() -> None:
        for _ in range(5):
            await limit.acquire()

    asyncio.run(five_opens())
    assert [r.getMessage() for r in caplog.records] == [
        "new connections: waited 60.0 s for room under 2 per 60 s",
        "new connections: waited 60.0 s for room under 2 per 60 s",
    ]
    assert limit.waits == 2


def test_config_refuses_pings_slower_than_fifty_seconds_and_limits_above_the_ips() -> None:
    with pytest.raises(ValueError, match="ping_interval_s"):
        StreamerConfig(ping_interval_s=55)
    with pytest.raises(ValueError, match="new_connections_per_minute"):
        StreamerConfig(new_connections_per_minute=HL_MAX_NEW_CONNECTIONS_PER_MINUTE + 1)
    with pytest.raises(ValueError, match="max_connections"):
        StreamerConfig(max_connections=11)
    with pytest.raises(ValueError, match="messages_per_minute"):
        StreamerConfig(messages_per_minute=2001)


def test_a_coin_is_silent_after_a_multiple_of_the_registry_cadence() -> None:
    assert StreamerConfig(silent_coin_multiple=2.5).silent_coin_ms == 150_000
    assert StreamerConfig().window_ms == 60_000
