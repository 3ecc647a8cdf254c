"""Errors that mean the market memory cannot be used as asked; each message is one readable line."""

from __future__ import annotations


class MarketMemoryError(Exception):
    """The memory file is unusable (not SQLite, from a newer schema, unreachable)."""


class MemoryMissingError(MarketMemoryError):
    """There is no memory at the path a reader was given; nothing was created in its place."""


class MemoryBusyError(MarketMemoryError):
    """Another process held the memory's write lock for longer than this one would wait."""
