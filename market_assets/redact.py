"""Secrets out of text: a URL that carries credentials or a token is shown with them masked.

Everything that turns a URL into text a person or a file will keep (log lines, errors, monitor
ticks, the ledger's error column) passes it through :func:`redact` first, so an alert webhook
whose token sits in its path (Slack, Discord) or a source key in a query string never lands in a
terminal, a Dagster event or the market memory. The request itself still goes to the full URL.

What counts as a secret, from the URL's shape alone:

* userinfo (``https://user:pass@host``, ``https://TOKEN@host``): all of it;
* query or fragment parameters whose name is or ends in a secret word (``token``, ``key``,
  ``secret``, ``signature``, ``password``, ``auth``, ``sig``, ...: ``api_key``, ``apiKey``,
  ``access_token``, ``X-Amz-Signature``);
* the path segments that are the credential of a known webhook shape: Slack
  ``/services/T../B../<secret>``, Discord ``/api/webhooks/<id>/<token>``, Mattermost/Rocket.Chat
  ``/hooks/<key>``, Telegram ``/bot<token>/``.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>`]+""")
"""A URL as it appears inside text: up to whitespace or a quote (httpx quotes the URL it names)."""

_SECRET_WORDS = ("token", "key", "secret", "signature", "sig", "password", "passwd", "pwd", "auth", "credential", "credentials")

_SECRET_PATHS = (
    re.compile(r"(/services/)[^?#]+"),  # Slack: /services/T000/B000/XXXX (the whole triple is the secret)
    re.compile(r"(/api/webhooks/[^/?#]+/)[^/?#]+"),  # Discord: /api/webhooks/<id>/<token>
    re.compile(r"(/hooks/)[^?#]+"),  # Mattermost /hooks/<key>, Rocket.Chat /hooks/<id>/<token>
    re.compile(r"(/bot)[0-9]+:[^/?#]+"),  # Telegram: /bot<id>:<token>/sendMessage
)


def redact(text: str) -> str:
    """``text`` with the credentials and tokens of every URL in it masked; the rest unchanged."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def redact_url(url: str) -> str:
    """One URL with its userinfo, secret parameters and webhook credentials masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url if "@" not in url else MASK  # not parseable: keep nothing that could be userinfo
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    path = parts.path
    for pattern in _SECRET_PATHS:
        path = pattern.sub(lambda m: m.group(1) + MASK, path)
    return urlunsplit((parts.scheme, netloc, path, _mask_params(parts.query), _mask_params(parts.fragment)))


def _mask_params(query: str) -> str:
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        pairs.append(f"{name}{sep}{MASK}" if sep and value and _is_secret_name(name) else pair)
    return "&".join(pairs)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(lowered == word or lowered.endswith(word) for word in _SECRET_WORDS)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (message, arguments and traceback alike) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
