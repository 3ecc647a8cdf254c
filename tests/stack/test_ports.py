"""A port already in use, or a log folder that cannot be made, stops ``market up`` at once, naming
the port or folder and the option that changes it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from market_assets.stack import free_port

from ..conftest import MARKET


def market_up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
           "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    return subprocess.run([str(MARKET), "--db", str(tmp_path / "m.db"), "up", "--offline", *args],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("option", ["--api-port", "--dagster-port"])
def test_a_port_in_use_fails_at_start_naming_it_and_its_option(tmp_path: Path, option: str) -> None:
    with socket.socket() as taken, socket.socket() as other:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        other.bind(("127.0.0.1", 0))
        port, free = taken.getsockname()[1], other.getsockname()[1]
        other.close()
        ports = {"--api-port": free, "--dagster-port": free, option: port}
        started = time.monotonic()
        result = market_up(tmp_path, *(f"{name}={value}" for name, value in ports.items()))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"market up: port {port} on 127.0.0.1 is in use; choose another with {option} PORT"
    ]
    assert "started" not in result.stdout
    assert time.monotonic() - started < 30  # before importing Dagster or starting anything
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "dagster_home").exists()


def test_a_log_folder_that_cannot_be_made_fails_at_start_naming_it_and_its_option(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    logs = tmp_path / "a-file" / "logs"
    result = market_up(tmp_path, f"--api-port={free_port()}", f"--dagster-port={free_port()}", f"--log-dir={logs}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"market up: cannot create the log folder {logs} (Not a directory); choose another with --log-dir"
    ]
    assert "started" not in result.stdout
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "dagster_home").exists()
