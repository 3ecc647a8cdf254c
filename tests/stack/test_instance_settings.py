"""``market up`` installs the project's Dagster instance settings into any DAGSTER_HOME, or refuses
a dagster.yaml that differs in a setting the project relies on, naming the difference."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from market_assets.instance_settings import (
    PROJECT_DAGSTER_YAML,
    InstanceSettingsError,
    differences,
    install_instance_settings,
)
from market_assets.stack import free_port

from ..conftest import MARKET

PROJECT = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())


def test_an_empty_home_gets_the_projects_dagster_yaml(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    assert install_instance_settings(home) is True
    assert (home / "dagster.yaml").read_bytes() == PROJECT_DAGSTER_YAML.read_bytes()
    assert install_instance_settings(home) is False  # the second time it is checked, and kept


def test_a_home_keeping_every_relied_on_setting_is_accepted_with_its_own_choices(tmp_path: Path) -> None:
    theirs = {**PROJECT, "telemetry": {"enabled": True}, "retention": {"schedule": {"purge_after_days": 30}},
              "local_artifact_storage": {"module": "dagster.core.storage.root", "class": "LocalArtifactStorage",
                                         "config": {"base_dir": str(tmp_path)}}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(theirs))
    assert install_instance_settings(tmp_path) is False


def test_differences_name_each_setting_that_is_missing_or_changed() -> None:
    theirs = {"concurrency": {"runs": {"max_concurrent_runs": 10}}, "run_retries": PROJECT["run_retries"],
              "run_monitoring": PROJECT["run_monitoring"], "freshness": PROJECT["freshness"],
              "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}}
    limits = PROJECT["concurrency"]["runs"]["tag_concurrency_limits"]
    assert differences(PROJECT, theirs) == [
        "concurrency.runs.max_concurrent_runs: project 4, here 10",
        f"concurrency.runs.tag_concurrency_limits: project {limits!r}, here missing",
        "concurrency.pools: project {'granularity': 'op', 'default_limit': 1}, here missing",
        "run_coordinator: set here; it replaces the run queue that concurrency.runs configures",
    ]


def test_a_differing_home_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    text = "# mine\ntelemetry:\n  enabled: false\n"
    (tmp_path / "dagster.yaml").write_text(text)
    with pytest.raises(InstanceSettingsError) as refused:
        install_instance_settings(tmp_path)
    message = str(refused.value)
    assert "\n  concurrency: project {'runs': {'max_concurrent_runs': 4, 'tag_concurrency_limits'" in message
    assert "\n  freshness: project {'enabled': True}, here missing" in message
    assert (tmp_path / "dagster.yaml").read_text() == text


def test_market_up_refuses_a_foreign_home_before_starting_anything(tmp_path: Path) -> None:
    """Before: any DAGSTER_HOME without the project's file ran with no per-source run limit."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("concurrency:\n  runs:\n    max_concurrent_runs: 4\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MARKET_", "DAGSTER_"))},
           "DAGSTER_HOME": str(home)}
    result = subprocess.run([str(MARKET), "--db", str(tmp_path / "m.db"), "up", "--offline",
                             "--api-port", str(free_port()), "--dagster-port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"market up: {home / 'dagster.yaml'} differs from the project's settings" in result.stderr
    assert "concurrency.runs.tag_concurrency_limits" in result.stderr
    assert "started" not in result.stdout
    assert not list(home.rglob("*.db"))  # no Dagster storage was created in the refused home
