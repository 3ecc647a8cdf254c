"""``market up`` creates Dagster's storage once before the webserver and the daemon open it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from market_assets.stack import PROJECT, prepare_dagster_home

from ..conftest import MARKET

WORKER = Path(__file__).with_name("dagster_home_worker.py")
OPENERS = 4
"""Processes opening one home together: the webserver and the daemon, and each one's code server."""


def fresh_home(path: Path) -> Path:
    path.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", path / "dagster.yaml")
    return path


def test_a_prepared_home_opens_from_four_processes_at_once(tmp_path: Path) -> None:
    # Unprepared, four openers broke 18 fresh homes in 20 ("alembic_version has more than one head").
    homes = [fresh_home(tmp_path / f"home{i}") for i in range(2)]
    for home in homes:
        prepare_dagster_home(home)
    start_at = time.time() + 12  # after every worker has imported Dagster, even on a loaded machine
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), str(start_at), *map(str, homes)],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(OPENERS)
    ]
    outcomes = [worker.communicate(timeout=120)[0].split("\n")[:-1] for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    assert outcomes == [["ok"] * len(homes)] * OPENERS
    for home in homes:
        assert {p.name for p in home.rglob("*.db")} == {"runs.db", "index.db", "schedules.db"}


def test_preparing_a_home_twice_changes_nothing(tmp_path: Path) -> None:
    home = fresh_home(tmp_path / "home")
    prepare_dagster_home(home)
    before = {p: p.read_bytes() for p in home.rglob("*.db")}
    prepare_dagster_home(home)
    assert {p: p.read_bytes() for p in home.rglob("*.db")} == before


def test_market_up_stops_before_starting_anything_when_dagster_home_is_broken(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    broken = (PROJECT / "dagster_home" / "dagster.yaml").read_text() + "run_storage:\n  module: no_such_module\n  class: Nope\n"
    (home / "dagster.yaml").write_text(broken)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
           "DAGSTER_HOME": str(home)}
    result = subprocess.run([str(MARKET), "--db", str(tmp_path / "m.db"), "up", "--offline"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert f"dagster instance migrate failed for DAGSTER_HOME={home}" in result.stderr
    assert "no_such_module" in result.stderr
    assert "started" not in result.stdout
    assert (tmp_path / "m.db").exists()  # the memory was created and is kept
