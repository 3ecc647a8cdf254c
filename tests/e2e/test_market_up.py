"""End to end: ``market up --offline --profile local`` into an empty DAGSTER_HOME installs the
project's instance settings, brings every channel to ok, keeps each process's output in its log
file, and Ctrl-C stops every process it started with no run left FAILURE."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from market_assets.instance_settings import PROJECT_DAGSTER_YAML
from market_assets.registry import REGISTRY

from ..conftest import MARKET
from .test_dagster_dev import free_port, live_processes, wait_for

DEADLINE_SEC = 300
"""Dagster's daemon, the catch-up sensor's first tick, six runs and the first closed streamer
window: about two minutes on this 2-core machine, with room for a loaded CI box."""


def test_market_up_offline_brings_every_channel_to_ok_and_stops_clean(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"  # empty: market up installs the project's dagster.yaml
    api_port, dagster_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
    }
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen(
        [str(MARKET), "--db", str(tmp_path / "market.db"), "up", "--offline", "--profile", "local",
         "--api-port", str(api_port), "--dagster-port", str(dagster_port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        def all_ok() -> dict | None:
            try:
                document = httpx.get(f"{base}/api/v1/ingestion/health", headers={"x-user-id": "e2e"}, timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return None
            statuses = {row["channel"]: row["status"] for row in document["rows"]}
            # The first window can end moments after the streamer starts, with nothing in it yet.
            streamed = next(row["rowsWritten"] or 0 for row in document["rows"] if row["channel"] == "candles")
            return document if all(s == "ok" for s in statuses.values()) and streamed > 0 else None

        document = wait_for(DEADLINE_SEC, "every channel to be ok", all_ok)
        assert document["ok"] is True
        assert [(r["source"], r["channel"]) for r in document["rows"]] == [(c.source, c.name) for c in REGISTRY]
        assert all(r["rowsWritten"] is not None for r in document["rows"])
        dashboard = httpx.get(f"{base}/api/v1/ingestion/dashboard", timeout=30).json()
        rows_by_source: dict[str, int] = {}
        for row in dashboard["rows"]:
            rows_by_source[row["source"]] = rows_by_source.get(row["source"], 0) + row["totalRows"]
        assert set(rows_by_source) == {"hyperliquid", "polymarket", "defillama"}
        assert all(total > 0 for total in rows_by_source.values()), rows_by_source
        page = httpx.get(f"{base}/admin/ingestion", timeout=30)
        assert page.status_code == 200 and "defillama" in page.text
    finally:
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground group
        try:
            exit_code = up.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
    assert exit_code == 0, (tmp_path / "up.log").read_text()[-3000:]
    wait_for(30, "every process of market up to exit", lambda: not live_processes(up.pid))
    text = (tmp_path / "up.log").read_text()
    assert (home / "dagster.yaml").read_bytes() == PROJECT_DAGSTER_YAML.read_bytes()
    assert f"installed the project's dagster.yaml into {home}" in text
    for child in ("replay", "streamer", "dagster-web", "dagster-daemon", "api"):
        assert f"stopped {child}" in text
        assert (tmp_path / "logs" / f"{child}.log").stat().st_size > 0
    assert "Uvicorn running" not in text  # the processes' own output is in their logs only
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert runs and not instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
        assert all(run.is_finished or run.status == DagsterRunStatus.QUEUED for run in runs)
