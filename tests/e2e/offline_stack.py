"""``market up --offline`` in a test: started in its own session, its console in a file, stopped
with Ctrl-C (SIGINT to its process group) at the end of the block, SIGKILL if it does not exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..conftest import MARKET
from .test_dagster_dev import free_port, wait_for


@dataclass
class OfflineStack:
    process: subprocess.Popen[bytes]
    home: Path
    logs: Path
    console_file: Path
    control: str
    """The replay's control URL (faults)."""
    exit_code: int | None = field(default=None)

    def fault(self, hosts: tuple[str, ...], **fault: object) -> None:
        """Inject ``fault`` on each of the replay's ``hosts`` (path prefixes), until the stack stops."""
        for host in hosts:
            httpx.post(f"{self.control}/faults", json={**fault, "path": host}, timeout=10).raise_for_status()

    @property
    def console(self) -> str:
        return self.console_file.read_text()


@contextmanager
def offline_stack(tmp_path: Path, *options: str, stop_timeout_s: float = 180) -> Iterator[OfflineStack]:
    """``market up --offline --profile local`` on free ports with ``options``, until the block ends;
    then Ctrl-C and its exit code in ``exit_code``."""
    home, logs, console_file = tmp_path / "dagster_home", tmp_path / "logs", tmp_path / "console.txt"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
    }
    with console_file.open("w") as console_out:
        up = subprocess.Popen(
            [str(MARKET), "--db", str(tmp_path / "market.db"), "up", "--offline", "--profile", "local",
             "--api-port", str(free_port()), "--dagster-port", str(free_port()), "--log-dir", str(logs), *options],
            env=env, stdout=console_out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            def replay_control() -> str | None:
                lines = (logs / "replay.log").read_text().splitlines() if (logs / "replay.log").exists() else []
                urls = [json.loads(line) for line in lines if line.startswith("{")]
                return urls[0]["control"] if urls else None

            stack = OfflineStack(up, home, logs, console_file, "")
            stack.control = wait_for(60, "the replay to print its URLs", replay_control)
            yield stack
        finally:
            os.killpg(up.pid, signal.SIGINT)  # Ctrl-C
            try:
                stack_exit = up.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                raise
    stack.exit_code = stack_exit
