"""Request guards: who may read health, the dashboard, the admin page and /metrics.

Two ways in (SPEC §4):

* ``x-user-id`` is an *identity* header, not authentication: anyone who can reach the port can set
  it to anything. It is for a deployment behind a trusted front proxy (an SSO gateway, an ingress
  with OAuth) that authenticates people and sets the header itself, dropping any the client sent;
  the API binds to loopback by default so that nothing else can reach it.
* Machines (monitors, Prometheus) authenticate with ``Authorization: Bearer <token>``, a token of
  ``MARKET_API_TOKENS``. A valid token is accepted wherever the header is and counts as an admin;
  a presented token that is not valid is refused with 401, on public routes too, so a scraper
  configured with a wrong token fails loudly instead of reading as anonymous. Other
  ``Authorization`` schemes (a proxy's Basic credentials passed through) are left alone.

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every configured
token whatever matched, so the time taken says nothing about which token or how much of it matched.

Guards are ``async``: Litestar runs a sync guard in a worker thread, a thread hop per request for
a header lookup (bench/api.py).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from market_assets.settings import Settings

USER_HEADER = "x-user-id"
REALM = 'Bearer realm="market"'
"""The ``WWW-Authenticate`` challenge of every 401 (RFC 6750 §3)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """The configured bearer tokens, kept as digests."""

    digests: tuple[bytes, ...]

    @classmethod
    def of(cls, tokens: tuple[str, ...]) -> Tokens:
        return cls(tuple(_digest(token) for token in tokens))

    def accept(self, token: str) -> bool:
        presented = _digest(token)
        matched = False
        for digest in self.digests:
            matched |= hmac.compare_digest(presented, digest)
        return matched


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``None`` without one (or another scheme)."""
    scheme, _, token = connection.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _unauthorized(detail: str, *, invalid_token: bool = False) -> NotAuthorizedException:
    challenge = f'{REALM}, error="invalid_token"' if invalid_token else REALM
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


def _token_admits(tokens: Tokens, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True for a valid bearer token, False without one; raises 401 for one that is not valid."""
    token = bearer_token(connection)
    if token is None:
        return False
    if not tokens.accept(token):
        raise _unauthorized("the bearer token is not one of MARKET_API_TOKENS", invalid_token=True)
    return True


@dataclass(frozen=True, slots=True)
class UserAccess:
    """Guard of the health route: an ``x-user-id`` or a valid bearer token (401 otherwise)."""

    tokens: Tokens

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if _token_admits(self.tokens, connection):
            return
        if not connection.headers.get(USER_HEADER, "").strip():
            raise _unauthorized(f"missing {USER_HEADER} header (or a bearer token)")


@dataclass(frozen=True, slots=True)
class DashboardAccess:
    """Guard of the operational data (dashboard, admin page, metrics): public by default, as in
    the runbook; with ``dashboard_requires_admin``, 401 without a user and 403 for a non-admin.
    A valid bearer token counts as an admin, so Prometheus can scrape an admin-only deployment."""

    settings: Settings
    tokens: Tokens

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if _token_admits(self.tokens, connection) or not self.settings.dashboard_requires_admin:
            return
        user = connection.headers.get(USER_HEADER, "").strip()
        if not user:
            raise _unauthorized(f"missing {USER_HEADER} header (or a bearer token)")
        if user not in self.settings.admin_user_ids:
            raise PermissionDeniedException(detail="the dashboard requires an admin user")
