"""``GET /metrics``: the dashboard in Prometheus text format (peers.md §4 naming).

Each request builds a fresh ``CollectorRegistry`` around one collector that reads the dashboard
document, so app instances share no metric state and a scrape always sees the memory as it is.
Timestamps are Unix seconds (``*_timestamp_seconds``); statuses and warnings are 0/1 gauges with
one series per possible value, so an alert can match ``== 1``. Each asset check with a stored
result has its own series (``market_check_*{source,channel,check,blocking,severity}``): an alert on
``market_check_passed{blocking="true"} == 0`` is the SPEC §12 one. A channel streamed by shards
has a series per shard (``market_stream_shard_*{source,channel,shard}``): its latest window's age,
its coins and its status, so an alert can name the shard that stopped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from api.dashboard import current_dashboard
from api.dependencies import SettingsDependency
from api.openapi import GUARDED_ERRORS, GuardedOperation
from api.readers import Readers
from api.volume_cache import VolumeCache
from market_assets.clock import Clock
from market_assets.dashboard import DashboardDocument, DashboardRow, WarningCode
from market_assets.health import Status
from market_assets.memory.dashboard import newest_candle_by_coin
from market_assets.registry import CANDLES, REGISTRY, Producer

TEXT_FORMAT = "text/plain; version=0.0.4"
"""The text exposition format ``generate_latest`` writes (Litestar appends the charset)."""
_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_CHANNEL = ["source", "channel"]
_CHECK = [*_CHANNEL, "check", "blocking", "severity"]
_SHARD = [*_CHANNEL, "shard"]
_STREAMED = {(c.source, c.name) for c in REGISTRY if c.producer is Producer.STREAMER}


class DashboardCollector:
    """Gauges of one dashboard document and of each coin's newest candle at ``now_ms``."""

    def __init__(self, document: DashboardDocument, newest_candles: dict[str, int]) -> None:
        self.document = document
        self.newest_candles = newest_candles

    def collect(self) -> Iterator[Metric]:
        rows = self.document.rows
        now_sec = self.document.generated_at_ms / 1000
        yield _gauge("market_health_ok", "1 when no channel is missing, failed or stale.", [], [([], float(self.document.ok))])
        yield _per_channel(
            "market_channel_last_success_timestamp_seconds",
            "When the channel's latest succeeded run finished (Unix seconds).",
            rows,
            lambda r: None if r.last_success_ms is None else r.last_success_ms / 1000,
        )
        yield _gauge(
            "market_channel_status",
            "1 for the channel's current health status (SPEC §4), 0 for the others.",
            [*_CHANNEL, "status"],
            [([r.source, r.channel, s.value], float(r.status == s.value)) for r in rows for s in Status],
        )
        yield _per_channel("market_channel_age_seconds", "Age of the channel's latest run (health ageSec).", rows, lambda r: r.age_sec)
        yield _per_channel(
            "market_channel_rows",
            "Rows the channel's table holds (data older than an hour as counted at volumesCountedAtMs).",
            rows,
            lambda r: r.total_rows,
        )
        yield _per_channel("market_channel_rows_last_hour", "Rows whose data timestamp lies in the last hour.", rows, lambda r: r.rows_last_hour)
        yield _per_channel("market_channel_rows_last_day", "Rows whose data timestamp lies in the last 24 hours.", rows, lambda r: r.rows_last_24h)
        yield _per_channel("market_channel_subjects_last_hour", "Distinct subjects with data in the last hour.", rows, lambda r: r.subjects_last_hour)
        yield _per_channel("market_channel_expected_subjects", "Subjects the registry expects the channel to cover.", rows, lambda r: r.expected_subjects)
        yield _per_channel("market_channel_coverage_ratio", "Subjects seen in the last hour over the expected ones.", rows, lambda r: r.coverage)
        yield _per_channel("market_channel_data_lag_seconds", "Age of the newest observed data timestamp.", rows, lambda r: r.data_lag_sec)
        yield _per_channel(
            "market_channel_last_run_rows", "Rows written by the latest run that ended.", rows, lambda r: None if r.last_run is None else r.last_run.rows_written
        )
        yield _per_channel(
            "market_channel_last_run_duration_seconds",
            "Duration of the latest run that ended.",
            rows,
            lambda r: None if r.last_run is None else r.last_run.duration_sec,
        )
        yield _per_channel("market_channel_recent_failures", "Failed runs started in the channel's recent window.", rows, lambda r: r.recent_failures)
        yield _per_channel("market_channel_recent_retries", "Retried requests of the runs in the recent window.", rows, lambda r: r.recent_retries)
        yield _per_channel("market_channel_recent_throttles", "Throttled requests (HTTP 429) of the runs in the recent window.", rows, lambda r: r.recent_throttles)
        yield _gauge(
            "market_channel_warning",
            "1 when the dashboard raises the warning for the channel (SPEC §5), 0 otherwise.",
            [*_CHANNEL, "warning"],
            [
                ([r.source, r.channel, code.value], float(code in r.warnings))
                for r in rows
                for code in WarningCode
            ],
        )
        yield _gauge(
            "market_candle_lag_seconds",
            "Per coin, seconds since the open time of its newest 1-minute candle.",
            ["coin"],
            [([coin], max(0.0, now_sec - open_ms / 1000)) for coin, open_ms in sorted(self.newest_candles.items())],
        )
        yield from self._checks(rows)
        yield from self._fidelity(rows)
        yield from self._stream_counters(rows)
        yield from self._shards(rows)

    def _shards(self, rows: list[DashboardRow]) -> Iterator[Metric]:
        """Each streamer shard of a sharded channel, by its latest window (none: no series)."""
        shards = [([r.source, r.channel, s.shard], s) for r in rows for s in r.shards]
        yield _gauge(
            "market_stream_shard_window_age_seconds",
            "Seconds since the shard's latest ledger window ended (no series: none in the last hour).",
            _SHARD,
            [(labels, float(s.window_age_sec)) for labels, s in shards if s.window_age_sec is not None],
        )
        yield _gauge(
            "market_stream_shard_coins",
            "Coins the shard followed in its latest ledger window.",
            _SHARD,
            [(labels, float(s.coins)) for labels, s in shards if s.coins is not None],
        )
        yield _gauge(
            "market_stream_shard_status",
            "1 for the shard's current status as health judges it (ok, stale, failed), 0 for the others.",
            [*_SHARD, "status"],
            [
                ([*labels, status.value], float(s.status == status.value))
                for labels, s in shards
                for status in (Status.OK, Status.STALE, Status.FAILED)
            ],
        )

    def _checks(self, rows: list[DashboardRow]) -> Iterator[Metric]:
        """One series per asset check with a stored result (SPEC §12)."""
        checks = [([r.source, r.channel, c.name, str(c.blocking).lower(), c.severity], c) for r in rows for c in r.checks]
        yield _gauge(
            "market_check_passed",
            "1 when the asset check's latest evaluation passed, 0 when it failed (a failing blocking check makes the channel failed).",
            _CHECK,
            [(labels, float(c.passed)) for labels, c in checks],
        )
        yield _gauge(
            "market_check_failing",
            "Rows (or subjects, buckets) the asset check's latest evaluation found failing.",
            _CHECK,
            [(labels, float(c.failing)) for labels, c in checks],
        )
        yield _gauge(
            "market_check_evaluated_timestamp_seconds",
            "When the asset check was last evaluated (Unix seconds).",
            _CHECK,
            [(labels, c.evaluated_at_ms / 1000) for labels, c in checks],
        )

    def _fidelity(self, rows: list[DashboardRow]) -> Iterator[Metric]:
        """The candles row's fidelity (SPEC §8); other channels have no series. Counts of 1-minute
        candles say ``candles``, not ``minutes``: Prometheus reads ``_minutes`` as a time unit
        (promtool: "use base unit seconds")."""
        yield _per_channel(
            "market_channel_unverified_candles_last_day",
            "Closed 1-minute candles stored unverified (final state unknown), opened in the last 24 hours.",
            rows,
            lambda r: r.unverified_minutes,
        )
        yield _per_channel(
            "market_channel_oldest_unverified_timestamp_seconds",
            "Open time of the oldest of them (Unix seconds).",
            rows,
            lambda r: None if r.oldest_unverified_ms is None else r.oldest_unverified_ms / 1000,
        )
        yield _per_channel(
            "market_channel_repair_queue", "1-minute candles queued for REST repair, any age and reason.", rows, lambda r: r.repair_queue
        )
        yield _per_channel(
            "market_channel_corrected_candles_last_hour",
            "Stored candles a REST repair found with different values, in the streamer windows started in the last hour.",
            rows,
            lambda r: r.corrected_minutes,
        )
        yield _per_channel(
            "market_channel_no_trade_candles_last_day",
            "1-minute buckets candleSnapshot shows nobody traded in (no_trades), opened in the last 24 hours.",
            rows,
            lambda r: r.no_trade_minutes,
        )
        yield _gauge(
            "market_channel_rejected_frames_last_hour",
            "Candle frames refused where they were parsed, per reason, in the streamer windows started in the last hour.",
            [*_CHANNEL, "reason"],
            [
                ([r.source, r.channel, reason], float(count))
                for r in rows
                if r.rejected_frames is not None
                for reason, count in sorted(r.rejected_frames.items())
            ],
        )

    def _stream_counters(self, rows: list[DashboardRow]) -> Iterator[Metric]:
        """The streamer's counters of its latest ledger window (reconnects, parse errors, gaps …)."""
        for row in rows:
            if (row.source, row.channel) not in _STREAMED:
                continue
            for key, value in sorted(row.counters.items()):
                name = f"market_stream_{key}"
                if _METRIC_NAME.fullmatch(name):
                    yield _gauge(name, f"{key} in the streamer's latest ledger window (run metadata).", [], [([], float(value))])


