"""Tests of the Parquet archive (SPEC §11): written from the memory, verified, read back, and the
gate it puts on maintenance's prunes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from market_assets import archive
from market_assets.archive import DayArchive
from market_assets.memory import archive as stamps
from market_assets.memory.retention import database_path


def archive_finished_days(conn: sqlite3.Connection, now_ms: int, root: Path | None = None) -> list[DayArchive]:
    """Archive every finished day of candles and funding the memory holds unstamped, as the
    archive sensor would request them, into ``root`` (default: where maintenance looks, ``archive.archive_root``)."""
    root = root or archive.archive_root(Path(database_path(conn)))
    return [
        archive.write_day(conn, root, dataset, day, now_ms)
        for dataset in stamps.DATASETS
        for day in stamps.unstamped_days(conn, dataset, now_ms, limit=10_000)
    ]
