"""The Dagster instance settings the project relies on, installed into or checked against any
``DAGSTER_HOME``.

Dagster reads ``$DAGSTER_HOME/dagster.yaml`` and nothing else: pointed at another folder, it used
to run with Dagster's defaults, without the per-source run limit, and three Hyperliquid jobs
overlapped. ``market up`` installs the project's file into a folder that has none, and refuses a
folder whose file differs in a setting listed in :data:`RELIED_ON`, naming each difference. The
file is not merged: rewriting an operator's YAML would drop its comments and could undo a choice
made on purpose (its storage, say), which is theirs to reconcile.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster_home" / "dagster.yaml"

RELIED_ON = ("concurrency", "run_retries", "run_monitoring", "freshness")
"""Sections whose every value the project needs: the run queue and one run per source
(``concurrency``), retries of crashed workers only (``run_retries``: a run that failed in our code
is in the ledger and is not retried), the reaping of runs whose worker died (``run_monitoring``)
and the evaluation of the registry's freshness policies (``freshness``). ``retention`` and
``telemetry`` are preferences an operator may change."""

CONFLICTING = {"run_coordinator": "replaces the run queue that concurrency.runs configures"}
"""Top-level keys that would override a section of :data:`RELIED_ON`."""


class InstanceSettingsError(RuntimeError):
    """``DAGSTER_HOME/dagster.yaml`` lacks or changes a setting the project relies on."""


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


def install_instance_settings(dagster_home: Path, *, project_yaml: Path = PROJECT_DAGSTER_YAML) -> bool:
    """Install the project's dagster.yaml into ``dagster_home`` if it has none (True), or check
    that the one there keeps every relied-on setting (False); raises
    :class:`InstanceSettingsError` naming each difference."""
    target = dagster_home / "dagster.yaml"
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copyfile(project_yaml, target)
        return True
    if target.resolve() == project_yaml.resolve():
        return False
    try:
        theirs = yaml.safe_load(target.read_text()) or {}
    except yaml.YAMLError as error:
        raise InstanceSettingsError(f"{target} is not valid YAML: {error}") from None
    if not isinstance(theirs, Mapping):
        raise InstanceSettingsError(f"{target} is not a YAML mapping of Dagster settings")
    found = differences(yaml.safe_load(project_yaml.read_text()), theirs)
    if found:
        raise InstanceSettingsError(
            f"{target} differs from the project's settings ({project_yaml}):\n  "
            + "\n  ".join(found)
            + "\nCopy those settings into it, or point DAGSTER_HOME at a folder without a dagster.yaml."
        )
    return False
