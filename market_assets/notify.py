"""Notifications to the operators' chat: one Slack-compatible webhook for every alert.

The message is ``{"text": ...}``, which Slack, Mattermost, Discord's /slack endpoint and most
chat bridges accept. Dagster's sensors (``defs/alerts.py``) and ``market monitor`` post through
here, so both land in the same channel (``MARKET_ALERT_WEBHOOK_URL``).
"""

from __future__ import annotations

import httpx

WEBHOOK_TIMEOUT_SEC = 10.0


def post_alert(url: str, text: str) -> None:
    """POST one message; a webhook that refuses it raises ``httpx.HTTPError``, loudly."""
    response = httpx.post(url, json={"text": text}, timeout=WEBHOOK_TIMEOUT_SEC)
    response.raise_for_status()
