"""The streamer's one connection to the market memory, used from one dedicated thread.

Memory calls block: a flush waiting out another process's write lock (up to the busy timeout)
would stall the event loop, and with it the pings, so the server would cut every socket. Every
memory call of the streamer runs here instead, in order, on the thread that opened the
connection (sqlite3 connections are bound to their thread). A PostgreSQL connection can also
be lost (the server restarted, the network cut): the call that meets it fails as a locked
memory does (its rows are kept for the next flush), and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

from market_assets.clock import Clock
from market_assets.memory import connect
from market_assets.memory.connection import MemoryConnection, close_any, is_lost
from market_assets.memory.target import MemoryTarget

P = ParamSpec("P")
T = TypeVar("T")


class MemoryThread:
    def __init__(self, path: MemoryTarget, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="market-memory")
        self._conn: MemoryConnection | None = None
        self._open = False

    async def open(self) -> None:
        self._conn = await asyncio.get_running_loop().run_in_executor(
            self._executor, partial(connect, self.path, clock=self.clock)
        )
        self._open = True

    async def call(
        self, fn: Callable[Concatenate[MemoryConnection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(conn, *args, **kwargs)`` on the memory thread. A cancelled caller does not
        cancel the call: a transaction always runs to its end."""
        if not self._open:
            raise RuntimeError("the market memory is not open")
        future = asyncio.get_running_loop().run_in_executor(self._executor, partial(self._run, fn, *args, **kwargs))
        return await asyncio.shield(future)

    def _run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """On the memory thread: the call, on a connection opened again if the last one was lost."""
        if self._conn is None:
            self._conn = connect(self.path, clock=self.clock)
        try:
            return fn(self._conn, *args, **kwargs)
        except Exception as exc:
            if is_lost(self._conn, exc):
                conn, self._conn = self._conn, None
                close_any(conn)
            raise

    async def close(self) -> None:
        self._open = False
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, close_any, conn)
        self._executor.shutdown(wait=True)
