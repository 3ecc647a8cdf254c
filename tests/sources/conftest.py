from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from market_assets import fixtures
from market_assets.replay import ReplayConfig, ReplayServers
from market_assets.sources.timing import AcceleratedClock

T0_MS = 1_795_000_000_000
"""2026-11-18 07:06:40 UTC; the replay clock starts here in every test."""
SPEED = 1000.0
"""Replay time runs 1,000x faster: a minute of source time is 60 ms of test time."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def replay_clock() -> AcceleratedClock:
    return AcceleratedClock(SPEED, T0_MS)


@pytest.fixture
async def replay(replay_clock: AcceleratedClock) -> AsyncIterator[ReplayServers]:
    async with ReplayServers(ReplayConfig(clock=replay_clock, tick_s=5.0)) as servers:
        yield servers


def raw(name: str) -> Any:
    """A fixture as plain JSON, to check parsed records against the recorded text."""
    return json.loads(fixtures.fixture_bytes(name))
