"""The systemd units of a single production host (deploy/systemd): valid units, every process
restarted on failure, commands and options that exist, one target starting them all."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
INSTALL = "/opt/market"
"""Where the units expect the checkout (its ``.venv`` made by ``make up``); tests point it here."""
SERVICES = sorted(UNITS.glob("*.service"))
LONG_RUNNING = [path for path in SERVICES if path.stem != "market-dagster-migrate"]


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as ``{section: {key: [values in order]}}`` (keys such as After= may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def here(path: Path, into: Path) -> Path:
    """A copy of the unit with the install root pointing at this checkout."""
    copy = into / path.name
    copy.write_text(path.read_text().replace(INSTALL, str(ROOT)))
    return copy


def test_the_units_are_a_streamer_an_api_and_dagsters_webserver_and_daemon() -> None:
    assert [p.stem for p in SERVICES] == [
        "market-api", "market-dagster-daemon", "market-dagster-migrate", "market-dagster-webserver", "market-streamer",
    ]


def test_systemd_accepts_every_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` checks keys, sections, dependencies and that each command is an
    executable (``make test`` installs Debian's systemd package when it is missing)."""
    units = [here(path, tmp_path) for path in [*SERVICES, UNITS / "market.target"]]
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing: apt-get install systemd (make test does)"
    result = subprocess.run([analyze, "verify", *map(str, units)], check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize("path", LONG_RUNNING, ids=lambda p: p.stem)
def test_every_process_is_kept_alive_and_stops_with_the_target(path: Path) -> None:
    unit = parse(path)
    service = unit["Service"]
    assert service["Restart"] == ["on-failure"] and service["User"] == ["market"]
    assert unit["Unit"]["PartOf"] == ["market.target"] and unit["Install"]["WantedBy"] == ["market.target"]
    assert service["EnvironmentFile"] == ["-/etc/market/market.env"]


def test_the_target_starts_every_long_running_process() -> None:
    wanted = parse(UNITS / "market.target")["Unit"]["Wants"][0].split()
    assert sorted(wanted) == sorted(p.name for p in LONG_RUNNING)


def test_dagster_migrates_its_storage_once_before_the_webserver_and_daemon() -> None:
    for role in ("webserver", "daemon"):
        unit = parse(UNITS / f"market-dagster-{role}.service")["Unit"]
        assert unit["Requires"] == ["market-dagster-migrate.service"]
        assert "market-dagster-migrate.service" in unit["After"][0].split()
    migrate = parse(UNITS / "market-dagster-migrate.service")["Service"]
    assert migrate["Type"] == ["oneshot"] and migrate["RemainAfterExit"] == ["yes"]


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.stem)
def test_each_command_and_its_options_exist(path: Path) -> None:
    """The command line as the unit runs it, from the checkout, with ``--help`` added: an unknown
    subcommand or option fails it."""
    (command,) = parse(path)["Service"]["ExecStart"]
    argv = shlex.split(command.replace(INSTALL, str(ROOT)))
    result = subprocess.run([*argv, "--help"], check=False, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
