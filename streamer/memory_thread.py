"""The streamer's one connection to the market memory, used from one dedicated thread.

SQLite calls block: a flush waiting out another process's write lock (up to the busy timeout)
would stall the event loop, and with it the pings, so the server would cut every socket. Every
memory call of the streamer runs here instead, in order, on the thread that opened the
connection (sqlite3 connections are bound to their thread).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from market_assets.clock import Clock
from market_assets.memory import connect
from market_assets.memory.connection import close

P = ParamSpec("P")
T = TypeVar("T")


class MemoryThread:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="market-memory")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        self._conn = await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(connect, self.path, clock=self.clock)
        )

    async def call(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` on the memory thread. A cancelled caller does not
        cancel the call: a transaction always runs to its end."""
        conn = self._conn
        if conn is None:
            raise RuntimeError("the market memory is not open")
        future = asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, conn, *args, **kwargs))
        return await asyncio.shield(future)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, close, conn)
        self._executor.shutdown(wait=True)
