"""The socket state machine, seen through its transitions against the replay's /ws."""

from __future__ import annotations

from pathlib import Path

import pytest

from market_assets.replay import ReplayServers
from streamer.connection import TRANSITIONS, ConnectionState

from .conftest import streamer_config, streaming, wait_simulated

pytestmark = pytest.mark.anyio

S = ConnectionState


def test_every_state_leads_to_closed_and_closed_leads_nowhere() -> None:
    for state in S:
        seen, frontier = {state}, [state]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert S.CLOSED in seen
    assert TRANSITIONS[S.CLOSED] == frozenset()


def test_a_socket_is_live_only_through_subscribing_and_recovers_only_through_backing_off() -> None:
    assert [s for s in S if S.LIVE in TRANSITIONS[s]] == [S.SUBSCRIBING]
    assert [s for s in S if S.CONNECTING in TRANSITIONS[s]] == [S.IDLE, S.BACKING_OFF]


async def test_a_dropped_socket_backs_off_reconnects_resubscribes_every_coin_and_closes_on_shutdown(
    replay: ReplayServers, memory_path: Path
) -> None:
    async with streaming(replay, memory_path, streamer_config(max_coins=3)) as streamer:
        await wait_simulated(replay, 20)
        (conn,) = streamer.pool.connections
        assert conn.state is S.LIVE and conn.acked == set(streamer.universe.coins)  # every ack verified
        replay.plan.drop_connections()
        await wait_simulated(replay, 20)
        assert conn.state is S.LIVE and conn.acked == set(streamer.universe.coins)
    states = [state for _, state in conn.transitions]
    assert states == [
        S.CONNECTING, S.SUBSCRIBING, S.LIVE,
        S.BACKING_OFF, S.CONNECTING, S.SUBSCRIBING, S.LIVE,
        S.CLOSING, S.CLOSED,
    ]  # fmt: skip
    assert all(replay.ws.stats.subscribes_by_coin[coin] == 2 for coin in streamer.universe.coins)
