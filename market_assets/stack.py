"""The processes of the local stack (SPEC §1) that ``market up`` supervises.

Every child gets the same absolute ``MARKET_DB`` and ``DAGSTER_HOME``, the profile, and in
offline mode the replay's addresses, so the streamer, Dagster and the API share one memory and
one idea of where the sources are.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from market_assets.instance_settings import (
    DagsterStorage,
    InstanceSettingsError,
    install_instance_settings,
)
from market_assets.settings import Profile, Settings
from market_assets.stack_runs import run_drain
from market_assets.supervisor import Child

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class StackPorts:
    api: int
    dagster: int
    replay_http: int
    replay_ws: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could not listen on ``host:port``. ``SO_REUSEADDR`` as uvicorn sets it,
    so a port left in TIME_WAIT by the last run does not count as taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class DagsterHomeError(RuntimeError):
    """The Dagster instance could not be created or migrated, or its settings differ from the
    project's; the message says why."""


def prepare_dagster_home(dagster_home: Path, *, storage: DagsterStorage | None = None) -> bool:
    """Install or check the project's instance settings (:mod:`market_assets.instance_settings`),
    then create, or bring up to date, the Dagster instance's storage, in one process, before the
    webserver and the daemon start; True when the settings were installed.

    Both open the instance as they start. On a fresh ``DAGSTER_HOME`` each would create the
    SQLite storage and stamp its alembic revision at the same moment, and the loser fails to load
    the code location ("alembic_version has more than one head", dagster-io/dagster#27390): four
    processes opening a fresh home together failed on 18 homes in 20. ``dagster instance migrate``
    creates it once, and after a Dagster upgrade migrates it as Dagster asks operators to.
    """
    try:
        installed = install_instance_settings(dagster_home, storage=storage)
    except InstanceSettingsError as error:
        raise DagsterHomeError(str(error)) from None
    result = subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise DagsterHomeError(
            f"dagster instance migrate failed for DAGSTER_HOME={dagster_home} (exit {result.returncode}):\n"
            + (result.stderr.strip() or result.stdout.strip())
        )
    return installed


def streamer_warning(line: str) -> bool:
    """A line the streamer logs at WARNING or above (its format is ``time LEVEL logger: message``,
    streamer/cli.py): one line per failed connection, read or write attempt, shown on the console."""
    return any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL"))


def stack_children(
    settings: Settings, *, profile: Profile, offline: bool, ports: StackPorts, stop_grace_sec: float, started_at: datetime
) -> list[Child]:
    """The replay (offline), the streamer, Dagster's webserver and daemon, the API. The daemon
    drains on stop: the runs it launched after ``started_at`` get ``stop_grace_sec`` to finish,
    then are canceled."""
    env = {
        "MARKET_DB": str(settings.db_path),
        "MARKET_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "MARKET_PROFILE": profile.value,
        "PYTHONUNBUFFERED": "1",
    }
    children = []
    if offline:
        children.append(
            Child(
                "replay",
                [sys.executable, "-m", "market_assets.replay", "--host", LOOPBACK,
                 "--http-port", str(ports.replay_http), "--ws-port", str(ports.replay_ws)],
                env,
            )
        )
        env |= {
            "MARKET_REPLAY_HTTP": f"http://{LOOPBACK}:{ports.replay_http}",
            "MARKET_REPLAY_WS": f"ws://{LOOPBACK}:{ports.replay_ws}/ws",
        }
    workspace = str(PROJECT / "workspace.yaml")
    children += [
        Child("streamer", [sys.executable, "-m", "streamer"], env, echo=streamer_warning),
        Child(
            "dagster-web",
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", LOOPBACK, "-p", str(ports.dagster)],
            env,
            cwd=str(PROJECT),
        ),
        Child(
            "dagster-daemon",
            [str(BIN / "dagster-daemon"), "run", "-w", workspace],
            env,
            cwd=str(PROJECT),
            drain=run_drain(settings.dagster_home, since=started_at, grace_sec=stop_grace_sec),
        ),
        Child("api", [str(BIN / "market"), "api", "--host", LOOPBACK, "--port", str(ports.api)], env),
    ]
    return children
