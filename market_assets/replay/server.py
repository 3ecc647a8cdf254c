"""Starting and stopping a replay: one loopback HTTP server and one WebSocket server sharing a
catalog, a fault plan and a clock.

In-process (tests, on the running event loop)::

    async with ReplayServers(clock=AcceleratedClock(600)) as replay:
        client = HyperliquidClient(replay.endpoints.hyperliquid_api, clock=replay.clock)

In a background thread (sync callers)::

    with ReplayThread() as replay:
        ...

Standalone: ``python -m market_assets.replay`` (see ``__main__``).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

import uvicorn
from websockets.asyncio.server import Server, serve

from market_assets import fixtures
from market_assets.replay.catalog import Catalog
from market_assets.replay.faults import FaultPlan
from market_assets.replay.http_app import ReplayHttpApp
from market_assets.replay.ws import ReplayWsServer
from market_assets.sources.endpoints import SourceEndpoints
from market_assets.sources.timing import AsyncClock, SystemClock

LOOPBACK = "127.0.0.1"


@dataclass
class ReplayConfig:
    host: str = LOOPBACK
    http_port: int = 0
    ws_port: int = 0
    """0: any free port (the URLs say which)."""
    clock: AsyncClock = field(default_factory=SystemClock)
    tick_s: float = 5.0
    """Clock seconds between candle updates on each WebSocket subscription."""
    universe: str = fixtures.HL_META_AND_CTXS
    seed: int = 0
    enforce_weight: bool = True
    """Answer 429 past 1,200 Hyperliquid weight per rolling minute, as the real API does."""


class ReplayServers:
    def __init__(self, config: ReplayConfig | None = None, *, clock: AsyncClock | None = None) -> None:
        self.config = config or ReplayConfig()
        if clock is not None:
            self.config.clock = clock
        self.clock = self.config.clock
        self.plan = FaultPlan()
        self.catalog = Catalog.load(self.config.universe, seed=self.config.seed)
        self.http = ReplayHttpApp(self.catalog, self.plan, self.clock, enforce_weight=self.config.enforce_weight)
        self.ws = ReplayWsServer(self.catalog, self.plan, self.clock, tick_s=self.config.tick_s)
        self._uvicorn: uvicorn.Server | None = None
        self._uvicorn_task: asyncio.Task[None] | None = None
        self._ws_server: Server | None = None
        self.http_url = ""
        self.ws_url = ""

    @property
    def endpoints(self) -> SourceEndpoints:
        return SourceEndpoints.replay(self.http_url, self.ws_url)

    async def start(self) -> None:
        host = self.config.host
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self.config.http_port))
        self.http_url = f"http://{host}:{sock.getsockname()[1]}"
        self._uvicorn = uvicorn.Server(
            uvicorn.Config(
                self.http,
                lifespan="off",
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=1,
            )
        )
        self._uvicorn_task = asyncio.create_task(self._uvicorn.serve(sockets=[sock]))
        while not self._uvicorn.started:
            if self._uvicorn_task.done():
                self._uvicorn_task.result()
            await asyncio.sleep(0.005)
        self._ws_server = await self._serve_ws(self.config.ws_port)
        ws_port = self._ws_server.sockets[0].getsockname()[1]
        self.ws_url = f"ws://{host}:{ws_port}/ws"

    async def _serve_ws(self, port: int) -> Server:
        # No protocol-level pings: the real server relies on the documented {"method":"ping"}.
        return await serve(
            self.ws.handle,
            self.config.host,
            port,
            process_request=self.ws.process_request,
            ping_interval=None,
            compression=None,
        )

    async def ws_outage(self, seconds: float) -> None:
        """The WebSocket venue goes away for ``seconds`` of clock time, then comes back on the same
        port. While away nothing listens, so connects are refused; the sockets open when it went
        are cut without a close frame (1006 on clients), as a crashed server's are."""
        server = self._ws_server
        assert server is not None, "start the replay first"
        port = server.sockets[0].getsockname()[1]
        server.server.close()  # stop listening now, before a connection can slip in
        for connection in server.all_connections:
            connection.transport.abort()
        server.close(close_connections=False)
        await server.wait_closed()
        await self.clock.sleep(seconds)
        self._ws_server = await self._serve_ws(port)

    async def stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            await self._ws_server.wait_closed()
        if self._uvicorn is not None and self._uvicorn_task is not None:
            self._uvicorn.should_exit = True
            await self._uvicorn_task

    async def __aenter__(self) -> ReplayServers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class ReplayThread:
    """A replay running on its own event loop in a daemon thread, for synchronous callers.

    Faults are injected through ``servers.plan`` (plain attribute writes) or the control API.
    """

    def __init__(self, config: ReplayConfig | None = None) -> None:
        self.servers = ReplayServers(config)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        try:
            await self.servers.start()
        except BaseException as exc:  # reported to the starting thread, which re-raises it
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        await self._stopping.wait()
        await self.servers.stop()

    def start(self) -> ReplayServers:
        self._thread.start()
        self._started.wait(timeout=30)
        if self._failure is not None:
            raise self._failure
        return self.servers

    def stop(self) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)

    def __enter__(self) -> ReplayServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
