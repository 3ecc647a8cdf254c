"""``hyperliquid/candles_archive``: each finished UTC day of 1m candles and funding, to Parquet.

One partition per UTC day (``market_assets.archive`` holds the layout, the checksum and the
stamp). A run writes that day's ``candles`` and ``funding`` partitions through DuckDB directly,
in-process: the ``dagster-duckdb`` resource manages a DuckDB *database file* for I/O managers
and SQL assets, while the archive needs no database at all, only DuckDB's Parquet writer over an
Arrow table (an in-memory connection per file), and the same code must run outside Dagster
(maintenance's gate, the reader, the tests).

Backfill any range from the UI (the asset's Partitions tab, or Materialize → a date range):
one run per day, each in the ``hyperliquid`` pool like every other Hyperliquid asset, so
archiving never runs beside maintenance's prune. The sensor requests the days that need it
(yesterday once it ends, and any day whose stamp a change removed), a few per tick.

No ledger run: the archive is not a registry channel with a cadence and a health status; its
record is the memory's stamp of each day (rows, checksum, when) plus Dagster's own run history
and this asset's materialization metadata.
"""

# No ``from __future__ import annotations``: Dagster inspects the ``context`` annotation itself.
from collections.abc import Iterator

import dagster as dg
from dagster import AssetExecutionContext

from market_assets import archive
from market_assets.archive import DayArchive, Outcome
from market_assets.clock import Clock, wall_clock_ms
from market_assets.defs.automation import IN_FLIGHT, asset_key, source_pool
from market_assets.defs.resources import MarketMemory
from market_assets.memory import MarketMemoryError, open_memory
from market_assets.memory import archive as stamps
from market_assets.registry import CANDLES, FUNDING, UNVERIFIED_CANDLES_AFTER

ARCHIVE_START = "2023-01-01"
"""The first partition: Hyperliquid's perps went live on its own chain in 2023 and its API serves
no older candles or funding, so no memory holds an earlier day. A fixed date, not one derived
from the clock like ``candles_history``'s: an archived partition must stay listed for good."""

DAYS_PER_TICK = 4
"""Partitions the sensor requests per tick: yesterday's, and a few days whose stamp a change
removed, without flooding the run queue when a long outage left many (the UI backfills those)."""

SENSOR_INTERVAL_SEC = 600

SETTLE_MS = 3 * int(UNVERIFIED_CANDLES_AFTER.total_seconds() * 1000)
"""The sensor asks for a day this long after it ends: the last minutes' REST repairs are owed
within ``UNVERIFIED_CANDLES_AFTER``, and each one landing after the archive would unstamp the day
and write it again. (A backfill from the UI archives any finished day at once.)"""

ARCHIVE_KEY = dg.AssetKey([CANDLES.source, "candles_archive"])

archive_partitions = dg.DailyPartitionsDefinition(start_date=ARCHIVE_START, timezone="UTC")
"""UTC days up to yesterday (``end_offset`` 0): the day in progress is never a partition."""


def _metadata(days: list[DayArchive]) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {}
    for day in days:
        prefix = day.dataset
        metadata |= {
            f"{prefix}/outcome": dg.MetadataValue.text(day.outcome.value),
            f"{prefix}/rows": dg.MetadataValue.int(day.rows),
            f"{prefix}/bytes": dg.MetadataValue.int(day.bytes),
            f"{prefix}/bytes_per_row": dg.MetadataValue.float(round(day.bytes_per_row, 2)),
            f"{prefix}/checksum": dg.MetadataValue.text(day.checksum or ""),
            f"{prefix}/path": dg.MetadataValue.path(str(day.path)),
            f"{prefix}/rows_kept_from_partition": dg.MetadataValue.int(day.rows_kept_from_partition),
            f"{prefix}/lock_ms": dg.MetadataValue.float(round(day.lock_ms, 1)),
        }
    metadata["dagster/row_count"] = dg.MetadataValue.int(next((day.rows for day in days if day.dataset == "candles"), 0))
    return metadata


