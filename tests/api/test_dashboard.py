"""GET /api/v1/ingestion/dashboard: SPEC §5's signals per channel, at the injected clock."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api import create_app
from market_assets.dashboard import read_dashboard
from market_assets.ledger import Ledger
from market_assets.registry import CANDLES, FUNDING, REGISTRY, VOLUME_RECOUNT_AFTER
from market_assets.settings import Settings
from tests.conftest import FrozenClock

from .seeding import candle_fidelity, candles, finished_run, listed

DASHBOARD = "/api/v1/ingestion/dashboard"
MIN = 60_000
HOUR = 3_600_000
HEALTH_KEYS = ("source", "channel", "status", "expectedCadenceSec", "staleAfterSec", "ageSec", "rowsWritten")
"""SPEC §4's health row: the dashboard row carries these keys flat, first, in this order."""
FIDELITY = ("unverifiedMinutes", "oldestUnverifiedMs", "repairQueue", "correctedMinutes", "noTradeMinutes", "rejectedFrames")
"""The candles row's fidelity fields (SPEC §8); ``null`` on every other row."""


def seed_candles_channel(conn: sqlite3.Connection, clock: FrozenClock) -> None:
    t0 = clock.now_ms
    listed(conn, ["BTC", "ETH", "SOL", "DOGE"], t0, delisted=("OLD",))
    candles(conn, "BTC", t0 - 3 * MIN, t0 - 2 * MIN, t0 - MIN)
    candles(conn, "ETH", t0 - 2 * HOUR)
    candles(conn, "SOL", t0 - 30 * HOUR)
    candles(conn, "BTC", t0 - 10 * MIN, interval="1h")  # another interval: outside the channel's scope
    finished_run(conn, clock, CANDLES, started_at_ms=t0 - 8 * MIN, finished_at_ms=t0 - 7 * MIN,
                 error="cannot write: OperationalError: disk I/O error")
    finished_run(conn, clock, CANDLES, started_at_ms=t0 - 2 * MIN, finished_at_ms=t0 - MIN, rows=3, retries=2,
                 throttles=1, metadata={"reconnects": 1, "parse_errors": 0, "queue_depth": 3,
                                        "last_frame_ms": {"BTC": t0 - MIN}, "note": "resubscribed"})
    Ledger(conn, clock).start(CANDLES, started_at_ms=t0 - MIN)


def test_dashboard_reports_every_signal_of_a_channel(conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock) -> None:
    seed_candles_channel(conn, clock)
    t0 = clock.now_ms
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        response = client.get(DASHBOARD)
        health = client.get("/api/v1/ingestion/health", headers={"x-user-id": "ops-1"}).json()
    assert response.status_code == 200
    document = response.json()
    assert (document["ok"], document["generatedAtMs"], document["volumesCountedAtMs"]) == (False, t0, t0)
    assert [(r["source"], r["channel"]) for r in document["rows"]] == [(c.source, c.name) for c in REGISTRY]
    assert [list(r)[: len(HEALTH_KEYS)] for r in document["rows"]] == [list(HEALTH_KEYS)] * len(REGISTRY)
    assert [{k: r[k] for k in HEALTH_KEYS} for r in document["rows"]] == health["rows"]
    row = document["rows"][0]
    assert "health" not in row
    assert {k: row[k] for k in HEALTH_KEYS} == {"source": "hyperliquid", "channel": "candles", "status": "running",
                                                "expectedCadenceSec": 60, "staleAfterSec": 360, "ageSec": 60, "rowsWritten": 0}
    assert {k: row[k] for k in ("totalRows", "rowsLastHour", "rowsLast24h", "subjectsLastHour", "subjectsLast24h")} == {
        "totalRows": 5, "rowsLastHour": 3, "rowsLast24h": 4, "subjectsLastHour": 1, "subjectsLast24h": 2}
    assert (row["expectedSubjects"], row["coverage"]) == (4, 0.25)
    assert (row["latestDataMs"], row["dataLagSec"]) == (t0 - MIN, 60)
    last = row["lastRun"]
    assert (last["status"], last["rowsWritten"], last["ageSec"], last["durationSec"]) == ("succeeded", 3, 60, 60.0)
    assert (last["retries"], last["throttles"], last["error"]) == (2, 1, None)
    assert row["lastSuccessMs"] == t0 - MIN
    assert {k: row[k] for k in ("recentWindowSec", "recentRuns", "recentFailures", "recentRetries", "recentThrottles")} == {
        "recentWindowSec": 3600, "recentRuns": 3, "recentFailures": 1, "recentRetries": 2, "recentThrottles": 1}
    assert row["lastFailure"]["error"] == "cannot write: OperationalError: disk I/O error"
    assert row["lastFailure"]["ageSec"] == 7 * 60
    assert row["counters"] == {"reconnects": 1, "parse_errors": 0, "queue_depth": 3}
    assert row["details"] == {"note": "resubscribed"}
    assert row["thresholds"] == {"dataLagSec": 360, "minCoverage": 0.9, "recentWindowSec": 3600,
                                 "recentFailures": 1, "throttles": 1, "unverifiedAfterSec": 600}
    assert {k: row[k] for k in FIDELITY} == {"unverifiedMinutes": 0, "oldestUnverifiedMs": None, "repairQueue": 0,
                                            "correctedMinutes": 0, "noTradeMinutes": 0, "rejectedFrames": {}}
    assert row["warnings"] == ["low_coverage", "recent_failures", "throttled"]
    assert list(row["warningDetails"]) == row["warnings"]
    assert row["warningDetails"]["low_coverage"] == "1 of 4 expected subjects in the last hour (25%, minimum 90%)"
    assert row["warningDetails"]["throttled"] == "1 throttled request (HTTP 429) in the last 3600s"
    funding = document["rows"][1]
    assert (funding["status"], funding["totalRows"], funding["lastRun"]) == ("missing", 0, None)
    assert (funding["expectedSubjects"], funding["coverage"]) == (4, 0.0)
    assert (funding["warnings"], list(funding["warningDetails"])) == (["low_coverage"], ["low_coverage"])
    assert {k: funding[k] for k in FIDELITY} == dict.fromkeys(FIDELITY)
    assert funding["thresholds"]["unverifiedAfterSec"] is None
    macro = document["rows"][-1]
    assert (macro["expectedSubjects"], macro["coverage"], macro["warnings"], macro["warningDetails"]) == (None, None, [], {})


