"""The processes of the local stack (SPEC §1) that ``market up`` supervises.

Every child gets the same absolute ``MARKET_DB`` and ``DAGSTER_HOME``, the profile, and in
offline mode the replay's addresses, so the streamer, Dagster and the API share one memory and
one idea of where the sources are.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from market_assets.settings import Profile, Settings
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


def stack_children(settings: Settings, *, profile: Profile, offline: bool, ports: StackPorts) -> list[Child]:
    env = {
        "MARKET_DB": str(settings.db_path),
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
        Child("streamer", [sys.executable, "-m", "streamer"], env),
        Child(
            "dagster-web",
            [str(BIN / "dagster-webserver"), "-w", workspace, "-h", LOOPBACK, "-p", str(ports.dagster)],
            env,
            cwd=str(PROJECT),
        ),
        Child("dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", workspace], env, cwd=str(PROJECT)),
        Child("api", [str(BIN / "market"), "api", "--host", LOOPBACK, "--port", str(ports.api)], env),
    ]
    return children
