"""The Dagster instance settings the project relies on, installed into or checked against any
``DAGSTER_HOME``, with Dagster's own storage in SQLite (one host) or PostgreSQL (several).

Dagster reads ``$DAGSTER_HOME/dagster.yaml`` and nothing else: pointed at another folder, it used
to run with Dagster's defaults, without the per-source run limit, and three Hyperliquid jobs
overlapped. ``market up`` installs the project's file into a folder that has none, and refuses a
folder whose file differs in a setting listed in :data:`RELIED_ON`, naming each difference. The
file is not merged: rewriting an operator's YAML would drop its comments and could undo a choice
made on purpose (its storage, say), which is theirs to reconcile.

The project ships two files that differ only in ``storage``: ``dagster_home/dagster.yaml``
(SQLite under the folder) and ``dagster_home/postgres/dagster.yaml`` (runs, event log and
schedules in the PostgreSQL database named by :data:`POSTGRES_URL_ENV`). ``market up
--dagster-storage postgres`` installs the second; a folder whose file already keeps its storage
in PostgreSQL is used as it is.

PostgreSQL storage has a driver trap: ``dagster-postgres`` is written for psycopg2, while
SQLAlchemy 2.1 maps a plain ``postgresql://`` URL to psycopg 3. Where psycopg 3 is missing (a
Dagster-only image) the instance fails to load; where it is installed (this project, for the
market memory) Dagster silently runs on a driver it was not written for, whose errors lack the
``pgcode`` its table-creation retry reads. So every PostgreSQL store must say
``postgresql+psycopg2``, and :func:`install_instance_settings` refuses one that does not rather
than rewriting it: the systemd units and containers read the same environment without going
through ``market up``, and must not end up on another driver than ``market up``'s children.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

PROJECT_HOME = Path(__file__).resolve().parents[1] / "dagster_home"


class DagsterStorage(StrEnum):
    """Where Dagster keeps runs, event logs and schedules (``market up --dagster-storage``)."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


PROJECT_HOMES = {DagsterStorage.SQLITE: PROJECT_HOME, DagsterStorage.POSTGRES: PROJECT_HOME / "postgres"}
"""The repository's ready-made ``DAGSTER_HOME`` for each storage, each holding its dagster.yaml."""

PROJECT_DAGSTER_YAML = PROJECT_HOMES[DagsterStorage.SQLITE] / "dagster.yaml"
PROJECT_POSTGRES_YAML = PROJECT_HOMES[DagsterStorage.POSTGRES] / "dagster.yaml"

POSTGRES_URL_ENV = "MARKET_DAGSTER_POSTGRES_URL"
"""The URL of Dagster's own PostgreSQL database (not the market memory's ``MARKET_DB``), read by
``dagster_home/postgres/dagster.yaml``."""

DAGSTER_POSTGRES_SCHEME = "postgresql+psycopg2"
"""The only URL scheme that gives ``dagster-postgres`` the driver it is written for."""

RELIED_ON = ("concurrency", "run_retries", "run_monitoring", "freshness")
"""Sections whose every value the project needs: the run queue and one run per source
(``concurrency``), retries of crashed workers only (``run_retries``: a run that failed in our code
is in the ledger and is not retried), the reaping of runs whose worker died (``run_monitoring``)
and the evaluation of the registry's freshness policies (``freshness``). ``retention`` and
``telemetry`` are preferences an operator may change."""

CONFLICTING = {"run_coordinator": "replaces the run queue that concurrency.runs configures"}
"""Top-level keys that would override a section of :data:`RELIED_ON`."""

STORES = ("run_storage", "event_log_storage", "schedule_storage")
"""The per-store keys, each an alternative to the combined ``storage`` key."""


class InstanceSettingsError(RuntimeError):
    """``DAGSTER_HOME/dagster.yaml`` lacks or changes a setting the project relies on, keeps its
    storage elsewhere than asked, or names PostgreSQL with a URL that selects the wrong driver."""


