"""The streamer's sockets: the universe placed over them, and how they are doing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from streamer.connection import Connection, ConnectionState, SocketLimits, StreamSink
from streamer.placement import Placement, place

log = logging.getLogger(__name__)


class Pool:
    def __init__(self, limits: SocketLimits, sink: StreamSink) -> None:
        self.limits = limits
        self.sink = sink
        self.connections: list[Connection] = []
        self.unplaced: tuple[str, ...] = ()

    @property
    def coins(self) -> list[str]:
        return [coin for conn in self.connections for coin in conn.coins]

    def follow(self, ranked_coins: Sequence[str]) -> Placement:
        """Stream exactly ``ranked_coins`` (most traded first), starting sockets as needed."""
        config = self.limits.config
        placement = place(
            ranked_coins,
            [list(conn.coins) if conn.state is not ConnectionState.CLOSED else [] for conn in self.connections],
            max_connections=config.max_connections,
            per_connection=config.subscriptions_per_connection,
            max_subscriptions=config.max_subscriptions,
        )
        if placement.unplaced:
            log.warning("%d coins beyond the IP's subscription limit are not streamed", len(placement.unplaced))
        self.unplaced = placement.unplaced
        for index, coins in enumerate(placement.sockets):
            if index < len(self.connections) and self.connections[index].state is not ConnectionState.CLOSED:
                self.connections[index].set_coins(coins)
                continue
            if not coins:
                continue
            conn = Connection(index, coins, self.limits, self.sink)
            if index < len(self.connections):
                self.connections[index] = conn
            else:
                self.connections.append(conn)
            conn.start()
        return placement

    def outage(self, since_ms: int) -> str | None:
        """Why the pool could not stay connected, if a socket with coins was never LIVE since
        ``since_ms`` (a whole ledger window down); None when every socket streamed at some point."""
        down = [
            conn
            for conn in self.connections
            if conn.coins
            and conn.state is not ConnectionState.CLOSED
            and conn.down_since_ms is not None
            and conn.down_since_ms <= since_ms
        ]
        if not down:
            return None
        coins = sum(len(conn.coins) for conn in down)
        detail = "; ".join(f"socket {conn.index}: {conn.last_error or conn.state.value}" for conn in down)
        return f"cannot stay connected: {len(down)} socket(s) carrying {coins} coins down since the window began ({detail})"

    async def close(self) -> None:
        await asyncio.gather(*(conn.close() for conn in self.connections))
