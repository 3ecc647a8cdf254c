"""The app factory. Settings are read by the caller, once; handlers receive them as dependencies,
except the health route, which binds its reader and clock here (see ``api.health``)."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.admin_page import AdminPageController
from api.auth import DashboardAccess
from api.dashboard import IngestionDashboardController
from api.health import health_handler
from api.metrics import MetricsController
from api.probes import ProbesController
from api.readers import Readers
from api.volume_cache import VolumeCache
from market_assets.clock import Clock, wall_clock_ms
from market_assets.settings import Settings


def create_app(settings: Settings, *, clock: Clock = wall_clock_ms) -> Litestar:
    readers = Readers(settings.db_path)
    volumes = VolumeCache()
    operational = Router(
        path="/",
        route_handlers=[IngestionDashboardController, AdminPageController, MetricsController],
        guards=[DashboardAccess(settings)],
    )
    return Litestar(
        route_handlers=[health_handler(readers, clock), ProbesController, operational],
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "clock": Provide(lambda: clock, use_cache=True, sync_to_thread=False),
            "readers": Provide(lambda: readers, use_cache=True, sync_to_thread=False),
            "volumes": Provide(lambda: volumes, use_cache=True, sync_to_thread=False),
        },
        openapi_config=OpenAPIConfig(title="Market memory API", version="1"),
    )
