"""Error responses whose body always matches their ``content-type``.

Litestar's default handler encodes the error as JSON but labels it with the route's own media type,
so a 401 from ``/admin/ingestion`` went out as JSON marked ``text/html`` and one from ``/metrics``
as ``text/plain``. Here every error of the API is JSON sent as ``application/json``, and the admin
page, read by a person in a browser, gets a small HTML page sent as ``text/html``.

A memory the API cannot read (none at the path yet, a file that is not SQLite, a schema a writer
has not migrated) answers 503 with the reason: the API opens the memory read-only and never creates
or repairs it (SPEC §4's readers never write).
"""

from __future__ import annotations

import html
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import (
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandler, ExceptionHandlersMap

from market_assets.memory import MarketMemoryError


class ErrorBody(msgspec.Struct):
    """Litestar's own error shape: the status again and a line saying why."""

    status_code: int
    detail: str


def _status_and_detail(exc: Exception) -> tuple[int, str, dict[str, str]]:
    if isinstance(exc, MarketMemoryError):
        return HTTP_503_SERVICE_UNAVAILABLE, str(exc), {}
    if isinstance(exc, ValidationException):
        return exc.status_code, _invalid_parameters(exc), dict(exc.headers or {})
    if isinstance(exc, HTTPException) and exc.status_code != HTTP_500_INTERNAL_SERVER_ERROR:
        return exc.status_code, exc.detail, dict(exc.headers or {})
    return HTTP_500_INTERNAL_SERVER_ERROR, "Internal Server Error", {}


def _invalid_parameters(exc: ValidationException) -> str:
    """``limit: Expected `int` <= 100000``: each parameter Litestar refused, named as the read API's
    own refusals name theirs, instead of its generic "Validation failed for GET <url>"."""
    refused = [f"{m['key']}: {m['message']}" for m in exc.extra or [] if isinstance(m, dict) and "key" in m]
    return "; ".join(refused) or exc.detail


def json_error(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    status, detail, headers = _status_and_detail(exc)
    return Response(ErrorBody(status, detail), status_code=status, headers=headers, media_type=MediaType.JSON)


def html_error(_: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    status, detail, headers = _status_and_detail(exc)
    page = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
        f"{status} · market memory</title></head><body><h1>{status}</h1><p>{html.escape(detail)}</p></body></html>\n"
    )
    return Response(page, status_code=status, headers=headers, media_type=MediaType.HTML)


def handlers(render: ExceptionHandler[Any]) -> ExceptionHandlersMap:
    """Every error (HTTP errors, an unreadable memory, any other exception) through ``render``."""
    return {HTTPException: render, MarketMemoryError: render, HTTP_500_INTERNAL_SERVER_ERROR: render}


JSON_ERRORS = handlers(json_error)
HTML_ERRORS = handlers(html_error)


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI entries of the errors a guarded route answers."""
    described = {
        HTTP_401_UNAUTHORIZED: "No x-user-id header (where one is required) and no bearer token, or a bearer "
        "token that is not one of MARKET_API_TOKENS.",
        HTTP_403_FORBIDDEN: "MARKET_DASHBOARD_REQUIRES_ADMIN is set and the x-user-id is not in MARKET_ADMIN_USER_IDS.",
        HTTP_503_SERVICE_UNAVAILABLE: "The memory cannot be read (none at the path yet, not SQLite, not migrated).",
    }
    return {
        status: ResponseSpec(data_container=ErrorBody, description=described[status], generate_examples=False)
        for status in statuses
    }
