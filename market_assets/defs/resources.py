"""Resources shared by the assets and sensors of every source."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from market_assets.memory import open_memory
from market_assets.settings import Settings


class MarketMemory(dg.ConfigurableResource):
    """The market memory file; defaults to the platform setting (``MARKET_DB``)."""

    db_path: str = ""

    @property
    def path(self) -> Path:
        return Path(self.db_path) if self.db_path else Settings.from_env().db_path

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        with open_memory(self.path) as conn:
            yield conn