def test_the_candles_row_shows_unverified_queued_corrected_no_trade_minutes_and_rejected_frames(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    candle_fidelity(conn, clock)
    t0 = clock.now_ms
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        rows = client.get(DASHBOARD).json()["rows"]
    candles_row = rows[0]
    assert {k: candles_row[k] for k in FIDELITY} == {
        "unverifiedMinutes": 2, "oldestUnverifiedMs": t0 - 12 * MIN, "repairQueue": 4, "correctedMinutes": 3,
        "noTradeMinutes": 2, "rejectedFrames": {"low_above_high": 1, "non_finite": 3}}
    assert candles_row["warnings"] == ["unverified_candles"]
    assert candles_row["warningDetails"] == {
        "unverified_candles": "2 unverified minutes in the last 24 h; the oldest, opened 2026-11-18 10:55:00 UTC, "
                              "closed 660s ago, over 600s"}
    # The last window's own counters still come through as they are.
    assert (candles_row["counters"]["corrected_minutes"], candles_row["counters"]["repair_requests"]) == (2, 1)
    for other in rows[1:]:
        assert {k: other[k] for k in FIDELITY} == dict.fromkeys(FIDELITY), other["channel"]
        assert "unverified_candles" not in other["warnings"]


def test_the_local_profile_expects_only_its_capped_coins(conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock) -> None:
    coins = [f"C{i}" for i in range(8)]
    listed(conn, coins, clock.now_ms)
    for coin in coins[:5]:
        candles(conn, coin, clock.now_ms - MIN)
    settings = Settings(db_path=memory_path)
    local = Settings.from_env({"MARKET_PROFILE": "local"}, db_path=memory_path)
    for chosen, expected, coverage in ((settings, 8, 0.625), (local, 5, 1.0)):
        with TestClient(create_app(chosen, clock=clock)) as client:
            row = client.get(DASHBOARD).json()["rows"][0]
        assert (row["expectedSubjects"], row["coverage"]) == (expected, coverage)


def test_total_and_daily_counts_are_recounted_after_a_response_once_due(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    """Data older than an hour is counted once a minute at most; newer data at each request."""
    t0 = clock.now_ms
    candles(conn, "BTC", t0 - 2 * MIN)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        first = client.get(DASHBOARD).json()
        candles(conn, "BTC", t0 - MIN)  # live: counted at once
        candles(conn, "ETH", t0 - 3 * HOUR)  # older than an hour: waits for the recount
        clock.advance(seconds=VOLUME_RECOUNT_AFTER.total_seconds() - 1)
        early = client.get(DASHBOARD).json()
        clock.advance(seconds=1)
        due = client.get(DASHBOARD).json()  # served as counted, then recounted after the response
        after = client.get(DASHBOARD).json()
    totals = [(d["rows"][0]["totalRows"], d["rows"][0]["rowsLast24h"], d["volumesCountedAtMs"]) for d in (first, early, due, after)]
    recount_ms = t0 + int(VOLUME_RECOUNT_AFTER.total_seconds() * 1000)
    assert totals == [(1, 1, t0), (2, 2, t0), (2, 2, t0), (3, 3, recount_ms)]
    assert [d["rows"][0]["rowsLastHour"] for d in (first, early)] == [1, 2]
    assert [d["rows"][0]["subjectsLast24h"] for d in (first, early, due, after)] == [1, 1, 1, 2]


def counts_in_order(row: dict[str, Any]) -> bool:
    return bool(row["rowsLastHour"] <= row["rowsLast24h"] <= row["totalRows"]
                and row["subjectsLastHour"] <= row["subjectsLast24h"])


def test_rows_written_after_a_count_never_put_the_last_hour_above_the_day_or_the_total(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    """Seen live: candles 1 h = 35 > 24 h = 20 = total 20, a cached count beside a live one."""
    t0 = clock.now_ms
    listed(conn, ["BTC", "ETH"], t0)
    candles(conn, "BTC", *(t0 - HOUR + i * MIN for i in range(1, 21)))
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        assert counts_in_order(client.get(DASHBOARD).json()["rows"][0])  # counts taken: 20 rows
        candles(conn, "ETH", *(t0 - 35 * MIN + i * MIN for i in range(35)))
        clock.advance(seconds=30)  # before the recount is due
        row = client.get(DASHBOARD).json()["rows"][0]
    assert (row["rowsLastHour"], row["rowsLast24h"], row["totalRows"]) == (55, 55, 55)
    assert (row["subjectsLastHour"], row["subjectsLast24h"]) == (2, 2)


def test_counts_stay_in_order_through_writes_clock_steps_and_recounts(
    conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock
) -> None:
    """Writes at any data time (late, backfilled, live) between requests; every answer keeps
    1 h <= 24 h <= total, and once recounted with nothing new, equals a count taken from scratch."""
    draw = random.Random(14)
    coins = ["BTC", "ETH", "SOL", "DOGE"]
    listed(conn, coins, clock.now_ms)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        for _ in range(40):
            for _ in range(draw.randrange(4)):
                age_min = draw.choice([draw.randrange(0, 60), draw.randrange(60, 180), draw.randrange(0, 36 * 60)])
                candles(conn, draw.choice(coins), clock.now_ms - clock.now_ms % MIN - age_min * MIN)
            clock.advance(seconds=draw.randrange(0, 90))
            row = client.get(DASHBOARD).json()["rows"][0]
            assert counts_in_order(row), row
        clock.advance(seconds=VOLUME_RECOUNT_AFTER.total_seconds())
        client.get(DASHBOARD)  # due: recounts after the response
        served = client.get(DASHBOARD).json()["rows"][0]
    fresh = read_dashboard(conn, clock.now_ms).rows[0]
    assert [served[k] for k in ("rowsLastHour", "rowsLast24h", "totalRows", "subjectsLastHour", "subjectsLast24h")] == [
        fresh.rows_last_hour, fresh.rows_last_24h, fresh.total_rows, fresh.subjects_last_hour, fresh.subjects_last_24h]


def test_dashboard_schemas_are_in_the_openapi_document(memory_path: Path) -> None:
    with TestClient(create_app(Settings(db_path=memory_path))) as client:
        schema = client.get("/schema/openapi.json").json()
    row = schema["components"]["schemas"]["DashboardRow"]["properties"]
    assert {*HEALTH_KEYS, "totalRows", "rowsLast24h", "subjectsLastHour", "expectedSubjects", "coverage", "latestDataMs",
            "dataLagSec", "lastRun", "recentFailures", "recentThrottles", "counters", "warnings", "warningDetails"} <= set(row)
    assert "health" not in row
    assert row["warnings"] == {"type": "array", "items": {"$ref": "#/components/schemas/WarningCode"}}
    assert row["warningDetails"] == {"type": "object", "additionalProperties": {"type": "string"}}
    codes = schema["components"]["schemas"]["WarningCode"]["enum"]
    assert set(codes) == {"stale", "data_lag", "zero_rows_last_run", "low_coverage", "recent_failures", "throttled",
                          "unverified_candles", "partial_run", "check_failed"}
    assert set(FIDELITY) <= set(row)
    assert "/api/v1/ingestion/dashboard" in schema["paths"]
    assert "/admin/ingestion" not in schema["paths"]


def test_a_funding_run_counts_only_for_its_own_channel(conn: sqlite3.Connection, memory_path: Path, clock: FrozenClock) -> None:
    finished_run(conn, clock, FUNDING, started_at_ms=clock.now_ms - 2000, finished_at_ms=clock.now_ms - 1000, rows=7, throttles=4)
    with TestClient(create_app(Settings(db_path=memory_path), clock=clock)) as client:
        rows = client.get(DASHBOARD).json()["rows"]
    assert [(r["channel"], r["recentThrottles"]) for r in rows[:2]] == [("candles", 0), ("funding", 4)]