def differences(project: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """Each relied-on setting of ``project`` that ``theirs`` lacks or sets otherwise, as
    ``dotted.path: project X, here Y``; plus each conflicting key ``theirs`` sets."""
    found: list[str] = []
    for section in RELIED_ON:
        if section in project:
            found += _compare(section, project[section], theirs.get(section, _MISSING))
    found += [f"{key}: set here; it {why}" for key, why in CONFLICTING.items() if key in theirs]
    return found


class _Missing:
    def __repr__(self) -> str:
        return "missing"


_MISSING = _Missing()


def _compare(path: str, ours: Any, theirs: Any) -> list[str]:
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        return [line for key, value in ours.items() for line in _compare(f"{path}.{key}", value, theirs.get(key, _MISSING))]
    return [] if ours == theirs else [f"{path}: project {ours!r}, here {theirs!r}"]


def postgres_stores(settings: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each store of an instance's settings that is kept in PostgreSQL, as (where, its
    ``postgres_url`` / ``postgres_db`` config): ``storage.postgres`` for the combined key, else
    each ``*_storage`` whose class comes from ``dagster_postgres``."""
    storage = settings.get("storage")
    if isinstance(storage, Mapping) and isinstance(storage.get("postgres"), Mapping):
        yield "storage.postgres", storage["postgres"]
    for key in STORES:
        store = settings.get(key)
        if isinstance(store, Mapping) and str(store.get("module", "")).startswith("dagster_postgres"):
            config = store.get("config")
            yield f"{key}.config", config if isinstance(config, Mapping) else {}


def storage_of(settings: Mapping[str, Any]) -> DagsterStorage:
    """PostgreSQL when any store is kept there, else SQLite (Dagster's default)."""
    return DagsterStorage.POSTGRES if any(postgres_stores(settings)) else DagsterStorage.SQLITE


def driver_problems(settings: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """Why each PostgreSQL store of ``settings`` would not run on psycopg2 under ``env``: an
    unset URL variable, or a scheme other than :data:`DAGSTER_POSTGRES_SCHEME`. Never the URL
    itself, which carries the password."""
    found: list[str] = []
    for where, config in postgres_stores(settings):
        if "postgres_db" in config:
            db = config["postgres_db"] if isinstance(config["postgres_db"], Mapping) else {}
            scheme, named = _resolve(db.get("scheme", "postgresql"), env)
            where = f"{where}.postgres_db.scheme" + (f" ({named})" if named else "")
        else:
            url, named = _resolve(config.get("postgres_url"), env)
            where = named or f"{where}.postgres_url"
            if url is None:
                found.append(f"{where} is not set: it names Dagster's PostgreSQL database, "
                             f"as {DAGSTER_POSTGRES_SCHEME}://user:password@host:5432/dagster")
                continue
            scheme = urlsplit(url).scheme if "://" in url else ""
        if scheme is None:
            found.append(f"{where} is not set: write {DAGSTER_POSTGRES_SCHEME}")
        elif scheme.lower() != DAGSTER_POSTGRES_SCHEME:
            found.append(
                f"{where} says {scheme or 'no scheme'}: dagster-postgres drives PostgreSQL through psycopg2, and "
                f"SQLAlchemy 2.1 gives a plain postgresql:// to psycopg 3; write {DAGSTER_POSTGRES_SCHEME}://…"
            )
    return found


def _resolve(value: Any, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """A Dagster ``StringSource``: a literal, or ``{env: NAME}`` read from ``env``; with the
    variable's name when it came from one."""
    if isinstance(value, Mapping) and "env" in value:
        name = str(value["env"])
        return env.get(name) or None, name
    return (None if value is None else str(value)), None


def install_instance_settings(
    dagster_home: Path, *, storage: DagsterStorage | None = None, env: Mapping[str, str] | None = None
) -> bool:
    """Install the project's dagster.yaml for ``storage`` (SQLite when ``None``) into
    ``dagster_home`` if it has none (True), or check the one there (False): it keeps every
    relied-on setting, keeps its storage where ``storage`` asks (``None``: wherever it does),
    and each PostgreSQL store's URL in ``env`` (default ``os.environ``) selects psycopg2.
    Raises :class:`InstanceSettingsError` naming each problem, before anything is written; a
    file already there is never changed."""
    env = os.environ if env is None else env
    target = dagster_home / "dagster.yaml"
    source = target if target.exists() else PROJECT_HOMES[storage or DagsterStorage.SQLITE] / "dagster.yaml"
    theirs = _read(source)
    found = differences(_read(PROJECT_DAGSTER_YAML), theirs)
    if found:
        raise InstanceSettingsError(
            f"{target} differs from the project's settings ({PROJECT_DAGSTER_YAML}):\n  "
            + "\n  ".join(found)
            + "\nCopy those settings into it, or point DAGSTER_HOME at a folder without a dagster.yaml."
        )
    kept = storage_of(theirs)
    if storage is not None and kept is not storage:
        raise InstanceSettingsError(
            f"{target} keeps Dagster's storage in {kept.value}, not {storage.value}: point DAGSTER_HOME at a "
            f"folder without a dagster.yaml (or at {PROJECT_HOMES[storage]}), or leave out --dagster-storage"
        )
    problems = driver_problems(theirs, env)
    if problems:
        raise InstanceSettingsError(f"{source} keeps Dagster's storage in PostgreSQL, but:\n  " + "\n  ".join(problems))
    if source == target:
        return False
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return True


def _read(path: Path) -> Mapping[str, Any]:
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InstanceSettingsError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(settings, Mapping):
        raise InstanceSettingsError(f"{path} is not a YAML mapping of Dagster settings")
    return settings
