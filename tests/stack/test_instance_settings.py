"""``market up`` installs the project's Dagster instance settings into any DAGSTER_HOME, or refuses
a dagster.yaml that differs in a setting the project relies on, naming the difference."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from market_assets.instance_settings import (
    DAGSTER_POSTGRES_SCHEME,
    POSTGRES_URL_ENV,
    PROJECT_DAGSTER_YAML,
    PROJECT_HOMES,
    PROJECT_POSTGRES_YAML,
    DagsterStorage,
    InstanceSettingsError,
    differences,
    install_instance_settings,
    storage_of,
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
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert f"market up: {home / 'dagster.yaml'} differs from the project's settings" in result.stderr
    assert "concurrency.runs.tag_concurrency_limits" in result.stderr
    assert "started" not in result.stdout
    assert not list(home.rglob("*.db"))  # no Dagster storage was created in the refused home


POSTGRES = yaml.safe_load(PROJECT_POSTGRES_YAML.read_text())
GOOD_URL = "postgresql+psycopg2://dagster:s3cret@db.internal:5432/dagster"


def test_the_postgres_settings_are_the_projects_with_storage_in_postgres() -> None:
    assert POSTGRES["storage"] == {"postgres": {"postgres_url": {"env": POSTGRES_URL_ENV}}}
    assert {key: value for key, value in POSTGRES.items() if key != "storage"} == PROJECT
    assert storage_of(POSTGRES) is DagsterStorage.POSTGRES
    assert storage_of(PROJECT) is DagsterStorage.SQLITE


def test_an_empty_home_asked_for_postgres_gets_the_postgres_settings(tmp_path: Path) -> None:
    env = {POSTGRES_URL_ENV: GOOD_URL}
    assert install_instance_settings(tmp_path / "home", storage=DagsterStorage.POSTGRES, env=env) is True
    assert (tmp_path / "home" / "dagster.yaml").read_bytes() == PROJECT_POSTGRES_YAML.read_bytes()
    # then the folder decides: asked for nothing, or for postgres again, it is kept as it is
    assert install_instance_settings(tmp_path / "home", env=env) is False
    assert install_instance_settings(tmp_path / "home", storage=DagsterStorage.POSTGRES, env=env) is False
    assert (tmp_path / "home" / "dagster.yaml").read_bytes() == PROJECT_POSTGRES_YAML.read_bytes()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://dagster:s3cret@db.internal:5432/dagster", "postgresql"),  # SQLAlchemy 2.1: psycopg 3
        ("postgres://dagster:s3cret@db.internal/dagster", "postgres"),
        ("postgresql+psycopg://dagster:s3cret@db.internal/dagster", "postgresql+psycopg"),
        ("db.internal:5432/dagster", "no scheme"),
    ],
)
def test_a_postgres_url_not_selecting_psycopg2_is_refused_before_anything_is_installed(
    tmp_path: Path, url: str, says: str
) -> None:
    """The driver trap: dagster-postgres ships psycopg2, SQLAlchemy 2.1 maps postgresql:// to psycopg 3."""
    with pytest.raises(InstanceSettingsError) as refused:
        install_instance_settings(tmp_path / "home", storage=DagsterStorage.POSTGRES, env={POSTGRES_URL_ENV: url})
    assert str(refused.value) == (
        f"{PROJECT_POSTGRES_YAML} keeps Dagster's storage in PostgreSQL, but:\n"
        f"  {POSTGRES_URL_ENV} says {says}: dagster-postgres drives PostgreSQL through psycopg2, and SQLAlchemy 2.1 "
        "gives a plain postgresql:// to psycopg 3; write postgresql+psycopg2://…"
    )
    assert "s3cret" not in str(refused.value)
    assert not (tmp_path / "home" / "dagster.yaml").exists()


def test_an_unset_postgres_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstanceSettingsError) as refused:
        install_instance_settings(tmp_path, storage=DagsterStorage.POSTGRES, env={})
    assert str(refused.value).endswith(
        f"  {POSTGRES_URL_ENV} is not set: it names Dagster's PostgreSQL database, "
        "as postgresql+psycopg2://user:password@host:5432/dagster"
    )
    assert not (tmp_path / "dagster.yaml").exists()


