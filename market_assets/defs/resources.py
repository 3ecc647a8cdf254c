"""Resources shared by the assets and sensors of every source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from market_assets.memory import open_memory
from market_assets.memory.connection import MemoryConnection
from market_assets.memory.target import MemoryTarget
from market_assets.settings import Settings


class MarketMemory(dg.ConfigurableResource):
    """The market memory and the platform settings. ``db_path`` is the memory's SQLite file or
    its PostgreSQL URL (``postgresql://…``); empty, it is ``MARKET_DB``'s (the code location's
    ``MarketMemory()``), so every Dagster process on every host follows its own environment."""

    db_path: str = ""

    @property
    def settings(self) -> Settings:
        return Settings.from_env(db_path=self.db_path or None)

    @property
    def path(self) -> MemoryTarget:
        """The memory as :func:`market_assets.memory.open_memory` takes it: a path or a URL."""
        return self.settings.db_path

    @contextmanager
    def connect(self, *, readonly: bool = False) -> Iterator[MemoryConnection]:
        """A connection for a ``with`` block; sensors and other readers pass ``readonly=True``,
        which creates nothing and raises ``MemoryMissingError`` when there is no memory yet."""
        with open_memory(self.path, readonly=readonly) as conn:
            yield conn
