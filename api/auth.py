"""Request guards. Users are identified by the ``x-user-id`` header (the runbook's development auth).

Guards are ``async``: Litestar runs a sync guard in a worker thread, a thread hop per request for
a header lookup (bench/api.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from market_assets.settings import Settings

USER_HEADER = "x-user-id"


async def require_user(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not connection.headers.get(USER_HEADER, "").strip():
        raise NotAuthorizedException(detail=f"missing {USER_HEADER} header")


@dataclass(frozen=True)
class DashboardAccess:
    """Guard of the operational data (dashboard, admin page, metrics): public by default, as in
    the runbook; with ``dashboard_requires_admin``, 401 without a user and 403 for a non-admin."""

    settings: Settings

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not self.settings.dashboard_requires_admin:
            return
        user = connection.headers.get(USER_HEADER, "").strip()
        if not user:
            raise NotAuthorizedException(detail=f"missing {USER_HEADER} header")
        if user not in self.settings.admin_user_ids:
            raise PermissionDeniedException(detail="the dashboard requires an admin user")
