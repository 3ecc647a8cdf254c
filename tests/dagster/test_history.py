"""Daily-partitioned backfills: DefiLlama TVL history and Hyperliquid candles within reach.

Every backfill run is a ledger run of the channel it fills; candles are stored coin by coin as
they arrive, against the replay servers, and compared value by value with what they served.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from market_assets import fixtures
from market_assets.clock import wall_clock_ms
from market_assets.defs.history import (
    candle_history_partitions,
    candles_history,
    candles_history_asset,
    tvl_history,
)
from market_assets.defs.hyperliquid.funding import funding_asset
from market_assets.defs.resources import MarketMemory
from market_assets.ingest.history import (
    SNAPSHOT_WINDOW_CANDLES,
    backfill_candle_days,
    earliest_reachable_open_ms,
)
from market_assets.ingest.subjects import SUBJECT_ERRORS
from market_assets.memory.runs import BACKFILL_KEY, RunRecord, RunStatus, runs_of
from market_assets.registry import CANDLES, DEFILLAMA_MACRO, Channel
from market_assets.replay import HttpFault, HttpFaultKind, ReplayServers
from market_assets.settings import LOCAL_MAX_COINS

DAY_MS = 86_400_000
MINUTE_MS = 60_000


def rows(memory: MarketMemory, sql: str) -> list[tuple]:
    conn = sqlite3.connect(memory.db_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def ledger(memory: MarketMemory, channel: Channel) -> list[RunRecord]:
    conn = sqlite3.connect(memory.db_path)
    try:
        return runs_of(conn, channel.source, channel.name)
    finally:
        conn.close()


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def day_start_ms(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


def most_traded(count: int) -> list[str]:
    """The local profile's coins, read straight from the recorded metaAndAssetCtxs."""
    meta, ctxs = json.loads(fixtures.fixture_bytes(fixtures.HL_META_AND_CTXS))
    listed = [
        (Decimal(ctx["dayNtlVlm"]), asset["name"])
        for asset, ctx in zip(meta["universe"], ctxs)
        if not asset.get("isDelisted")
    ]
    return [name for _, name in sorted(listed, reverse=True)[:count]]


def stored_closed(memory: MarketMemory, coin: str) -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in rows(
            memory,
            "SELECT open_time_ms, open, high, low, close, volume, trades FROM candles "
            f"WHERE coin = '{coin}' AND interval = '1m' AND closed = 1",
        )
    }


def served_closed(replay: ReplayServers, coin: str, start_ms: int, now_ms: int) -> dict[int, tuple]:
    """What the replay serves for ``coin`` from ``start_ms``: the source's truth, closed minutes only."""
    return {
        c["t"]: (float(c["o"]), float(c["h"]), float(c["l"]), float(c["c"]), float(c["v"]), int(c["n"]))
        for c in replay.catalog.candles(coin, "1m", start_ms, now_ms, now_ms)
        if c["T"] < now_ms
    }


def assert_stored_as_served(memory: MarketMemory, replay: ReplayServers, coin: str, start_ms: int) -> None:
    stored = stored_closed(memory, coin)
    served = served_closed(replay, coin, start_ms, wall_clock_ms())
    assert stored, coin
    assert stored.items() <= served.items(), coin  # every stored minute, value by value
    assert len(served) - len(stored) <= 1, coin  # the newest minute may have closed meanwhile


def test_a_tvl_backfill_over_a_range_stores_exactly_those_days_in_one_ledger_run(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
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
    [run] = ledger(offline, DEFILLAMA_MACRO)
    assert (run.status, run.rows_written, run.error) == (RunStatus.SUCCEEDED, 3, None)
    assert run.metadata[BACKFILL_KEY] == "2023-01-10..2023-01-12"
    events = result.get_asset_materialization_events()
    assert [e.partition for e in events] == ["2023-01-10", "2023-01-11", "2023-01-12"]
    assert {e.step_materialization_data.materialization.metadata["ledger_run_id"].value for e in events} == {run.run_id}


def test_a_failed_tvl_backfill_is_a_failed_ledger_run_with_its_error(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.MALFORMED, path="/llama/v2/historicalChainTvl", times=None))
    result = dg.materialize(
        [tvl_history], resources={"memory": offline}, instance=instance, partition_key="2023-01-10", raise_on_error=False
    )
    assert not result.success
    [run] = ledger(offline, DEFILLAMA_MACRO)
    assert run.status is RunStatus.FAILED and run.finished_at_ms is not None
    assert "historicalChainTvl" in run.error
    assert run.metadata[BACKFILL_KEY] == "2023-01-10..2023-01-10"
    assert rows(offline, "SELECT COUNT(*) FROM defillama_series") == [(0,)]


