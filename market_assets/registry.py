"""The channel registry: the single declaration of every (source, channel) the platform keeps fresh.

This module is the only place a cadence, a stale threshold, a retention period or an
expected-subject rule is written (SPEC §2). Dagster schedules and freshness policies, the
health contract, the dashboard and the CLI all read it; a test proves nothing restates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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

RETRY_BACKOFF_BASE = timedelta(minutes=1)
"""The catch-up sensor re-runs a ``failed`` channel this long after its failure, and doubles the
wait with each consecutive failure (1, 2, 4, 8 ... minutes): a source that is down for a moment
is retried at once, one that keeps refusing is not hammered."""
RETRY_BACKOFF_CAP = timedelta(minutes=30)
"""The longest wait before a retry, and never longer than the channel's cadence: past that its
own schedule runs it anyway."""

MIN_COVERAGE = 0.9
"""``low_coverage`` below 90 % of the expected subjects seen in the last hour: a few coins listed
minutes ago may not have traded yet, a tenth of the universe missing is a real hole."""
RECENT_RUNS_WINDOW = timedelta(hours=1)
"""``recent_failures`` and ``throttled`` look at the runs started in this window (60 streamer
windows), widened to three cadences for a channel that runs less often."""
RECENT_RUNS_CADENCES = 3
MAX_RECENT_FAILURES = 1
"""Any failed run in the window warns: each one is a window or a job that delivered nothing."""
MAX_RECENT_THROTTLES = 1
"""Any 429 warns: the per-host weight budget exists so the sources never have to throttle us."""
UNVERIFIED_CANDLES_AFTER = timedelta(minutes=10)
"""``unverified_candles`` once the oldest unverified closed minute of the last 24 h closed this long
ago. Repairs owe every minute exact within 5 minutes of a dropped connection (issue 12); twice
that leaves room for a wait on the shared weight budget and still flags a queue that is stuck or
losing to new entries."""
VOLUME_RECOUNT_AFTER = timedelta(minutes=1)
"""Total rows and last-24 h counts scan O(rows) (625 ms and 35 ms for 10M candles); the API
serves them as counted at most this long ago and recounts after responding."""


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


@dataclass(frozen=True)
class WarningThresholds:
    """When the dashboard warns about a channel (SPEC §5). A 0 is derived from the channel."""

    data_lag_sec: int = 0
    """``data_lag`` when the newest observed data timestamp is older; 0: the stale threshold."""
    min_coverage: float = MIN_COVERAGE
    recent_window_sec: int = 0
    """0: ``RECENT_RUNS_WINDOW``, or ``RECENT_RUNS_CADENCES`` cadences when that is longer."""
    recent_failures: int = MAX_RECENT_FAILURES
    """``recent_failures`` at this many failed runs started in the window."""
    throttles: int = MAX_RECENT_THROTTLES
    """``throttled`` at this many throttled requests (HTTP 429) in the window's runs."""
    unverified_after_sec: int | None = None
    """``unverified_candles`` when an unverified minute closed longer ago; ``None``: the channel's
    rows are not confirmed one by one (only the streamed candles are, SPEC §8)."""

    def resolved(self, cadence_sec: int, stale_after_sec: int) -> WarningThresholds:
        default_window = max(int(RECENT_RUNS_WINDOW.total_seconds()), RECENT_RUNS_CADENCES * cadence_sec)
        return replace(
            self,
            data_lag_sec=self.data_lag_sec or stale_after_sec,
            recent_window_sec=self.recent_window_sec or default_window,
        )


CHECK_PROBLEMS_LISTED = 20
"""How many failing rows (coin, minute, value) a check's metadata lists; its count says the rest."""