@dg.asset(
    key=ARCHIVE_KEY,
    group_name=CANDLES.source,
    pool=source_pool(CANDLES),
    description=(
        "Parquet archive of each finished UTC day: every closed 1-minute candle (with its confirmed "
        "flag) and every funding hour, under MARKET_ARCHIVE (default: archive/ beside the memory), "
        "<root>/{candles,funding}/day=YYYY-MM-DD/part-0.parquet, zstd. Stamps the day in the memory "
        "(rows, sha256) once the file holds exactly the memory's rows; maintenance prunes only "
        "stamped, verified days. A day the memory no longer holds keeps its partition untouched."
    ),
    kinds={"python", "duckdb", "parquet"},
    partitions_def=archive_partitions,
    deps=[asset_key(CANDLES), asset_key(FUNDING)],
    output_required=False,
)
def candles_archive(context: AssetExecutionContext, memory: MarketMemory) -> Iterator[dg.MaterializeResult]:
    day_ms = int(context.partition_time_window.start.timestamp() * 1000)
    settings = memory.settings
    root = settings.archive_root or archive.archive_root(settings.db_path)
    days: list[DayArchive] = []
    with memory.connect() as conn:
        for dataset in stamps.DATASETS:
            try:
                days.append(archive.write_day(conn, root, dataset, day_ms, wall_clock_ms()))
            except archive.DayChangingError as exc:  # repairs still landing: the sensor asks again
                context.log.warning(str(exc))
    for day in days:
        context.log.info(day.message)
    if all(day.outcome is Outcome.EMPTY for day in days):
        context.log.warning(f"nothing materialized for {archive.day_key(day_ms)}: no partition written or kept")
        return
    yield dg.MaterializeResult(metadata=_metadata(days))


archive_job = dg.define_asset_job(
    "hyperliquid_candles_archive_job",
    selection=dg.AssetSelection.assets(ARCHIVE_KEY),
    description="Archive one UTC day of candles and funding to Parquet (hyperliquid/candles_archive).",
)


def days_to_archive(memory: MarketMemory, now_ms: int, limit: int) -> list[str]:
    """Partition keys, oldest first, of the days ended :data:`SETTLE_MS` before ``now_ms`` with
    rows in the memory and no stamp of either dataset (through a read-only connection)."""
    with open_memory(memory.path, readonly=True) as conn:
        days = {
            day for dataset in stamps.DATASETS for day in stamps.unstamped_days(conn, dataset, now_ms - SETTLE_MS, limit)
        }
    first = archive_partitions.start.timestamp() * 1000
    return [archive.day_key(day) for day in sorted(days) if day >= first]


def archive_sensor(*, clock: Clock = wall_clock_ms) -> dg.SensorDefinition:
    @dg.sensor(
        name="hyperliquid_candles_archive_days",
        job=archive_job,
        minimum_interval_seconds=SENSOR_INTERVAL_SEC,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Requests the hyperliquid/candles_archive partitions of finished UTC days that have rows "
            f"in the memory but no archive stamp (yesterday {SETTLE_MS // 60_000} minutes after it ends; "
            "any day a change unstamped), "
            f"at most {DAYS_PER_TICK} per tick, none with a run already in flight."
        ),
    )
    def archive_days(context: dg.SensorEvaluationContext, memory: MarketMemory) -> dg.SensorResult | dg.SkipReason:
        try:
            keys = days_to_archive(memory, clock(), DAYS_PER_TICK * 4)
        except MarketMemoryError as exc:
            return dg.SkipReason(f"cannot read the market memory: {exc}")
        in_flight = {
            record.dagster_run.tags.get("dagster/partition")
            for record in context.instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT))
            if ARCHIVE_KEY in (record.dagster_run.asset_selection or ())
        }
        requested = [key for key in keys if key not in in_flight][:DAYS_PER_TICK]
        if not requested:
            return dg.SkipReason(
                "every finished day with rows is archived" if not keys else f"archive runs in flight for {', '.join(keys)}"
            )
        return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=key) for key in requested])

    return archive_days
