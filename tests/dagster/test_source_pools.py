"""One run per source at a time, however it is launched: every asset Dagster runs is in its
source's pool, and the project's dagster.yaml gives each pool one slot.

Real processes share one ``DAGSTER_HOME`` holding the project's dagster.yaml: one holds the
``hyperliquid`` slot; the other is ``dagster asset materialize``, which runs in its own process
without the run queue (a run tag would not hold it back at all).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.op_concurrency_limits_counter import GlobalOpConcurrencyLimitsCounter

from market_assets.clock import wall_clock_ms
from market_assets.definitions import defs
from market_assets.defs.resources import MarketMemory
from market_assets.memory import open_memory
from market_assets.memory.runs import RunStatus, runs_of
from market_assets.registry import FUNDING

PROJECT_YAML = Path(__file__).resolve().parents[2] / "dagster_home" / "dagster.yaml"
HOLDER = Path(__file__).with_name("pool_holder.py")
DAGSTER_CLI = Path(sys.executable).with_name("dagster")
BLOCKED = "blocked by limit for pool hyperliquid"
"""What Dagster logs for a step waiting on the pool's slot."""


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM its process group, then SIGKILL after a deadline: nothing outlives the test."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            stop(process)


def wait_for(condition: Callable[[], bool], seconds: float, *watched: subprocess.Popen[bytes]) -> None:
    """Poll ``condition`` until it holds; fail at the deadline or when a watched process ends."""
    deadline = time.monotonic() + seconds
    while not condition():
        ended = [p.args for p in watched if p.poll() is not None]
        assert not ended, f"ended before the condition held: {ended}"
        assert time.monotonic() < deadline, f"not within {seconds}s"
        time.sleep(0.1)


def test_dagster_asset_materialize_waits_while_another_run_holds_its_source(
    offline: MarketMemory, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_YAML, home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MARKET_DB": offline.db_path}
    holding, release = tmp_path / "holding", tmp_path / "release"
    cli_log = tmp_path / "cli.log"
    with started([sys.executable, str(HOLDER), str(holding), str(release)], env, tmp_path / "holder.log") as holder:
        wait_for(holding.exists, 90, holder)
        materialize = [str(DAGSTER_CLI), "asset", "materialize", "-m", "market_assets.definitions", "--select", "hyperliquid/funding"]
        with started(materialize, env, cli_log) as cli:
            wait_for(lambda: BLOCKED in cli_log.read_text(errors="replace"), 90, cli)
            assert not Path(offline.db_path).exists()  # its step has not begun
            released_at = wall_clock_ms()
            release.write_text("go")
            assert holder.wait(timeout=60) == 0
            assert cli.wait(timeout=120) == 0, cli_log.read_text(errors="replace")[-2000:]
    with open_memory(Path(offline.db_path), readonly=True) as conn:
        [run] = runs_of(conn, FUNDING.source, FUNDING.name)
    assert run.status is RunStatus.SUCCEEDED
    assert run.started_at_ms >= released_at


def test_the_run_queue_holds_a_ui_run_while_its_source_slot_is_taken() -> None:
    """The queue daemon's own pool check, with the project's settings: a run launched as the UI
    launches it waits while a step of another run holds its source's slot; another source's goes."""
    concurrency = yaml.safe_load(PROJECT_YAML.read_text())["concurrency"]
    repository = defs.get_repository_def()
    job = repository.get_implicit_global_asset_job_def()
    with dg.instance_for_test(overrides={"concurrency": concurrency}) as instance:

        def ui_run(path: list[str], status: dg.DagsterRunStatus) -> dg.DagsterRun:
            return instance.create_run_for_job(job_def=job, asset_selection=frozenset({dg.AssetKey(path)}), status=status)

        busy = ui_run(["hyperliquid", "funding"], dg.DagsterRunStatus.STARTED)
        instance.event_log_storage.initialize_concurrency_limit_to_default("hyperliquid")
        assert instance.event_log_storage.claim_concurrency_slot("hyperliquid", busy.run_id, "hyperliquid__funding").is_claimed
        # Waiting to be dequeued (a QUEUED run needs a code location's origin; the check reads
        # only the run's pools).
        history = ui_run(["hyperliquid", "candles_history"], dg.DagsterRunStatus.NOT_STARTED)
        summary = ui_run(["polymarket", "summary"], dg.DagsterRunStatus.NOT_STARTED)
        counter = GlobalOpConcurrencyLimitsCounter(
            instance,
            [history, summary],
            instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])),
            concurrency_keys=instance.event_log_storage.get_concurrency_keys(),
            pool_limits=instance.event_log_storage.get_pool_limits(),
            pool_granularity=instance.get_concurrency_config().pool_config.pool_granularity,
        )
        assert counter.is_blocked(history)
        assert not counter.is_blocked(summary)
