"""Request guards. Users are identified by the ``x-user-id`` header (the runbook's development auth)."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

USER_HEADER = "x-user-id"


def require_user(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if not connection.headers.get(USER_HEADER, "").strip():
        raise NotAuthorizedException(detail=f"missing {USER_HEADER} header")
