"""Alerts in Dagster OSS: run failures and freshness state changes, posted to a webhook.

Freshness alerts are a Dagster+ feature (research/peers.md §4), so a sensor watches the state the
freshness daemon records and posts once per change into WARN or FAIL. The message is
Slack-compatible (``{"text": ...}``), which Mattermost, Discord's /slack endpoint and most chat
bridges accept. Without ``MARKET_ALERT_WEBHOOK_URL`` both sensors stay quiet.

Neither sensor opens the market memory. The webhook URL is a credential: a refused post raises
:class:`~market_assets.notify.AlertDeliveryError`, whose text (what Dagster records for the tick)
names the URL redacted, and the run's error is redacted before it is posted.
"""

from __future__ import annotations

import json

import dagster as dg

from market_assets.defs.automation import channel_of
from market_assets.notify import post_alert
from market_assets.redact import redact
from market_assets.settings import Settings

ALERT_STATES = frozenset({"WARN", "FAIL"})


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description="Posts every failed run (job, run id, error) to MARKET_ALERT_WEBHOOK_URL.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
    url = Settings.from_env().alert_webhook_url
    if url is None:
        return dg.SkipReason("MARKET_ALERT_WEBHOOK_URL is not set; alerts are off")
    run = context.dagster_run
    error = context.failure_event.message or "no error message"
    lines = [f":red_circle: market: run {run.run_id} of {run.job_name} failed: {error}", *step_causes(context)]
    post_alert(url, redact("\n".join(lines)))
    return None


def step_causes(context: dg.RunFailureSensorContext) -> list[str]:
    """One line per failed step: its root cause's first line (the run's own message only says
    which steps failed)."""
    causes = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None and error.message.strip():
            causes.append(f"• {event.step_key}: {error.message.strip().splitlines()[0]}")
    return causes


def freshness_changes(
    previous: dict[str, str], current: dict[str, str]
) -> list[tuple[str, str]]:
    """(asset, state) for every asset whose state changed into WARN or FAIL since ``previous``."""
    return [
        (key, state)
        for key, state in sorted(current.items())
        if state in ALERT_STATES and previous.get(key) != state
    ]


@dg.sensor(
    name="alert_on_freshness",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts once per freshness state change into WARN or FAIL to MARKET_ALERT_WEBHOOK_URL.",
)
def alert_on_freshness(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    url = Settings.from_env().alert_webhook_url
    if url is None:
        return dg.SkipReason("MARKET_ALERT_WEBHOOK_URL is not set; alerts are off")
    keys = [key for key in context.repository_def.asset_graph.get_all_asset_keys() if channel_of(key)]
    records = context.instance.get_freshness_state_records(keys)
    current = {key.to_user_string(): record.freshness_state.value for key, record in records.items()}
    previous: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    changes = freshness_changes(previous, current)
    for key, state in changes:
        icon = ":red_circle:" if state == "FAIL" else ":warning:"
        post_alert(url, f"{icon} market: {key} freshness is {state}")
    if not changes and current == previous:
        return dg.SkipReason("no freshness state change")
    return dg.SensorResult(cursor=json.dumps(current, sort_keys=True))
