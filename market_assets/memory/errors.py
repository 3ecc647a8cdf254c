"""Errors that mean the market memory cannot be used as asked; each message is one readable line."""

from __future__ import annotations


class MarketMemoryError(Exception):
    """The memory file is unusable (not SQLite, from a newer schema, unreachable)."""
