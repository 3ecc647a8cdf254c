"""OSS alerts: a failed run and each freshness change into WARN/FAIL are posted once to the webhook."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from market_assets.defs.alerts import alert_on_freshness, alert_on_run_failure
from market_assets.definitions import defs

from ..webhook import Receiver, webhook_receiver

CANDLES_KEY = dg.AssetKey(["hyperliquid", "candles"])


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with webhook_receiver() as hook:
        monkeypatch.setenv("MARKET_ALERT_WEBHOOK_URL", hook.url)
        yield hook


@dg.op
def refuses() -> None:
    raise ConnectionError("api.llama.fi answered 503")


@dg.job
def doomed_job() -> None:
    refuses()


def failure_context(instance: dg.DagsterInstance) -> dg.RunFailureSensorContext:
    result = doomed_job.execute_in_process(instance=instance, raise_on_error=False)
    event = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    return dg.build_run_status_sensor_context(
        sensor_name=alert_on_run_failure.name,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=event,
    ).for_run_failure()


def test_a_failed_run_is_posted_with_its_job_and_run_id(receiver: Receiver, instance: dg.DagsterInstance) -> None:
    context = failure_context(instance)
    alert_on_run_failure(context)
    [message] = receiver.messages
    assert message["text"].startswith(f":red_circle: market: run {context.dagster_run.run_id} of doomed_job failed")


def test_without_a_webhook_nothing_is_posted(monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance) -> None:
    with webhook_receiver() as hook:
        monkeypatch.delenv("MARKET_ALERT_WEBHOOK_URL", raising=False)
        skipped = alert_on_run_failure(failure_context(instance))
        tick = alert_on_freshness.evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        )
        assert hook.messages == []
    assert isinstance(skipped, dg.SkipReason)
    assert "alerts are off" in tick.skip_message


def change_state(instance: dg.DagsterInstance, key: dg.AssetKey, old: str, new: str) -> None:
    """What Dagster's freshness daemon records when it re-evaluates an asset."""
    instance._report_runless_asset_event(  # noqa: SLF001 (the daemon's own call)
        asset_event=FreshnessStateChange(
            key=key, previous_state=FreshnessState(old), new_state=FreshnessState(new), state_change_timestamp=0.0
        )
    )


def test_each_freshness_change_into_warn_or_fail_is_posted_once(
    receiver: Receiver, instance: dg.DagsterInstance
) -> None:
    repository = defs.get_repository_def()
    cursor = None

    def tick() -> list[str]:
        nonlocal cursor
        before = len(receiver.messages)
        result = alert_on_freshness.evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=repository, cursor=cursor)
        )
        cursor = result.cursor or cursor
        return [m["text"] for m in receiver.messages[before:]]

    change_state(instance, CANDLES_KEY, "UNKNOWN", "PASS")
    assert tick() == []
    change_state(instance, CANDLES_KEY, "PASS", "WARN")
    assert tick() == [":warning: market: hyperliquid/candles freshness is WARN"]
    assert tick() == []  # still WARN: no second message
    change_state(instance, CANDLES_KEY, "WARN", "FAIL")
    assert tick() == [":red_circle: market: hyperliquid/candles freshness is FAIL"]
    change_state(instance, CANDLES_KEY, "FAIL", "PASS")
    assert tick() == []
    change_state(instance, CANDLES_KEY, "PASS", "FAIL")
    assert tick() == [":red_circle: market: hyperliquid/candles freshness is FAIL"]
    assert len(receiver.messages) == 3


WEBHOOK_SECRET = "T0/B0/xoxbHookSecret"
SOURCE_SECRET = "llama-k3y-s3cret"


@dg.op
def refuses_with_a_secret_url() -> None:
    raise ConnectionError(f"https://pro-api.llama.fi/tvl?api_key={SOURCE_SECRET} answered 503")


@dg.job
def doomed_job_with_a_key() -> None:
    refuses_with_a_secret_url()


def test_a_refused_alert_and_the_run_s_error_never_show_a_token(
    monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    import traceback

    from market_assets.notify import AlertDeliveryError

    result = doomed_job_with_a_key.execute_in_process(instance=instance, raise_on_error=False)
    event = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name=alert_on_run_failure.name, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), dagster_event=event,
    ).for_run_failure()
    with webhook_receiver(status=404, path=f"/services/{WEBHOOK_SECRET}") as hook:
        monkeypatch.setenv("MARKET_ALERT_WEBHOOK_URL", hook.url)
        with pytest.raises(AlertDeliveryError) as refused:
            alert_on_run_failure(context)
        tick_error = None
        change_state(instance, CANDLES_KEY, "PASS", "FAIL")
        try:
            alert_on_freshness.evaluate_tick(
                dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
            )
        except Exception as exc:  # what Dagster records for the tick
            tick_error = "".join(traceback.format_exception(exc))
    assert hook.paths == [f"/services/{WEBHOOK_SECRET}"] * 2  # both posts went to the full URL
    recorded = "".join(traceback.format_exception(refused.value))
    assert "404 Not Found" in str(refused.value) and "/services/***" in str(refused.value)
    assert tick_error is not None and "/services/***" in tick_error
    for text in (recorded, tick_error, *(m["text"] for m in hook.messages)):
        assert "HookSecret" not in text and SOURCE_SECRET not in text
    assert "api_key=***" in hook.messages[0]["text"]
