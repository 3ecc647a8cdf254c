"""``hyperliquid/candles_archive`` materializes through Dagster against a real memory; its sensor
asks for the finished days that have rows and no stamp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from market_assets import archive
from market_assets.definitions import defs
from market_assets.defs.hyperliquid.archive import (
    ARCHIVE_KEY,
    ARCHIVE_START,
    DAYS_PER_TICK,
    SETTLE_MS,
    archive_job,
    archive_sensor,
    candles_archive,
)
from market_assets.defs.resources import MarketMemory
from market_assets.ledger import Ledger
from market_assets.maintenance import run_maintenance
from market_assets.memory import archive as stamps
from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection, close
from market_assets.memory.hyperliquid import upsert_funding
from market_assets.memory.target import MemoryTarget
from market_assets.registry import CANDLES
from tests.archive import funding_day, realistic_day
from tests.conftest import FrozenClock
from tests.market_data import DAY0_MS, DAY_MS, store

DAY0 = archive.day_key(DAY0_MS)


@pytest.fixture
def archive_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "parquet"
    monkeypatch.setenv("MARKET_ARCHIVE", str(root))
    return root


@pytest.fixture
def memory(conn: MemoryConnection, memory_path: Path) -> MarketMemory:
    return MarketMemory(db_path=str(memory_path))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def materialize(memory: MarketMemory, day: str, instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    return dg.materialize([candles_archive], partition_key=day, resources={"memory": memory}, instance=instance)


def test_the_asset_writes_a_days_partitions_and_reports_them(
    conn: MemoryConnection, clock: FrozenClock, memory: MarketMemory, archive_root: Path, instance: dg.DagsterInstance
) -> None:
    rows = realistic_day(3, DAY0_MS, seed=2)
    store(conn, rows, clock())
    upsert_funding(conn, funding_day(["C000", "C001"], DAY0_MS), clock())

    result = materialize(memory, DAY0, instance)

    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {key: value.value for key, value in event.materialization.metadata.items()}
    candles_path = archive_root / "candles" / f"day={DAY0}" / "part-0.parquet"
    assert event.materialization.partition == DAY0
    assert metadata["dagster/row_count"] == metadata["candles/rows"] == 3 * 1440
    assert metadata["funding/rows"] == 48
    assert metadata["candles/path"] == str(candles_path)
    assert metadata["candles/bytes"] == candles_path.stat().st_size
    assert metadata["candles/bytes_per_row"] == round(candles_path.stat().st_size / (3 * 1440), 2)
    assert metadata["candles/outcome"] == "written"
    assert metadata["candles/checksum"] == stamps.stamp_of(conn, "candles", DAY0_MS).checksum  # type: ignore[union-attr]
    table = archive.read_candles(archive_root, [DAY0_MS], None, DAY0_MS, DAY0_MS + DAY_MS)
    source = sorted(rows, key=lambda r: (r.coin, r.open_time_ms))
    assert [tuple(r.values()) for r in table.to_pylist()] == [
        (r.coin, r.open_time_ms, r.open, r.high, r.low, r.close, r.volume, r.trades, r.confirmed) for r in source
    ]


def test_materializing_a_pruned_day_again_keeps_its_partition(
    conn: MemoryConnection, clock: FrozenClock, memory: MarketMemory, archive_root: Path, instance: dg.DagsterInstance
) -> None:
    assert CANDLES.retention is not None
    store(conn, realistic_day(2, DAY0_MS), clock())
    assert materialize(memory, DAY0, instance).success
    clock.now_ms = DAY0_MS + (CANDLES.retention.days + 2) * DAY_MS
    assert run_maintenance(conn, Ledger(conn, clock)).candle_rows_pruned == 2 * 1440  # the default root: MARKET_ARCHIVE
    path = archive.partition_path(archive_root, "candles", DAY0_MS)
    before, stamp = path.read_bytes(), stamps.stamp_of(conn, "candles", DAY0_MS)
    conn.execute("DELETE FROM archived_days")  # even unstamped, the memory's nothing never replaces the archive

    again = materialize(memory, DAY0, instance)

    assert again.success
    (event,) = again.get_asset_materialization_events()
    assert event.materialization.metadata["candles/outcome"].value == "kept"
    assert path.read_bytes() == before and stamp is not None


def test_a_day_with_nothing_materializes_nothing(memory: MarketMemory, archive_root: Path, instance: dg.DagsterInstance) -> None:
    result = materialize(memory, DAY0, instance)
    assert result.success and result.get_asset_materialization_events() == []
    assert not archive_root.exists()


def sensor_tick(memory: MarketMemory, instance: dg.DagsterInstance, now_ms: int) -> dg.SensorExecutionData:
    context = dg.build_sensor_context(instance=instance, resources={"memory": memory}, repository_def=defs.get_repository_def())
    return archive_sensor(clock=lambda: now_ms).evaluate_tick(context)


def test_the_sensor_asks_for_finished_unstamped_days_and_again_once_a_change_unstamps_one(
    conn: MemoryConnection, clock: FrozenClock, memory: MarketMemory, archive_root: Path, instance: dg.DagsterInstance
) -> None:
    rows = [row for day in range(3) for row in realistic_day(1, DAY0_MS + day * DAY_MS, seed=day)]
    store(conn, rows, clock())
    inside_day_2 = DAY0_MS + 2 * DAY_MS + 5 * 3_600_000
    first = sensor_tick(memory, instance, inside_day_2)
    assert [r.partition_key for r in first.run_requests or []] == [DAY0, archive.day_key(DAY0_MS + DAY_MS)]  # not day 2: not ended

    for day in (DAY0_MS, DAY0_MS + DAY_MS):
        archive.write_day(conn, archive_root, "candles", day, inside_day_2)
    assert sensor_tick(memory, instance, inside_day_2).skip_message == "every finished day with rows is archived"

    minute = rows[30]
    store(conn, [minute._replace(close=minute.close * 1.001, high=max(minute.high, minute.close * 1.001))], clock())  # revised
    unsettled = sensor_tick(memory, instance, DAY0_MS + 3 * DAY_MS + SETTLE_MS - 1)
    assert [r.partition_key for r in unsettled.run_requests or []] == [DAY0]
    again = sensor_tick(memory, instance, DAY0_MS + 3 * DAY_MS + SETTLE_MS)  # day 2 has settled
    assert [r.partition_key for r in again.run_requests or []] == [DAY0, archive.day_key(DAY0_MS + 2 * DAY_MS)]


def test_the_sensor_skips_days_in_flight_and_requests_a_few_per_tick(
    conn: MemoryConnection, clock: FrozenClock, memory: MarketMemory, instance: dg.DagsterInstance
) -> None:
    days = DAYS_PER_TICK + 2
    store(conn, [row for day in range(days) for row in realistic_day(1, DAY0_MS + day * DAY_MS, minutes=5)], clock())
    instance.add_run(dg.DagsterRun(
        job_name=archive_job.name, run_id="in-flight", status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset({ARCHIVE_KEY}), tags={"dagster/partition": DAY0},
    ))
    tick = sensor_tick(memory, instance, DAY0_MS + days * DAY_MS + SETTLE_MS)
    assert [r.partition_key for r in tick.run_requests or []] == [
        archive.day_key(DAY0_MS + day * DAY_MS) for day in range(1, 1 + DAYS_PER_TICK)
    ]


def test_the_sensor_waits_for_a_memory(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    absent = MarketMemory(db_path=str(tmp_path / "none.db"))
    tick = sensor_tick(absent, instance, DAY0_MS)
    assert tick.skip_message is not None and "no market memory" in tick.skip_message
    assert list(tmp_path.iterdir()) == []  # the sensor only reads


def test_the_asset_job_and_sensor_are_in_the_definitions() -> None:
    repository = defs.get_repository_def()
    node = repository.asset_graph.get(ARCHIVE_KEY)
    partitions = node.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.get_first_partition_key() == ARCHIVE_START and partitions.timezone == "UTC"
    assert partitions.end_offset == 0  # the day in progress is never a partition
    assert repository.assets_defs_by_key[ARCHIVE_KEY].op.pool == "hyperliquid"
    assert repository.get_job(archive_job.name).partitions_def == partitions
    sensor = repository.get_sensor_def("hyperliquid_candles_archive_days")
    assert sensor.default_status is dg.DefaultSensorStatus.RUNNING and sensor.job_name == archive_job.name


def test_a_fresh_memory_file_is_stamped_by_the_asset(tmp_path: Path, archive_root: Path, clock: FrozenClock, instance: dg.DagsterInstance) -> None:
    """Against a memory the test never opened for the asset: the resource's own connection writes the stamp."""
    path = tmp_path / "other" / "market.db"
    writer = connect(path, clock=clock)
    store(writer, realistic_day(1, DAY0_MS, minutes=90), clock())
    close(writer)
    assert materialize(MarketMemory(db_path=str(path)), DAY0, instance).success
    reader = connect(path, clock=clock, readonly=True)
    try:
        assert set(stamps.stamped_days(reader, "candles", DAY0_MS, DAY0_MS + DAY_MS)) == {DAY0_MS}
    finally:
        reader.close()


@pytest.fixture
def memory_target(memory_path: Path) -> MemoryTarget:
    """SQLite only: a Dagster materialization costs seconds; the asset calls the archive's functions, tested on both engines in test_archive."""
    return memory_path
