"""Notifications to the operators' chat: one Slack-compatible webhook for every alert.

The message is ``{"text": ...}``, which Slack, Mattermost, Discord's /slack endpoint and most
chat bridges accept. Dagster's sensors (``defs/alerts.py``) and ``market monitor`` post through
here, so both land in the same channel (``MARKET_ALERT_WEBHOOK_URL``).

A webhook URL is a credential (Slack's and Discord's carry their token in the path), and httpx
names the URL in its errors; so a refused delivery is re-raised as :class:`AlertDeliveryError`
with the URL redacted and without the original exception attached, whose text and traceback
would show it to every log and Dagster event that records the error.
"""

from __future__ import annotations

import httpx

from market_assets.redact import redact

WEBHOOK_TIMEOUT_SEC = 10.0


class AlertDeliveryError(Exception):
    """The webhook did not take the notification; the message names the URL redacted."""


def post_alert(url: str, text: str) -> None:
    """POST one message to the full ``url``; a webhook that refuses it raises
    :class:`AlertDeliveryError`, loudly but without the secret."""
    try:
        response = httpx.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT_SEC)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        message = redact(f"{type(exc).__name__}: {first_line}".rstrip(": "))
    else:
        return
    raise AlertDeliveryError(message)
