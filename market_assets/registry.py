"""The channel registry: the single declaration of every (source, channel) the platform keeps fresh.

This module is the only place a cadence, a stale threshold, a retention period or an
expected-subject rule is written (SPEC §2). Dagster schedules and freshness policies, the
health contract, the dashboard and the CLI all read it; a test proves nothing restates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

STALE_FACTOR = 6
"""``staleAfterSec`` defaults to 6 × cadence (SPEC §2; the runbook's candles: 60 s / 360 s)."""

FRESHNESS_WARN_DIVISOR = 2
"""Dagster's freshness warns at half the stale threshold (its fail window), never under a minute."""
MIN_FRESHNESS_WINDOW_SEC = 60
"""Dagster refuses freshness windows shorter than a minute (``freshness.py`` ``from_timedeltas``)."""

LEDGER_RETENTION = timedelta(days=90)
"""Ledger records are compact and pruned on their own, longer policy (SPEC §10)."""


class ExpectedSubjects(StrEnum):
    """Where the expected number of subjects of a channel comes from, when one exists."""

    PERP_UNIVERSE = "perp_universe"
    """Listed (not delisted) coins of the Hyperliquid perp universe from ``metaAndAssetCtxs``."""
    TRACKED_MARKETS = "tracked_markets"
    """Polymarket markets kept in the discovery registry."""


class Producer(StrEnum):
    """Which process writes a channel's runs: what to check first when it has none."""

    STREAMER = "the streamer (market stream)"
    DAGSTER = "its Dagster schedule (dagster-daemon)"


@dataclass(frozen=True)
class DataLocation:
    """Where a channel's rows live, so the memory can count rows, subjects and data lag.

    ``scope`` restricts the table to the channel's rows by column equality (the candles table
    also holds other intervals than the streamer's ``1m``).
    """

    table: str
    time_column: str
    """Epoch-millisecond column holding the observed data timestamp."""
    subject_column: str
    """Column whose distinct values are the channel's subjects (coins, markets, chains)."""
    scope: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Channel:
    """One (source, channel). Compared and hashed by identity: each is declared once, below."""

    source: str
    name: str
    expected_cadence_sec: int
    description: str
    data: DataLocation
    producer: Producer = Producer.DAGSTER
    expected_subjects: ExpectedSubjects | None = None
    retention: timedelta | None = None
    """How long the channel's rows are kept; ``None`` keeps them (compact upserted rows)."""
    stale_after_sec: int = 0
    """0 means the default, ``STALE_FACTOR`` × cadence."""

    def __post_init__(self) -> None:
        if self.expected_cadence_sec <= 0:
            raise ValueError(f"{self.key}: expected cadence must be positive")
        if self.stale_after_sec == 0:
            object.__setattr__(self, "stale_after_sec", STALE_FACTOR * self.expected_cadence_sec)
        if self.stale_after_sec < self.expected_cadence_sec:
            raise ValueError(f"{self.key}: stale threshold is shorter than the cadence")

        cron_for_cadence(self.expected_cadence_sec)  # refuse a cadence no schedule can keep

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"

    @property
    def cron_schedule(self) -> str:
        """The cron expression that runs this channel once per cadence (UTC)."""
        return cron_for_cadence(self.expected_cadence_sec)

    @property
    def freshness_warn_sec(self) -> int:
        """Warn window of the channel's Dagster freshness policy; its fail window is ``stale_after_sec``."""
        return max(MIN_FRESHNESS_WINDOW_SEC, self.stale_after_sec // FRESHNESS_WARN_DIVISOR)


def cron_for_cadence(cadence_sec: int) -> str:
    """Derive the cron expression for a cadence; cron can only divide the minute, hour and day evenly."""
    minutes, seconds = divmod(cadence_sec, 60)
    if seconds == 0 and minutes == 1:
        return "* * * * *"
    if seconds == 0 and minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *"
    hours, leftover = divmod(minutes, 60)
    if seconds == 0 and leftover == 0 and hours == 1:
        return "0 * * * *"
    if seconds == 0 and leftover == 0 and hours < 24 and 24 % hours == 0:
        return f"0 */{hours} * * *"
    if seconds == 0 and leftover == 0 and hours == 24:
        return "0 0 * * *"
    raise ValueError(f"a cadence of {cadence_sec}s cannot be written as a cron schedule")


CANDLES = Channel(
    source="hyperliquid",
    name="candles",
    expected_cadence_sec=60,
    description="1-minute OHLCV candles of every listed perp, streamed over WebSocket with REST gap backfill.",
    data=DataLocation("candles", "open_time_ms", "coin", scope={"interval": "1m"}),
    producer=Producer.STREAMER,
    expected_subjects=ExpectedSubjects.PERP_UNIVERSE,
    retention=timedelta(days=30),
)
FUNDING = Channel(
    source="hyperliquid",
    name="funding",
    expected_cadence_sec=900,
    description="Hourly funding rates: the current hour from the asset contexts, settled hours from fundingHistory.",
    data=DataLocation("funding", "hour_ms", "coin"),
    expected_subjects=ExpectedSubjects.PERP_UNIVERSE,
    retention=timedelta(days=365),
)
FEATURES = Channel(
    source="hyperliquid",
    name="features",
    expected_cadence_sec=300,
    description="RSI, Bollinger Bands, SMA/EMA and MACD over closed 1-minute candles, TA-Lib definitions.",
    data=DataLocation("features", "open_time_ms", "coin", scope={"interval": "1m"}),
    expected_subjects=ExpectedSubjects.PERP_UNIVERSE,
    retention=timedelta(days=30),
)
MAINTENANCE = Channel(
    source="hyperliquid",
    name="maintenance",
    expected_cadence_sec=3600,
    description="Rollups of closed 1-minute candles to 5m, 1h and 1d, then retention pruning and WAL hygiene.",
    data=DataLocation("candle_rollups", "open_time_ms", "coin"),
)
POLYMARKET_DISCOVERY = Channel(
    source="polymarket",
    name="discovery",
    expected_cadence_sec=3600,
    description="Markets found by the configured search terms, kept as the registry of tracked markets.",
    data=DataLocation("polymarket_tracked_markets", "last_seen_at_ms", "market_id"),
)
POLYMARKET_SUMMARY = Channel(
    source="polymarket",
    name="summary",
    expected_cadence_sec=300,
    description="Compact rows of every tracked market: question, outcome prices, volume, liquidity, end date.",
    data=DataLocation("polymarket_markets", "updated_at_ms", "market_id"),
    expected_subjects=ExpectedSubjects.TRACKED_MARKETS,
)
DEFILLAMA_MACRO = Channel(
    source="defillama",
    name="macro",
    expected_cadence_sec=3600,
    description="Total and per-chain TVL, stablecoin supply per peg, DEX volume and fees as compact series.",
    data=DataLocation("defillama_series", "ts_ms", "subject"),
)

REGISTRY: tuple[Channel, ...] = (
    CANDLES,
    FUNDING,
    FEATURES,
    MAINTENANCE,
    POLYMARKET_DISCOVERY,
    POLYMARKET_SUMMARY,
    DEFILLAMA_MACRO,
)
"""Every channel, in the order the health document lists them."""


def channel(source: str, name: str) -> Channel:
    """The registered channel ``source/name``; a clear error for one that is not registered."""
    for candidate in REGISTRY:
        if candidate.source == source and candidate.name == name:
            return candidate
    known = ", ".join(c.key for c in REGISTRY)
    raise KeyError(f"unknown channel {source}/{name}; registered: {known}")
