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
    """The market memory and the platform settings; the file defaults to ``MARKET_DB``."""

    db_path: str = ""

    @property
    def settings(self) -> Settings:
        return Settings.from_env(db_path=Path(self.db_path) if self.db_path else None)

    @property
    def path(self) -> Path:
        return self.settings.db_path

    @contextmanager
    def connect(self, *, readonly: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for a ``with`` block; sensors and other readers pass ``readonly=True``,
        which creates nothing and raises ``MemoryMissingError`` when there is no memory yet."""
        with open_memory(self.path, readonly=readonly) as conn:
            yield conn
