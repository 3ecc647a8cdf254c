"""Decoding at the boundary: bytes in, typed records out, and exactly one error type on failure."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from market_assets.sources.errors import PayloadError

_AT_PATH = re.compile(r" - at `(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<field>[^`]*)`")


def decode(data: bytes | str, type_: Any, source: str, endpoint: str) -> Any:
    """``msgspec`` decode whose every failure is a :class:`PayloadError` naming the JSON path.

    Returns ``Any`` because ``type_`` is often a generic alias (``list[Candle]``) that a type
    checker cannot bind to a ``type[T]``; call sites annotate the result."""
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.ValidationError as exc:
        raise payload_error_from(exc, source, endpoint) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError, not DecodeError, for invalid UTF-8 inside a string.
        raise PayloadError(source, endpoint, "$", f"not valid JSON ({exc})") from exc


def payload_error_from(exc: msgspec.ValidationError, source: str, endpoint: str, prefix: str = "$") -> PayloadError:
    """Turn msgspec's ``Object missing required field `x` - at `$[0]``` into field ``$[0].x``."""
    message = str(exc)
    at = _AT_PATH.search(message)
    path = at.group("path") if at else "$"
    if prefix != "$":
        path = prefix + path[1:]
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group('field')}"
    detail = message[: at.start()] if at else message
    return PayloadError(source, endpoint, path, detail)