@dataclass(frozen=True)
class QualityThresholds:
    """What the channel's asset checks tolerate (SPEC §12). Each check reads the fields it needs;
    the defaults are the platform's, a channel declares only what differs."""

    window_sec: int = int(timedelta(days=1).total_seconds())
    """How far back the checks of the channel look (continuity, invariants, revisions)."""
    sample: int = 0
    """Rollups: buckets checked per level; features: coins recomputed. 0: not a sampling check."""
    tolerance: float = 0.0
    """Features: the largest absolute difference from TA-Lib's batch result; Polymarket: how far
    a binary market's two prices may sum from 1."""
    bound: float = 0.0
    """Funding: the largest |hourly rate| a settled hour may have; DefiLlama: the largest
    day-over-day factor a chain's TVL may move by without a flag."""
    floor: float = 0.0
    """DefiLlama: the TVL (USD) under which a chain's day-over-day moves are noise: a jump counts
    only when the larger of the two days is at least this."""


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
    warnings: WarningThresholds = WarningThresholds()
    """The dashboard's warning thresholds, resolved against the cadence on declaration."""
    quality: QualityThresholds = QualityThresholds()
    """What the channel's asset checks tolerate (``market_assets.quality``)."""

    def __post_init__(self) -> None:
        if self.expected_cadence_sec <= 0:
            raise ValueError(f"{self.key}: expected cadence must be positive")
        if self.stale_after_sec == 0:
            object.__setattr__(self, "stale_after_sec", STALE_FACTOR * self.expected_cadence_sec)
        if self.stale_after_sec < self.expected_cadence_sec:
            raise ValueError(f"{self.key}: stale threshold is shorter than the cadence")
        object.__setattr__(
            self, "warnings", self.warnings.resolved(self.expected_cadence_sec, self.stale_after_sec)
        )
        if not 0 < self.warnings.min_coverage <= 1:
            raise ValueError(f"{self.key}: minimum coverage must be a ratio in (0, 1]")

        cron_for_cadence(self.expected_cadence_sec)  # refuse a cadence no schedule can keep

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"

    @property
    def cron_schedule(self) -> str:
        """The cron expression that runs this channel once per cadence (UTC)."""
        return cron_for_cadence(self.expected_cadence_sec)

    @property
    def retry_backoff_cap_sec(self) -> int:
        """The longest backoff before the catch-up sensor retries a failed run of this channel."""
        return min(int(RETRY_BACKOFF_CAP.total_seconds()), self.expected_cadence_sec)

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
    description="1-minute OHLCV candles of every listed perp, streamed over WebSocket; minutes not confirmed by the stream are repaired from REST.",
    data=DataLocation("candles", "open_time_ms", "coin", scope={"interval": "1m"}),
    producer=Producer.STREAMER,
    expected_subjects=ExpectedSubjects.PERP_UNIVERSE,
    retention=timedelta(days=30),
    warnings=WarningThresholds(unverified_after_sec=int(UNVERIFIED_CANDLES_AFTER.total_seconds())),
)
FUNDING = Channel(
    source="hyperliquid",
    name="funding",
    expected_cadence_sec=900,
    description="Hourly funding rates: the current hour from the asset contexts, settled hours from fundingHistory.",
    data=DataLocation("funding", "hour_ms", "coin"),
    expected_subjects=ExpectedSubjects.PERP_UNIVERSE,
    retention=timedelta(days=365),
    # Hyperliquid caps funding at 4 % an hour; a settled rate beyond it was misread.
    quality=QualityThresholds(window_sec=int(timedelta(days=2).total_seconds()), bound=0.04),
)
FEATURES = Channel(
    source="hyperliquid",
    name="features",
    expected_cadence_sec=300,
    description="RSI, Bollinger Bands, SMA/EMA and MACD over closed 1-minute candles, TA-Lib definitions.",
    data=DataLocation("features", "open_time_ms", "coin", scope={"interval": "1m"}),
    expected_subjects=ExpectedSubjects.PERP_UNIVERSE,
    retention=timedelta(days=30),
    # TA-Lib's own batch result over the stored closes, within float noise, for three coins a run.
    quality=QualityThresholds(sample=3, tolerance=1e-9),
)
MAINTENANCE = Channel(
    source="hyperliquid",
    name="maintenance",
    expected_cadence_sec=3600,
    description="Rollups of closed 1-minute candles to 5m, 1h and 1d, then retention pruning and WAL hygiene.",
    data=DataLocation("candle_rollups", "open_time_ms", "coin"),
    quality=QualityThresholds(sample=50),
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
    quality=QualityThresholds(tolerance=0.02),
)
DEFILLAMA_MACRO = Channel(
    source="defillama",
    name="macro",
    expected_cadence_sec=3600,
    description="Total and per-chain TVL, stablecoin supply per peg, DEX volume and fees as compact series.",
    data=DataLocation("defillama_series", "ts_ms", "subject"),
    # Daily points stamped 00:00 UTC: the newest is today's or, early in the day, yesterday's.
    warnings=WarningThresholds(data_lag_sec=int(timedelta(days=2).total_seconds())),
    # A chain's TVL tripling or falling to a third in a day is a bridge exploit or a source
    # error: either way a person should look. The checks read the last week of days. Under $1M
    # moves like that are daily noise (a quarter of the 450 chains recorded hold under $3k).
    quality=QualityThresholds(window_sec=int(timedelta(days=7).total_seconds()), bound=3.0, floor=1_000_000.0),
)

