from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from market_assets.defs.resources import MarketMemory
from market_assets.replay import ReplayServers, ReplayThread


@pytest.fixture
def replay() -> Iterator[ReplayServers]:
    """Loopback replay servers on their own thread: Dagster runs the assets synchronously."""
    with ReplayThread() as servers:
        yield servers


@pytest.fixture
def offline(replay: ReplayServers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MarketMemory:
    """Settings pointing every source at the replay, in the capped local profile."""
    monkeypatch.setenv("MARKET_REPLAY_HTTP", replay.http_url)
    monkeypatch.setenv("MARKET_REPLAY_WS", replay.ws_url)
    monkeypatch.setenv("MARKET_PROFILE", "local")
    monkeypatch.delenv("MARKET_DB", raising=False)
    return MarketMemory(db_path=str(tmp_path / "market.db"))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance
