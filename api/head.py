"""HEAD answered by the GET route of the same path, headers only (RFC 9110 §9.3.2).

Monitors (check_http, uptime probes, load balancers) ask with HEAD; Litestar routes a HEAD only to
a handler that declares it (``@head`` handlers may not return a body), so every GET route,
``/livez`` and the OpenAPI document included, answered 405. The request goes to the app as a GET
and the body is dropped on its way out; the headers, ``content-length`` included, are the GET's.
"""

from __future__ import annotations

from typing import cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


def head_as_get(app: ASGIApp) -> ASGIApp:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or cast("HTTPScope", scope)["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app(cast("HTTPScope", {**scope, "method": "GET"}), receive, headers_only)

    return handle
