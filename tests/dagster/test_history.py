"""Daily-partitioned backfills: DefiLlama TVL history and Hyperliquid candles within reach."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from datetime import UTC, datetime, timedelta

import dagster as dg
from market_assets import fixtures
from market_assets.clock import wall_clock_ms
from market_assets.defs.history import candles_history, tvl_history
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.history import SNAPSHOT_WINDOW_CANDLES, earliest_reachable_open_ms
from market_assets.settings import LOCAL_MAX_COINS

DAY_MS = 86_400_000


def rows(memory: MarketMemory, sql: str) -> list[tuple]:
    conn = sqlite3.connect(memory.db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_tvl_backfill_over_a_range_stores_exactly_those_days(offline: MarketMemory, instance: dg.DagsterInstance) -> None:
    result = dg.materialize(
        [tvl_history],
        resources={"memory": offline},
        instance=instance,
        tags={"dagster/asset_partition_range_start": "2023-01-10", "dagster/asset_partition_range_end": "2023-01-12"},
    )
    assert result.success
    recorded = json.loads(fixtures.fixture_bytes(fixtures.LLAMA_HISTORICAL_TVL))
    first = int(datetime(2023, 1, 10, tzinfo=UTC).timestamp())
    expected = [(p["date"] * 1000, float(p["tvl"])) for p in recorded if first <= p["date"] < first + 3 * 86_400]
    assert len(expected) == 3
    assert rows(offline, "SELECT ts_ms, value FROM defillama_series WHERE series = 'tvl' ORDER BY ts_ms") == expected


def test_todays_candles_are_backfilled_for_every_followed_coin(offline: MarketMemory, instance: dg.DagsterInstance) -> None:
    assert dg.materialize([funding_asset], resources={"memory": offline}, instance=instance).success  # the universe
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    result = dg.materialize([candles_history], resources={"memory": offline}, instance=instance, partition_key=today)
    assert result.success
    per_coin = rows(offline, "SELECT coin, COUNT(*), MIN(open_time_ms), SUM(closed) FROM candles GROUP BY coin")
    assert len(per_coin) == LOCAL_MAX_COINS
    day_start = int(datetime.strptime(today, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)
    now = wall_clock_ms()
    closed_minutes = (now - now % 60_000 - max(day_start, earliest_reachable_open_ms(now))) // 60_000
    for _, count, first_open, closed in per_coin:
        assert first_open >= day_start
        assert closed_minutes - 1 <= closed <= closed_minutes  # the newest minute may have closed meanwhile
        assert count - closed <= 1  # at most the forming minute, never marked closed


def test_a_day_before_the_snapshot_window_fails_saying_it_is_out_of_reach(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    old_day = (datetime.now(UTC) - timedelta(minutes=SNAPSHOT_WINDOW_CANDLES) - timedelta(days=2)).strftime("%Y-%m-%d")
    result = dg.materialize(
        [candles_history], resources={"memory": offline}, instance=instance, partition_key=old_day, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert f"{old_day} 00:00 UTC" in description and "is out of reach" in description
    assert f"last {SNAPSHOT_WINDOW_CANDLES} 1m candles" in description
    assert not Path(offline.db_path).exists()  # nothing was even opened