ROLLUP_RETENTION: Mapping[str, timedelta | None] = {
    "5m": timedelta(days=180),
    "1h": None,
    "1d": None,
}
"""How long each rollup interval is kept; ``None`` keeps it for ever (SPEC §10).

Once the 1-minute rows are pruned (``CANDLES.retention``), 5m is the finest history left: half a
year of it covers the intraday backtests a quant runs (two quarters, more than one volatility
regime) at 57,600 rows a day for 200 coins (about 10M rows, the size the dashboard is measured
at). 1h (4,800 rows a day, ~120 MB a year) and 1d are the long history every strategy is
checked against, small enough to keep for ever. Maintenance prunes a day of an interval only
for coins whose minutes of that day are gone and whose next interval's rows hold every minute
of it, so no reader loses data the coarser rows do not carry."""



def check_rollup_retention(rollups: Mapping[str, timedelta | None], minutes: timedelta | None) -> None:
    """Refuse rollup retentions that would prune an interval before the rows it is rolled from
    (finest first in ``rollups``, after the 1-minute rows' ``minutes``): the coarsest interval
    is kept for ever, each is kept at least as long as the one below it."""
    kept = minutes
    for interval, retention in rollups.items():
        if retention is not None and (kept is None or retention < kept):
            raise ValueError(f"rollups {interval} would be pruned before the rows they are rolled from")
        kept = retention
    if kept is not None:
        raise ValueError("the coarsest rollup interval must be kept for ever")


check_rollup_retention(ROLLUP_RETENTION, CANDLES.retention)

GAP_RETENTION = CANDLES.retention
"""``candle_gaps`` and ``candle_repairs`` rows describe 1-minute rows: they go with them (a gap
row outlives the cutoff only while a minute of its span is still stored)."""

POLYMARKET_UNSEEN_AFTER = timedelta(days=7)
"""A tracked market that discovery has not found for this long (a week of hourly searches, while
discovery found others) is untracked (``not_found``): it fell out of its term's results. A market
the summary reports closed is untracked at the next maintenance (``closed``)."""
POLYMARKET_UNTRACKED_RETENTION = timedelta(days=365)
"""An untracked market's registry row and last summary (a closed market's final prices) are kept
a year for analysis, then pruned: Gamma still serves a market by id, so nothing is lost for good."""

BOUNDED_TABLES: Mapping[str, str] = {
    "ingestion_runs": "LEDGER_RETENTION, keeping each channel's latest run",
    "candles": "CANDLES.retention, a day at a time once its rollups hold it and the Parquet archive holds it verified",
    "candle_rollups": "ROLLUP_RETENTION per interval",
    "candle_gaps": "GAP_RETENTION",
    "candle_repairs": "GAP_RETENTION; a queue the streamer's repair drains",
    "funding": "FUNDING.retention, a day at a time once the Parquet archive holds it verified",
    "features": "FEATURES.retention",
    "polymarket_tracked_markets": "POLYMARKET_UNSEEN_AFTER and closed markets move to the untracked registry",
    "polymarket_untracked_markets": "POLYMARKET_UNTRACKED_RETENTION",
    "polymarket_markets": "one row per tracked market; an untracked one's goes after POLYMARKET_UNTRACKED_RETENTION",
    "defillama_series": "kept: one point per series, subject and day (~400 a day), the macro history itself",
    "hyperliquid_universe": "kept: one row per perp ever listed, bounded by the venue's listings",
    "pending_features": "a queue the features job empties",
    "pending_rollups": "a queue maintenance empties",
    "feature_tails": "one row per coin and interval",
    "memory_info": "a handful of memory-level facts",
    "archived_days": "one stamp per archived UTC day and dataset (two a day), the index of the Parquet archive",
    "check_results": "one row per asset check, its latest outcome (Dagster's event log keeps the history)",
    "funding_revisions": "FUNDING.retention, with the hours they revised",
}
"""Every table of the memory and what keeps it from growing for ever (a test checks the schema's
tables against this list): a retention declared above, or why it needs none."""

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
