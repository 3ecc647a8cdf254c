"""A code location for the clean-stop test: a sensor asks at once for one slow run and one
failing run. Loaded by file path from a test workspace, never by the project.

``SLOW_RUN_SEC`` is how long the slow op sleeps; it writes ``$DAGSTER_HOME/slow-started`` first
so the test knows the run is in flight.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg


@dg.op
def slow() -> None:
    (Path(os.environ["DAGSTER_HOME"]) / "slow-started").write_text(str(os.getpid()))
    time.sleep(float(os.environ["SLOW_RUN_SEC"]))


@dg.op
def fails() -> None:
    raise ValueError("the source said no")


@dg.job
def slow_job() -> None:
    slow()


@dg.job
def failing_job() -> None:
    fails()


@dg.sensor(jobs=[slow_job, failing_job], minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def kick(context: dg.SensorEvaluationContext):
    yield dg.RunRequest(run_key="slow", job_name="slow_job")
    yield dg.RunRequest(run_key="fails", job_name="failing_job")


defs = dg.Definitions(jobs=[slow_job, failing_job], sensors=[kick])
