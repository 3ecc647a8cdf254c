"""The app factory. Settings are read by the caller, once; handlers receive them as dependencies."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.health import IngestionHealthController
from market_assets.clock import Clock, wall_clock_ms
from market_assets.settings import Settings


def create_app(settings: Settings, *, clock: Clock = wall_clock_ms) -> Litestar:
    return Litestar(
        route_handlers=[IngestionHealthController],
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "clock": Provide(lambda: clock, use_cache=True, sync_to_thread=False),
        },
        openapi_config=OpenAPIConfig(title="Market memory API", version="1"),
    )