def test_todays_candles_are_backfilled_for_every_followed_coin_in_one_ledger_run(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    assert dg.materialize([funding_asset], resources={"memory": offline}, instance=instance).success  # the universe
    result = dg.materialize([candles_history], resources={"memory": offline}, instance=instance, partition_key=today())
    assert result.success
    per_coin = rows(offline, "SELECT coin, COUNT(*), MIN(open_time_ms), SUM(closed) FROM candles GROUP BY coin")
    assert len(per_coin) == LOCAL_MAX_COINS
    day_start = day_start_ms(today())
    now = wall_clock_ms()
    closed_minutes = (now - now % MINUTE_MS - max(day_start, earliest_reachable_open_ms(now))) // MINUTE_MS
    for coin, count, first_open, closed in per_coin:
        assert first_open >= day_start
        assert closed_minutes - 1 <= closed <= closed_minutes  # the newest minute may have closed meanwhile
        assert count - closed <= 1  # at most the forming minute, never marked closed
        assert_stored_as_served(offline, replay, coin, day_start)
    [run] = ledger(offline, CANDLES)
    assert run.status is RunStatus.SUCCEEDED
    assert run.rows_written == sum(count for _, count, _, _ in per_coin)
    assert run.metadata[BACKFILL_KEY] == f"{today()}..{today()}"


def test_on_a_memory_without_a_universe_the_backfill_reads_it_from_the_source(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    result = dg.materialize([candles_history], resources={"memory": offline}, instance=instance, partition_key=today())
    assert result.success
    coins = {coin for (coin,) in rows(offline, "SELECT DISTINCT coin FROM candles")}
    assert coins == set(most_traded(LOCAL_MAX_COINS))
    for coin in coins:
        assert_stored_as_served(offline, replay, coin, day_start_ms(today()))
    [event] = result.get_asset_materialization_events()
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["universe_read_from_source"].value is True
    assert metadata["rows_written"].value == rows(offline, "SELECT COUNT(*) FROM candles")[0][0] > 0
    logged = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any("followed coins read from metaAndAssetCtxs" in line for line in logged)
    for n, coin in enumerate(most_traded(LOCAL_MAX_COINS), 1):  # progress per coin, in the run's log
        assert any(line.startswith(f"{n}/{LOCAL_MAX_COINS} {coin}: ") and "rows stored" in line for line in logged)


class RunCut(Exception):
    """The run stopped between two coins (a terminated Dagster run, a killed worker)."""


def test_a_run_cut_mid_day_keeps_every_coin_stored_before_the_cut(offline: MarketMemory, replay: ReplayServers) -> None:
    day_start = day_start_ms(today())
    progress: list[str] = []

    def cut_after_two_coins(line: str) -> None:
        progress.append(line)
        if line.startswith("2/"):
            raise RunCut("terminated")

    with pytest.raises(RunCut):
        backfill_candle_days(offline.settings, day_start, day_start + DAY_MS, wall_clock_ms(), progress=cut_after_two_coins)
    kept = [coin for (coin,) in rows(offline, "SELECT DISTINCT coin FROM candles ORDER BY coin")]
    first_two = most_traded(LOCAL_MAX_COINS)[:2]
    assert sorted(kept) == sorted(first_two)
    for coin in first_two:
        assert_stored_as_served(offline, replay, coin, day_start)
    [run] = ledger(offline, CANDLES)
    assert (run.status, run.error) == (RunStatus.FAILED, "RunCut: terminated")
    assert run.rows_written == rows(offline, "SELECT COUNT(*) FROM candles")[0][0]


def test_a_source_fault_mid_day_names_the_failed_coins_and_keeps_the_others(
    offline: MarketMemory, replay: ReplayServers
) -> None:
    day_start = day_start_ms(today())
    coins = most_traded(LOCAL_MAX_COINS)

    def fault_from_the_third_coin(line: str) -> None:
        if line.startswith("2/"):
            replay.plan.add_http(HttpFault(HttpFaultKind.MALFORMED, info_type="candleSnapshot", times=1))

    result = backfill_candle_days(
        offline.settings, day_start, day_start + DAY_MS, wall_clock_ms(), progress=fault_from_the_third_coin
    )
    assert set(result.subject_errors) == {coins[2]}
    assert "candleSnapshot" in result.subject_errors[coins[2]]
    stored = {coin for (coin,) in rows(offline, "SELECT DISTINCT coin FROM candles")}
    assert stored == set(coins) - {coins[2]}
    for coin in stored:
        assert_stored_as_served(offline, replay, coin, day_start)
    [run] = ledger(offline, CANDLES)
    assert run.status is RunStatus.SUCCEEDED
    assert run.metadata[SUBJECT_ERRORS] == result.subject_errors


def test_when_every_coin_fails_the_run_fails_naming_them(
    offline: MarketMemory, instance: dg.DagsterInstance, replay: ReplayServers
) -> None:
    replay.plan.add_http(HttpFault(HttpFaultKind.MALFORMED, info_type="candleSnapshot", times=None))
    result = dg.materialize(
        [candles_history], resources={"memory": offline}, instance=instance, partition_key=today(), raise_on_error=False
    )
    assert not result.success
    [run] = ledger(offline, CANDLES)
    assert run.status is RunStatus.FAILED
    assert f"hyperliquid every coin's candleSnapshot: all {LOCAL_MAX_COINS} failed: " in run.error
    assert all(coin in run.error for coin in most_traded(LOCAL_MAX_COINS))
    assert set(run.metadata[SUBJECT_ERRORS]) == set(most_traded(LOCAL_MAX_COINS))
    assert rows(offline, "SELECT COUNT(*) FROM candles") == [(0,)]


def test_only_the_days_candle_snapshot_still_serves_are_offered() -> None:
    now = int(datetime(2026, 3, 10, 12, 30, tzinfo=UTC).timestamp() * 1000)
    keys = candle_history_partitions(now).get_partition_keys(current_time=datetime.fromtimestamp(now / 1000, UTC))
    # 5,000 minutes before 12:30 on the 10th is 01:11 on the 7th: that day is partly served.
    assert keys == ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
    offered = candles_history.partitions_def.get_partition_keys()
    assert offered[-1] == today() and len(offered) <= 5
    assert datetime.strptime(offered[0], "%Y-%m-%d").replace(tzinfo=UTC) <= datetime.now(UTC) - timedelta(
        minutes=SNAPSHOT_WINDOW_CANDLES
    )


def test_a_day_that_slipped_out_of_reach_since_loading_is_skipped_saying_so(
    offline: MarketMemory, instance: dg.DagsterInstance
) -> None:
    loaded_days_ago = candles_history_asset(wall_clock_ms() - 10 * DAY_MS)  # a code location up for 10 days
    old_day = loaded_days_ago.partitions_def.get_partition_keys()[0]
    result = dg.materialize(
        [loaded_days_ago], resources={"memory": offline}, instance=instance, partition_key=old_day
    )
    assert result.success
    assert result.get_asset_materialization_events() == []
    records = instance.all_logs(result.run_id)
    warnings = [r.user_message for r in records if r.level >= 30]
    assert any(f"{old_day} 00:00 UTC" in w and "is out of reach" in w and "skipped" in w for w in warnings)
    assert any(f"last {SNAPSHOT_WINDOW_CANDLES} 1m candles" in w for w in warnings)
    assert not Path(offline.db_path).exists()  # nothing was even opened
