"""/metrics: Prometheus text that prometheus-client's own parser reads, carrying the dashboard."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from market_assets.ledger import Ledger
from market_assets.memory.checks import CheckResult, record_results
from market_assets.registry import CANDLES, DEFILLAMA_MACRO, FUNDING, REGISTRY
from market_assets.settings import Settings
from tests.conftest import FrozenClock

from .seeding import candle_fidelity, candles, finished_run, listed

MIN = 60_000


def scrape(memory_path: Path, clock: FrozenClock) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample by metric name and sorted labels, parsed by prometheus-client."""
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def channel(source: str, name: str) -> tuple[tuple[str, str], ...]:
    return (("channel", name), ("source", source))


def test_metrics_carry_last_success_status_rows_lag_and_streamer_counters(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    t0 = clock.now_ms
    listed(conn, ["BTC", "ETH", "SOL"], t0, delisted=("OLD",))
    candles(conn, "BTC", t0 - 2 * MIN, t0 - MIN)
    candles(conn, "ETH", t0 - 10 * MIN)
    candles(conn, "OLD", t0 - 90 * MIN)
    finished_run(conn, clock, CANDLES, started_at_ms=t0 - 2 * MIN, finished_at_ms=t0 - MIN, rows=3,
                 metadata={"reconnects": 2, "parse_errors": 1, "gaps_detected": 4, "last_frame_ms": {"BTC": t0}})
    Ledger(conn, clock).start(CANDLES, started_at_ms=t0 - MIN)
    finished_run(conn, clock, FUNDING, started_at_ms=t0 - 20_000, finished_at_ms=t0 - 10_000, error="HTTP 503")

    metrics = scrape(memory_path, clock)

    assert metrics["market_health_ok"] == {(): 0.0}
    assert metrics["market_channel_last_success_timestamp_seconds"] == {channel("hyperliquid", "candles"): (t0 - MIN) / 1000}
    statuses = metrics["market_channel_status"]
    assert len(statuses) == 5 * len(REGISTRY)
    current = {dict(labels)["channel"]: dict(labels)["status"] for labels, value in statuses.items() if value == 1.0}
    assert current == {"candles": "running", "funding": "failed", "features": "missing", "maintenance": "missing",
                       "discovery": "missing", "summary": "missing", "macro": "missing"}
    assert metrics["market_channel_rows"][channel("hyperliquid", "candles")] == 4.0
    assert metrics["market_channel_rows_last_hour"][channel("hyperliquid", "candles")] == 3.0
    assert metrics["market_channel_expected_subjects"][channel("hyperliquid", "candles")] == 3.0
    assert metrics["market_channel_coverage_ratio"][channel("hyperliquid", "candles")] == 0.6667
    assert metrics["market_channel_data_lag_seconds"][channel("hyperliquid", "candles")] == 60.0
    assert metrics["market_channel_recent_failures"][channel("hyperliquid", "funding")] == 1.0
    assert metrics["market_channel_warning"][(*channel("hyperliquid", "funding"), ("warning", "recent_failures"))] == 1.0
    assert metrics["market_channel_warning"][(*channel("hyperliquid", "candles"), ("warning", "stale"))] == 0.0
    # Listed coins only: OLD is delisted, SOL has no candle.
    assert metrics["market_candle_lag_seconds"] == {(("coin", "BTC"),): 60.0, (("coin", "ETH"),): 600.0}
    assert (metrics["market_stream_reconnects"], metrics["market_stream_parse_errors"], metrics["market_stream_gaps_detected"]) == (
        {(): 2.0}, {(): 1.0}, {(): 4.0})


def test_metrics_carry_the_candles_fidelity(conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock) -> None:
    candle_fidelity(conn, clock)
    t0 = clock.now_ms

    metrics = scrape(memory_path, clock)

    candles_channel = channel("hyperliquid", "candles")
    assert metrics["market_channel_unverified_candles_last_day"] == {candles_channel: 2.0}
    assert metrics["market_channel_oldest_unverified_timestamp_seconds"] == {candles_channel: (t0 - 12 * MIN) / 1000}
    assert metrics["market_channel_repair_queue"] == {candles_channel: 4.0}
    assert metrics["market_channel_corrected_candles_last_hour"] == {candles_channel: 3.0}
    assert metrics["market_channel_no_trade_candles_last_day"] == {candles_channel: 2.0}
    assert metrics["market_channel_rejected_frames_last_hour"] == {
        (("channel", "candles"), ("reason", "low_above_high"), ("source", "hyperliquid")): 1.0,
        (("channel", "candles"), ("reason", "non_finite"), ("source", "hyperliquid")): 3.0}
    warnings = metrics["market_channel_warning"]
    assert warnings[(*candles_channel, ("warning", "unverified_candles"))] == 1.0
    assert warnings[(*channel("hyperliquid", "funding"), ("warning", "unverified_candles"))] == 0.0
    # The latest window's own tallies, as for every streamer counter.
    assert (metrics["market_stream_corrected_minutes"], metrics["market_stream_repair_requests"]) == ({(): 2.0}, {(): 1.0})


def test_a_memory_without_fidelity_trouble_reports_zeros_for_candles_only(memory: Path, clock: FrozenClock) -> None:
    metrics = scrape(memory, clock)
    candles_channel = channel("hyperliquid", "candles")
    for name in ("market_channel_unverified_candles_last_day", "market_channel_repair_queue",
                 "market_channel_corrected_candles_last_hour", "market_channel_no_trade_candles_last_day"):
        assert metrics[name] == {candles_channel: 0.0}, name
    assert "market_channel_oldest_unverified_timestamp_seconds" not in metrics
    assert "market_channel_rejected_frames_last_hour" not in metrics
    assert metrics["market_channel_warning"][(*candles_channel, ("warning", "unverified_candles"))] == 0.0


def test_a_channel_without_a_value_has_no_series_rather_than_a_zero(memory: Path, clock: FrozenClock) -> None:
    metrics = scrape(memory, clock)
    assert metrics["market_channel_rows"][channel("defillama", "macro")] == 0.0
    assert "market_channel_last_success_timestamp_seconds" not in metrics
    assert "market_channel_data_lag_seconds" not in metrics
    assert not any(name.startswith("market_stream_") for name in metrics)


def test_two_apps_share_no_metric_state(tmp_path: Path, clock: FrozenClock) -> None:
    from market_assets.memory import open_memory

    busy, idle = tmp_path / "busy.db", tmp_path / "idle.db"
    with open_memory(busy, clock=clock) as conn:
        finished_run(conn, clock, CANDLES, started_at_ms=clock.now_ms - 2000, finished_at_ms=clock.now_ms - 1000,
                     metadata={"reconnects": 9})
    assert scrape(busy, clock)["market_stream_reconnects"] == {(): 9.0}
    with open_memory(idle, clock=clock):
        pass
    assert "market_stream_reconnects" not in scrape(idle, clock)


def test_each_asset_check_has_its_passed_failing_and_evaluated_gauges(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    t0 = clock.now_ms
    failing = CheckResult(CANDLES.source, CANDLES.name, "ohlc_invariants", False, True, "ERROR", t0 - MIN, 288_000, 2,
                          f"failed: 2 of 288,000; first: BTC at {t0 - 2 * MIN}: low 101.5 above high 100.0")
    warned = CheckResult(DEFILLAMA_MACRO.source, DEFILLAMA_MACRO.name, "tvl_jumps", True, False, "WARN", t0 - 5 * MIN, 40, 0,
                         "passed: 40 checked")
    record_results(conn, [failing, warned])

    metrics = scrape(memory_path, clock)

    ohlc = (("blocking", "true"), ("channel", "candles"), ("check", "ohlc_invariants"), ("severity", "ERROR"), ("source", "hyperliquid"))
    tvl = (("blocking", "false"), ("channel", "macro"), ("check", "tvl_jumps"), ("severity", "WARN"), ("source", "defillama"))
    assert metrics["market_check_passed"] == {ohlc: 0.0, tvl: 1.0}
    assert metrics["market_check_failing"] == {ohlc: 2.0, tvl: 0.0}
    assert metrics["market_check_evaluated_timestamp_seconds"] == {ohlc: (t0 - MIN) / 1000, tvl: (t0 - 5 * MIN) / 1000}
    assert metrics["market_channel_warning"][(*channel("hyperliquid", "candles"), ("warning", "check_failed"))] == 1.0
    assert metrics["market_channel_warning"][(*channel("defillama", "macro"), ("warning", "check_failed"))] == 0.0
    status = {dict(labels)["status"]: value for labels, value in metrics["market_channel_status"].items()
              if dict(labels)["channel"] == "candles"}
    assert status["failed"] == 1.0


def test_no_check_series_before_any_check_is_evaluated(memory: Path, clock: FrozenClock) -> None:
    metrics = scrape(memory, clock)
    assert "market_check_passed" not in metrics and "market_check_failing" not in metrics
