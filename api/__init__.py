"""The Litestar app of the platform: health contract (and, later, dashboard, admin page, metrics)."""

from api.app import create_app

__all__ = ["create_app"]
