"""The market memory shared by the streamer, Dagster runs, the API and the CLI: one SQLite file
on one host, or one PostgreSQL database across hosts (``target``, ``postgres``).

Every SQL statement of the platform lives in this package (a test enforces it), written once in
the dialect SQLite and PostgreSQL share, with both texts side by side where they differ
(``dialect``).
"""

from market_assets.memory.connection import close, connect, open_memory, write_transaction
from market_assets.memory.errors import MarketMemoryError, MemoryBusyError, MemoryMissingError
from market_assets.memory.runs import RunRecord, RunStatus
from market_assets.memory.schema import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "MarketMemoryError",
    "MemoryBusyError",
    "MemoryMissingError",
    "RunRecord",
    "RunStatus",
    "close",
    "connect",
    "open_memory",
    "write_transaction",
]