def per_store(scheme: str | None) -> dict[str, object]:
    """An operator's file: each store configured on its own, from postgres_db parts."""
    db: dict[str, object] = {"username": "dagster", "password": {"env": "PG_PASSWORD"}, "hostname": "db", "db_name": "dagster"}
    if scheme is not None:
        db["scheme"] = scheme
    stores = {
        key: {"module": f"dagster_postgres.{module}", "class": cls, "config": {"postgres_db": db}}
        for key, module, cls in (("run_storage", "run_storage", "PostgresRunStorage"),
                                 ("event_log_storage", "event_log", "PostgresEventLogStorage"),
                                 ("schedule_storage", "schedule_storage", "PostgresScheduleStorage"))
    }
    return {**PROJECT, **stores}


def test_a_home_already_on_postgres_is_used_as_it_is(tmp_path: Path) -> None:
    text = "# theirs\n" + yaml.safe_dump(per_store(DAGSTER_POSTGRES_SCHEME))
    (tmp_path / "dagster.yaml").write_text(text)
    assert install_instance_settings(tmp_path, env={}) is False
    assert install_instance_settings(tmp_path, storage=DagsterStorage.POSTGRES, env={}) is False
    assert (tmp_path / "dagster.yaml").read_text() == text


def test_postgres_db_parts_without_the_psycopg2_scheme_are_refused_store_by_store(tmp_path: Path) -> None:
    text = yaml.safe_dump(per_store(None))
    (tmp_path / "dagster.yaml").write_text(text)
    with pytest.raises(InstanceSettingsError) as refused:
        install_instance_settings(tmp_path, env={})
    lines = str(refused.value).splitlines()[1:]
    assert [line.split(":")[0] for line in lines] == [
        "  run_storage.config.postgres_db.scheme says postgresql",
        "  event_log_storage.config.postgres_db.scheme says postgresql",
        "  schedule_storage.config.postgres_db.scheme says postgresql",
    ]
    assert (tmp_path / "dagster.yaml").read_text() == text


def test_a_home_kept_elsewhere_than_asked_is_refused(tmp_path: Path) -> None:
    sqlite_home, postgres_home = tmp_path / "sqlite", tmp_path / "postgres"
    install_instance_settings(sqlite_home)
    install_instance_settings(postgres_home, storage=DagsterStorage.POSTGRES, env={POSTGRES_URL_ENV: GOOD_URL})
    with pytest.raises(InstanceSettingsError) as refused:
        install_instance_settings(sqlite_home, storage=DagsterStorage.POSTGRES, env={POSTGRES_URL_ENV: GOOD_URL})
    assert str(refused.value) == (
        f"{sqlite_home / 'dagster.yaml'} keeps Dagster's storage in sqlite, not postgres: point DAGSTER_HOME at a "
        f"folder without a dagster.yaml (or at {PROJECT_HOMES[DagsterStorage.POSTGRES]}), or leave out --dagster-storage"
    )
    with pytest.raises(InstanceSettingsError, match="keeps Dagster's storage in postgres, not sqlite"):
        install_instance_settings(postgres_home, storage=DagsterStorage.SQLITE, env={POSTGRES_URL_ENV: GOOD_URL})
    assert (sqlite_home / "dagster.yaml").read_bytes() == PROJECT_DAGSTER_YAML.read_bytes()
    assert (postgres_home / "dagster.yaml").read_bytes() == PROJECT_POSTGRES_YAML.read_bytes()


def test_the_repositorys_postgres_home_is_ready_to_use() -> None:
    home = PROJECT_HOMES[DagsterStorage.POSTGRES]
    assert install_instance_settings(home, env={POSTGRES_URL_ENV: GOOD_URL}) is False
    assert install_instance_settings(home, storage=DagsterStorage.POSTGRES, env={POSTGRES_URL_ENV: GOOD_URL}) is False
