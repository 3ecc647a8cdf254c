"""Health of a channel streamed by shards (SPEC §4, §13): ``ok`` only when every shard of the
layout its windows report recorded a window within the stale threshold; otherwise the worst
shard's status, the row's ``detail`` naming each shard that is missing, late or failed. Windows
are recorded in the ledger as the streamer records them, on both backends."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from api.metrics import DashboardCollector
from market_assets.clock import wall_clock_ms
from market_assets.dashboard import read_dashboard
from market_assets.health import (
    SHARD_LOOKBACK_MS,
    Status,
    encode_document,
    explain,
    read_health,
)
from market_assets.ledger import Ledger
from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.target import MemoryTarget
from market_assets.monitor import MonitorState, step
from market_assets.registry import CANDLES
from tests.conftest import MARKET, FrozenClock, close_memory

T = 1_795_000_000_000
MIN = 60_000
STALE_MS = CANDLES.stale_after_sec * 1000
HEALTH_KEYS = ["source", "channel", "status", "expectedCadenceSec", "staleAfterSec", "ageSec", "rowsWritten"]


@pytest.fixture
def conn(memory_target: MemoryTarget) -> Iterator[MemoryConnection]:
    connection = connect(memory_target, clock=FrozenClock(T))
    yield connection
    close_memory(connection)


def window(
    conn: MemoryConnection, ended_ms: int, shard: str | None, *, rows: int = 10, coins: int = 4, error: str | None = None
) -> None:
    """One streamer window ``[ended - 1 min, ended)`` as a shard (or an unsharded streamer) records it."""
    metadata: dict[str, object] = {"coins": coins} | ({"shard": shard} if shard is not None else {})
    run = Ledger(conn, FrozenClock(ended_ms)).start(CANDLES, started_at_ms=ended_ms - MIN, metadata=metadata)
    run.add_rows(rows)
    if error is None:
        run.succeed(finished_at_ms=ended_ms)
    else:
        run.fail(error, finished_at_ms=ended_ms)


def candles_row(conn: MemoryConnection, now_ms: int) -> dict[str, object]:
    document = msgspec.json.decode(encode_document(read_health(conn, now_ms).document()))
    return next(row for row in document["rows"] if row["channel"] == CANDLES.name)


def test_every_shard_within_the_threshold_is_ok_with_the_health_keys_unchanged(conn: MemoryConnection) -> None:
    window(conn, T - STALE_MS, "1/3", rows=5)  # the oldest, exactly at the threshold
    window(conn, T - 2 * MIN, "3/3", rows=7)
    window(conn, T - MIN, "2/3", rows=11)
    row = candles_row(conn, T)
    assert list(row) == HEALTH_KEYS  # no detail while every shard is well
    assert (row["status"], row["ageSec"], row["rowsWritten"]) == ("ok", STALE_MS // 1000, 5 + 7 + 11)


def test_a_late_shard_makes_the_channel_stale_and_is_named(conn: MemoryConnection) -> None:
    window(conn, T - 7 * MIN, "2/3")
    for ended_ago in range(10, 0, -1):  # the others' windows since: more than health reads first
        window(conn, T - ended_ago * MIN, "1/3")
        window(conn, T - ended_ago * MIN, "3/3")
    health = read_health(conn, T)
    candles = health.channels[0]
    assert health.ok is False
    assert (candles.status, candles.age_sec) == (Status.STALE, 7 * 60)
    assert candles.detail == "shard 2/3: no window for 7 min"
    assert explain(candles, memory_age_sec=3600) == "shard 2/3: no window for 7 min"
    assert [(str(s.shard), s.status, s.age_sec) for s in candles.shards] == [
        ("1/3", Status.OK, 60), ("2/3", Status.STALE, 420), ("3/3", Status.OK, 60)
    ]
    assert candles_row(conn, T)["detail"] == "shard 2/3: no window for 7 min"


def test_a_shard_gone_past_the_lookback_stays_missing_by_the_n_the_others_report(conn: MemoryConnection) -> None:
    window(conn, T - SHARD_LOOKBACK_MS - MIN, "2/2")  # before the lookback: never read
    window(conn, T - MIN, "1/2")
    candles = read_health(conn, T).channels[0]
    assert candles.status is Status.STALE
    assert candles.age_sec == SHARD_LOOKBACK_MS // 1000  # at least that old
    assert candles.detail == "shard 2/2: no window in the last 60 min"


def test_every_shard_gone_ages_the_channel_from_its_latest_window(conn: MemoryConnection) -> None:
    window(conn, T - 5 * 3_600_000, "1/2")
    window(conn, T - 3 * 3_600_000, "2/2")
    row = candles_row(conn, T)
    assert (row["status"], row["ageSec"]) == ("stale", 3 * 3600)
    assert row["detail"] == "shard 1/2: no window in the last 60 min; shard 2/2: no window in the last 60 min"


def test_a_failed_shard_window_fails_the_channel_and_outranks_a_late_one(conn: MemoryConnection) -> None:
    window(conn, T - MIN, "1/3", error="cannot stay connected: socket 0 down")
    window(conn, T - 8 * MIN, "2/3")
    window(conn, T - MIN, "3/3")
    candles = read_health(conn, T).channels[0]
    assert candles.status is Status.FAILED
    assert candles.detail == (
        "shard 1/3: latest window failed 60s ago: cannot stay connected: socket 0 down; shard 2/3: no window for 8 min"
    )


def test_the_layout_is_the_latest_window_s_and_an_unsharded_streamer_replaces_it(conn: MemoryConnection) -> None:
    window(conn, T - 3 * MIN, "1/3")  # an old layout of three shards
    window(conn, T - 3 * MIN, "3/3")
    window(conn, T - 2 * MIN, "1/2")
    window(conn, T - 2 * MIN, "2/2")
    candles = read_health(conn, T).channels[0]
    assert (candles.status, [str(s.shard) for s in candles.shards]) == (Status.OK, ["1/2", "2/2"])
    window(conn, T - MIN, None, rows=3)  # one streamer follows everything again
    row = candles_row(conn, T)
    assert list(row) == HEALTH_KEYS
    assert (row["status"], row["ageSec"], row["rowsWritten"]) == ("ok", 60, 3)
    assert read_health(conn, T).channels[0].shards == ()


def test_the_dashboard_and_metrics_list_each_shard_with_its_coins_window_age_and_status(conn: MemoryConnection) -> None:
    window(conn, T - MIN, "1/2", coins=5)
    window(conn, T - 9 * MIN, "2/2", coins=6)
    document = read_dashboard(conn, T)
    candles = msgspec.json.decode(msgspec.json.encode(document.rows[0]))
    assert candles["status"] == "stale"
    assert candles["shards"] == [
        {"shard": "1/2", "coins": 5, "windowAgeSec": 60, "status": "ok", "detail": None},
        {"shard": "2/2", "coins": 6, "windowAgeSec": 540, "status": "stale", "detail": "shard 2/2: no window for 9 min"},
    ]
    assert candles["warningDetails"]["stale"] == "shard 2/2: no window for 9 min, over the 360s stale threshold"
    assert all(row.shards == [] for row in document.rows[1:])
    exposed = _scrape(DashboardCollector(document, {}))
    labels = 'channel="candles",shard="{}",source="hyperliquid"'
    assert [line for line in exposed if line.startswith("market_stream_shard_")] == [
        f"market_stream_shard_window_age_seconds{{{labels.format('1/2')}}} 60.0",
        f"market_stream_shard_window_age_seconds{{{labels.format('2/2')}}} 540.0",
        f"market_stream_shard_coins{{{labels.format('1/2')}}} 5.0",
        f"market_stream_shard_coins{{{labels.format('2/2')}}} 6.0",
        f"market_stream_shard_status{{{labels.format('1/2')},status=\"ok\"}} 1.0",
        f"market_stream_shard_status{{{labels.format('1/2')},status=\"stale\"}} 0.0",
        f"market_stream_shard_status{{{labels.format('1/2')},status=\"failed\"}} 0.0",
        f"market_stream_shard_status{{{labels.format('2/2')},status=\"ok\"}} 0.0",
        f"market_stream_shard_status{{{labels.format('2/2')},status=\"stale\"}} 1.0",
        f"market_stream_shard_status{{{labels.format('2/2')},status=\"failed\"}} 0.0",
    ]


def _scrape(collector: DashboardCollector) -> list[str]:
    """The Prometheus text a scrape of ``collector`` returns, line by line."""
    registry = CollectorRegistry()
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry).decode().splitlines()


def test_the_monitor_s_alert_names_the_late_shard(conn: MemoryConnection) -> None:
    window(conn, T - 7 * MIN, "2/3")
    window(conn, T - MIN, "1/3")
    window(conn, T - MIN, "3/3")
    report = read_health(conn, T, (CANDLES,))
    first = step(MonitorState(), report, memory_age_sec=3600)
    second = step(first.state, report, memory_age_sec=3600)
    assert first.message is None  # one bad check alone does not page
    assert second.message is not None
    assert second.message.splitlines()[1:] == ["• hyperliquid/candles: stale: shard 2/3: no window for 7 min"]


def test_market_check_fails_and_says_which_shard_is_late(tmp_path: Path) -> None:
    memory_path = tmp_path / "market.db"
    now_ms = wall_clock_ms()
    seeded = connect(memory_path)
    try:
        window(seeded, now_ms - 7 * MIN, "2/3")
        window(seeded, now_ms - MIN, "1/3")
        window(seeded, now_ms - MIN, "3/3")
    finally:
        close_memory(seeded)
    env = {k: v for k, v in os.environ.items() if k != "MARKET_OFFLINE"} | {"MARKET_DB": str(memory_path)}
    checked = subprocess.run([str(MARKET), "check"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode != 0
    assert "hyperliquid/candles: stale: shard 2/3: no window for 7 min" in checked.stdout.splitlines(), checked.stdout