def _gauge(name: str, documentation: str, labels: list[str], samples: list[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _per_channel(
    name: str, documentation: str, rows: list[DashboardRow], value_of: Callable[[DashboardRow], float | None]
) -> GaugeMetricFamily:
    """One series per channel that has the value (a channel with none is left out, not 0)."""
    samples = [([r.source, r.channel], float(v)) for r in rows if (v := value_of(r)) is not None]
    return _gauge(name, documentation, _CHANNEL, samples)


class MetricsController(Controller):
    tags = ("metrics",)

    @get("/metrics", sync_to_thread=True, media_type=TEXT_FORMAT, responses=GUARDED_ERRORS, operation_class=GuardedOperation)
    def metrics(
        self,
        settings: SettingsDependency,
        readers: NamedDependency[Readers],
        clock: NamedDependency[Clock],
        volumes: NamedDependency[VolumeCache],
    ) -> Response[bytes]:
        """The dashboard as Prometheus gauges, per channel and per coin. Guarded like the
        dashboard; with ``MARKET_DASHBOARD_REQUIRES_ADMIN``, Prometheus scrapes with a bearer token
        of ``MARKET_API_TOKENS`` (``authorization`` in its scrape config)."""
        document, recount = current_dashboard(settings, readers, clock, volumes)
        with readers.connection() as conn:
            newest = newest_candle_by_coin(conn, CANDLES.data.scope["interval"])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(DashboardCollector(document, newest))
        return Response(generate_latest(registry), media_type=TEXT_FORMAT, background=recount)
