from __future__ import annotations

import json
from typing import Any

import pytest

from market_assets import fixtures

T0_MS = 1_795_000_000_000
"""2026-11-18 07:06:40 UTC; the replay clock starts here in every test."""
SPEED = 1000.0
"""Replay time runs 1,000x faster: a minute of source time is 60 ms of test time."""


@pytest.fixture
def replay_speed() -> float:
    return SPEED


def raw(name: str) -> Any:
    """A fixture as plain JSON, to check parsed records against the recorded text."""
    return json.loads(fixtures.fixture_bytes(name))
