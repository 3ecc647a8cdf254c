"""The app factory. Settings are read by the caller, once; handlers receive them as dependencies,
except the health route, which binds its reader, clock and guard here (see ``api.health``). The read
routes (``api.read_api``) share the dashboard's guard and one ``MarketReader`` (thread-safe, read-only,
one connection per worker thread), closed on shutdown.

HEAD is answered wherever GET is (:func:`api.head.head_as_get`), wrapped around Litestar's own
ASGI handler because Litestar routes HEAD only to handlers that declare it.
"""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.di import Provide

from api.admin_page import AdminPageController, CoverageCache
from api.auth import DashboardAccess, Tokens, UserAccess
from api.dashboard import IngestionDashboardController
from api.errors import JSON_ERRORS
from api.head import head_as_get
from api.health import health_handler
from api.metrics import MetricsController
from api.openapi import SECURITY, openapi_config
from api.probes import ProbesController
from api.read_api import ReadController
from api.readers import Readers
from api.volume_cache import VolumeCache
from market_assets.clock import Clock, wall_clock_ms
from market_assets.read import MarketReader
from market_assets.settings import Settings


def create_app(settings: Settings, *, clock: Clock = wall_clock_ms) -> Litestar:
    readers = Readers(settings.db_path)
    market_reader = MarketReader(settings.db_path, clock=clock)
    volumes = VolumeCache()
    coverage = CoverageCache()
    tokens = Tokens.of(settings.api_tokens)
    operational = Router(
        path="/",
        route_handlers=[IngestionDashboardController, AdminPageController, MetricsController, ReadController],
        guards=[DashboardAccess(settings, tokens)],
        security=SECURITY,
    )
    app = Litestar(
        route_handlers=[health_handler(readers, clock, UserAccess(tokens)), ProbesController, operational],
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "clock": Provide(lambda: clock, use_cache=True, sync_to_thread=False),
            "readers": Provide(lambda: readers, use_cache=True, sync_to_thread=False),
            "volumes": Provide(lambda: volumes, use_cache=True, sync_to_thread=False),
            "coverage": Provide(lambda: coverage, use_cache=True, sync_to_thread=False),
            "market_reader": Provide(lambda: market_reader, use_cache=True, sync_to_thread=False),
        },
        on_shutdown=[market_reader.close],
        exception_handlers=JSON_ERRORS,
        openapi_config=openapi_config(),
    )
    app.asgi_handler = head_as_get(app.asgi_handler)
    return app
