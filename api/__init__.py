"""The Litestar app of the platform: health contract, dashboard, admin page, metrics and probes."""

from api.app import create_app

__all__ = ["create_app"]
