"""The streamer's knobs, with defaults that keep inside Hyperliquid's per-IP WebSocket limits.

The channel's cadence is not here: it is read from ``market_assets.registry.CANDLES`` (the only
place a cadence is written); a coin's silence is judged against a *multiple* of it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from market_assets.memory.retention import WAL_BOUND_BYTES
from market_assets.memory.shards import Shard
from market_assets.registry import CANDLES
from market_assets.settings import Settings
from market_assets.sources.ratelimit import MAX_CANDLES_PER_SNAPSHOT
from streamer.repair import RepairPolicy

# Hyperliquid's WebSocket limits per IP (HLDOCS rate-limits-and-user-limits; sources.md §1.3).
HL_MAX_CONNECTIONS = 10
HL_MAX_SUBSCRIPTIONS = 1000
HL_MAX_NEW_CONNECTIONS_PER_MINUTE = 30
HL_MAX_MESSAGES_PER_MINUTE = 2000
HL_IDLE_CLOSE_S = 60
"""The server closes a connection that sent it nothing for 60 s; pings must come well inside it."""
HL_MAX_PING_INTERVAL_S = 50
"""The official SDK's interval: 10 s of slack under the idle close."""

SHARD_ENV = "MARKET_STREAM_SHARD"
"""``I/N``: follow shard I of N (``market stream --shard``); unset or empty, every coin."""


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard :data:`SHARD_ENV` names (raises ``memory.shards.ShardError`` on bad text)."""
    text = (os.environ if env is None else env).get(SHARD_ENV, "").strip()
    return Shard.parse(text) if text else None


@dataclass(frozen=True)
class StreamerConfig:
    interval: str = "1m"
    max_coins: int | None = None
    """Follow only the most traded coins (the local profile); ``None``: every listed perp."""
    hip3_dexes: tuple[str, ...] = ()
    shard: Shard | None = None
    """Follow only this shard's share of the coins (``streamer.universe``); ``None``: all."""

    max_connections: int = 4
    """At most this many sockets. The IP may hold 10: the rest is left to a concurrent probe."""
    subscriptions_per_connection: int = 60
    """Coins per socket before another socket is opened: a drop then costs one socket's share."""
    new_connections_per_minute: int = 15
    """Rolling-minute cap on socket opens: half the IP's 30, so a flapping server cannot make
    the streamer and a concurrent probe (each with its own cap) exceed it together."""
    messages_per_minute: int = 1000
    """Rolling-minute cap on messages sent (subscribes, pings): half the IP's 2,000, likewise."""

    ping_interval_s: float = 30.0
    """Application ``{"method":"ping"}`` period (nautilus_trader uses 30 s; at most 50)."""
    ack_timeout_s: float = 10.0
    """A subscription not acknowledged within this is sent again; twice unanswered, the socket
    is presumed broken and replaced."""
    connect_timeout_s: float = 10.0
    backoff_initial_s: float = 0.25
    backoff_cap_s: float = 2.0
    backoff_jitter_s: float = 0.2
    """nautilus_trader's Hyperliquid client (250 ms doubling, up to 200 ms jitter), capped at 2 s
    rather than its 5 s: the cap is how late a venue back from an outage is noticed, and the first
    frame after the resubscribe can take seconds more (the replay's tick is 5 s). After a 20 s
    outage data resumed 8.8-9.6 s after the return with 5 s, 6.5-7.2 s with 2 s (the 10 s of
    issue 12; tests/streamer/test_reconnect.py), and 5 s missed it for other outage lengths.
    Refused connects are refunded (:meth:`streamer.limits.Slot.refund`), so trying more often
    costs none of the venue's new-connection allowance."""
    silent_coin_multiple: float = 3.0
    """A coin with no frame for this many channel cadences is resubscribed, alone."""

    queue_bound: int = 10_000
    """Frames between the socket readers and the writer; a full queue stops the readers."""
    max_pending_rows: int = 50_000
    """Rows the writer holds while the memory is busy; past it the writer stops taking frames."""
    flush_interval_s: float = 0.1
    flush_rows: int = 1000
    """A flush starts when this many rows wait, or ``flush_interval_s`` after the last."""
    write_retry_s: float = 1.0
    """Wait before retrying a flush the memory refused (locked past the busy timeout)."""
    wal_bound_bytes: int = WAL_BOUND_BYTES
    """Past this WAL size the writer truncates it after its flush (``memory.retention.WalBound``)."""

    universe_retry_cap_s: float = 30.0
    """While the first universe read fails (and the memory lists no coins to start from), retry
    no faster than this: each failed read already spent the client's own attempts, weight the
    Dagster runs share, and the sockets' short backoff cap is meant for refused connects."""
    universe_poll_s: float = 600.0
    """Re-read ``metaAndAssetCtxs`` this often, to follow listings and delistings live."""
    warm_start_minutes: int = 1440
    """At start, and for a newly listed coin, every minute of this many before now that is not
    stored confirmed is queued for REST repair: features have a day of history within minutes
    of a first start, and what a previous process left unverified is made good."""
    repair: RepairPolicy = RepairPolicy()

    def __post_init__(self) -> None:
        if not 0 < self.ping_interval_s <= HL_MAX_PING_INTERVAL_S:
            raise ValueError(f"ping_interval_s must be in (0, {HL_MAX_PING_INTERVAL_S}] (the server cuts at {HL_IDLE_CLOSE_S} s)")
        if not 1 <= self.max_connections <= HL_MAX_CONNECTIONS:
            raise ValueError(f"max_connections must be in [1, {HL_MAX_CONNECTIONS}]")
        if not 1 <= self.new_connections_per_minute <= HL_MAX_NEW_CONNECTIONS_PER_MINUTE:
            raise ValueError(f"new_connections_per_minute must be in [1, {HL_MAX_NEW_CONNECTIONS_PER_MINUTE}]")
        if not 1 <= self.messages_per_minute <= HL_MAX_MESSAGES_PER_MINUTE:
            raise ValueError(f"messages_per_minute must be in [1, {HL_MAX_MESSAGES_PER_MINUTE}]")
        if self.subscriptions_per_connection < 1:
            raise ValueError("subscriptions_per_connection must be positive")
        if not 0 <= self.warm_start_minutes <= MAX_CANDLES_PER_SNAPSHOT:
            raise ValueError(f"warm_start_minutes must be in [0, {MAX_CANDLES_PER_SNAPSHOT}] (candleSnapshot's reach)")
        if self.silent_coin_multiple <= 0:
            raise ValueError("silent_coin_multiple must be positive")
        if self.backoff_initial_s <= 0 or self.backoff_cap_s < self.backoff_initial_s or self.backoff_jitter_s < 0:
            raise ValueError("backoff must start positive, cap at or above its start, and jitter non-negative")

    @classmethod
    def from_settings(cls, settings: Settings, shard: Shard | None = None) -> StreamerConfig:
        return cls(
            max_coins=settings.max_coins,
            hip3_dexes=settings.hip3_dexes,
            shard=shard,
            warm_start_minutes=settings.warm_start_minutes,
        )

    @property
    def window_ms(self) -> int:
        """One ledger window: the channel's cadence."""
        return CANDLES.expected_cadence_sec * 1000

    @property
    def silent_coin_ms(self) -> int:
        return math.ceil(self.silent_coin_multiple * CANDLES.expected_cadence_sec * 1000)

    @property
    def max_subscriptions(self) -> int:
        return HL_MAX_SUBSCRIPTIONS
