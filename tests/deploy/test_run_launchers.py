"""The run launcher configurations in deploy/: Docker (docker-compose.yml, its dagster.yaml and
Dockerfile) and Kubernetes (Helm values for Dagster's chart). Neither can run here (no Docker
daemon, no cluster): each instance is validated by Dagster's instance config schema, each launcher's
config by the launcher class's own ``config_type()``, the project's relied-on settings and the
psycopg2 driver are checked with ``market_assets.instance_settings``, and the compose file is
checked for consistency with the files it builds and mounts."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.config import pg_config
from dagster_docker import DockerRunLauncher
from dagster_k8s import K8sRunLauncher

from market_assets.instance_settings import (
    PROJECT_DAGSTER_YAML,
    PROJECT_POSTGRES_YAML,
    differences,
    driver_problems,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
KUBERNETES = ROOT / "deploy" / "kubernetes"
PROJECT = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())
PROJECT_POSTGRES = yaml.safe_load(PROJECT_POSTGRES_YAML.read_text())
WORKSPACE_MODULE = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]["module_name"]
DAGSTER_COMMANDS = ("dagster", "dagster-webserver", "dagster-daemon")
"""Programs that open the Dagster instance."""


def validated(config_type: Any, config: Any, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``config`` processed by Dagster against ``config_type`` under ``env`` (``{env: X}`` read
    from it); fails the test with Dagster's own messages."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = process_config(resolve_to_config_type(config_type), config)
    assert result.success, [error.message for error in result.errors or []]
    return result.value


def instance_settings(settings: Mapping[str, Any], tmp_path: Path) -> Mapping[str, Any]:
    """``settings`` validated as a dagster.yaml by Dagster's loader (its instance schema)."""
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(dict(settings)))
    loaded, _ = dagster_instance_config(str(tmp_path))
    return loaded


def env_names(node: Any) -> Iterator[str]:
    """Every environment variable a Dagster config reads (``{env: NAME}``)."""
    if isinstance(node, Mapping):
        if set(node) == {"env"}:
            yield str(node["env"])
        for value in node.values():
            yield from env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from env_names(value)


# --- Docker -------------------------------------------------------------------------------------

SECRETS = {"POSTGRES_PASSWORD": "Example1"}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` throughout ``node``."""
    if isinstance(node, Mapping):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        value = env.get(name)
        if op and op.endswith("?") and not value:
            raise ValueError(f"{name}: {arg}")
        return value if value else (arg if op and op.endswith("-") else "")

    return _INTERPOLATION.sub(one, node)


def compose(env: Mapping[str, str] = SECRETS) -> dict[str, Any]:
    return dict(interpolate(yaml.safe_load((DOCKER / "docker-compose.yml").read_text()), env))


def dockerfile() -> tuple[dict[str, str], dict[str, str]]:
    """The Dockerfile's ENV (name -> value) and COPY (destination -> source), ``${X}`` expanded."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    env: dict[str, str] = {}
    copies: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["ENV"]:
            env |= dict(word.split("=", 1) for word in words[1:])
        elif words[:1] == ["COPY"]:
            *sources, dest = (interpolate(word, env) for word in words[1:])
            for source in sources:
                copies[dest.rstrip("/") + ("/" + Path(source).name if dest.endswith("/") or dest == "." else "")] = source
    return env, copies


def container_env(service: Mapping[str, Any]) -> dict[str, str]:
    """What a service's process sees: the image's ENV, then the service's environment."""
    return {**dockerfile()[0], **{key: str(value) for key, value in service.get("environment", {}).items()}}


def command(service: Mapping[str, Any]) -> list[str]:
    return list(service.get("command", []))


def dagster_services(services: Mapping[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if command(s)[:1] and command(s)[0] in DAGSTER_COMMANDS}


def option(argv: list[str], *names: str) -> str:
    """The value after the first of ``names`` in ``argv``."""
    for index, word in enumerate(argv):
        if word in names:
            return argv[index + 1]
    raise AssertionError(f"none of {names} in {argv}")


DOCKER_YAML = yaml.safe_load((DOCKER / "dagster.yaml").read_text())


def test_the_docker_instance_is_the_projects_postgres_instance_with_a_docker_run_launcher(tmp_path: Path) -> None:
    loaded = instance_settings(DOCKER_YAML, tmp_path)
    assert loaded["run_launcher"]["class"] == "DockerRunLauncher"
    assert {key: value for key, value in DOCKER_YAML.items() if key != "run_launcher"} == PROJECT_POSTGRES
    assert differences(PROJECT, DOCKER_YAML) == []


def test_the_docker_run_launchers_config_is_valid_for_the_daemon_that_launches_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = compose()["services"]["daemon"]
    launcher = DOCKER_YAML["run_launcher"]
    schema = DockerRunLauncher.config_type()  # type: ignore[no-untyped-call]
    value = validated(schema, launcher["config"], container_env(daemon), monkeypatch)
    DockerRunLauncher(**value)  # its own checks (network vs networks, no image/environment in container_kwargs)
    # each variable a run's container gets is copied from the daemon's environment
    assert set(value["env_vars"]) <= set(container_env(daemon))


def test_every_dagster_process_and_every_run_can_open_the_instance_on_psycopg2(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    read = set(env_names(DOCKER_YAML))
    assert read == {"MARKET_DAGSTER_POSTGRES_URL"}
    assert read <= set(DOCKER_YAML["run_launcher"]["config"]["env_vars"])  # runs open it too
    opening = dagster_services(services)
    assert set(opening) == {"migrate", "user-code", "webserver", "daemon"}
    for name, service in opening.items():
        env = container_env(service)
        assert read <= set(env), name
        assert driver_problems(DOCKER_YAML, env) == [], name
        validated(pg_config(), DOCKER_YAML["storage"]["postgres"], env, monkeypatch)
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"


def test_both_databases_are_on_the_compose_postgres_and_are_not_the_same() -> None:
    services = compose()["services"]
    server = services["postgres"]["environment"]
    created = re.findall(r"CREATE DATABASE (\w+)", "".join(p.read_text() for p in sorted((DOCKER / "initdb").glob("*.sql"))))
    mount = next(v for v in services["postgres"]["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro"))
    assert (DOCKER / mount.split(":")[0]).resolve() == DOCKER / "initdb"
    for name, service in services.items():
        env = container_env(service)
        if "MARKET_DB" not in env:
            continue
        dagster, memory = urlsplit(env["MARKET_DAGSTER_POSTGRES_URL"]), urlsplit(env["MARKET_DB"])
        for url in (dagster, memory):
            assert (url.hostname, url.port, url.username, url.password) == (
                "postgres", 5432, server["POSTGRES_USER"], SECRETS["POSTGRES_PASSWORD"]), name
        assert dagster.path == f"/{server['POSTGRES_DB']}"
        assert memory.path.lstrip("/") in created
        assert memory.path != dagster.path  # Dagster's own database, separate from the market memory's


def test_an_unset_password_stops_compose_with_the_variable_named() -> None:
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD: set POSTGRES_PASSWORD in deploy/docker/.env"):
        compose({"POSTGRES_PASSWORD": ""})
    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(example) >= {"POSTGRES_PASSWORD"}


def test_runs_join_the_compose_network_and_share_the_hosts_market_home() -> None:
    spec = compose()
    config = DOCKER_YAML["run_launcher"]["config"]
    networks = {body.get("name", key): key for key, body in spec["networks"].items()}
    assert config["network"] in networks
    for name, service in spec["services"].items():
        assert networks[config["network"]] in service["networks"], name
    volumes = {(body or {}).get("name", key): key for key, body in spec["volumes"].items()}
    [mount] = config["container_kwargs"]["volumes"]
    volume, path = mount.split(":")
    assert volume in volumes and path == dockerfile()[0]["MARKET_HOME"]
    # the streamer spends the same IP's Hyperliquid weight: it keeps its ledger on the same volume
    for name in ("streamer", "api"):
        assert f"{volumes[volume]}:{path}" in spec["services"][name]["volumes"], name


def test_the_code_server_is_the_workspace_the_webserver_and_daemon_load() -> None:
    spec = compose()
    services = spec["services"]
    env, copies = dockerfile()
    [location] = yaml.safe_load((DOCKER / "workspace.yaml").read_text())["load_from"]
    server = services[location["grpc_server"]["host"]]
    argv = command(server)
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert int(option(argv, "-p", "--port")) == location["grpc_server"]["port"]
    assert option(argv, "-h", "--host") == "0.0.0.0"
    assert option(argv, "-m", "--module-name") == WORKSPACE_MODULE
    # runs start from the image that holds the code
    assert server["environment"]["DAGSTER_CURRENT_IMAGE"] == server["image"]
    assert {s["image"] for s in services.values() if "build" in s} == {server["image"]}
    for name in ("webserver", "daemon"):
        workspace = option(command(services[name]), "-w", "--workspace")
        assert copies[workspace] == "deploy/docker/workspace.yaml", name
    assert copies[f"{env['DAGSTER_HOME']}/dagster.yaml"] == "deploy/docker/dagster.yaml"
    assert all((ROOT / source).exists() for source in copies.values())
    assert {s["build"]["dockerfile"] for s in services.values() if "build" in s} == {"deploy/docker/Dockerfile"}
    assert {(DOCKER / s["build"]["context"]).resolve() for s in services.values() if "build" in s} == {ROOT}


def test_one_daemon_launches_runs_through_the_docker_socket_after_storage_is_migrated() -> None:
    services = compose()["services"]
    daemons = [name for name, s in services.items() if command(s)[:1] == ["dagster-daemon"]]
    assert daemons == ["daemon"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["daemon"]["volumes"]
    assert command(services["migrate"]) == ["dagster", "instance", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("user-code", "webserver", "daemon"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


# --- Kubernetes ---------------------------------------------------------------------------------

VALUES = yaml.safe_load((KUBERNETES / "values.yaml").read_text())
RELEASE = {"namespace": "market", "service_account": "market-dagster"}
"""What the chart fills in from the release (its namespace, the service account it creates)."""
CHART_ENV = {
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_PG_PASSWORD": "from-the-secret",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "market-dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "market-dagster-pipeline-env",
}
"""The variables the chart sets in the daemon's and webserver's pods."""


MODELLED_K8S_VALUES = {"loadInclusterConfig", "jobNamespace", "imagePullPolicy", "envConfigMaps", "envSecrets",
                       "envVars", "volumeMounts", "volumes"}


def chart_run_launcher(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run launcher the chart writes for ``runLauncher.type: K8sRunLauncher`` (its
    templates/helpers/instance/_run-launcher.tpl): each camelCase value under its snake_case key."""
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(k8s) <= MODELLED_K8S_VALUES, f"not modelled here: {sorted(set(k8s) - MODELLED_K8S_VALUES)}"
    config: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or RELEASE["namespace"],
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": RELEASE["service_account"],
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}] + [m["name"] for m in k8s["envConfigMaps"]],
    }
    if k8s["envSecrets"]:
        config["env_secrets"] = [secret["name"] for secret in k8s["envSecrets"]]
    for key, snake in (("envVars", "env_vars"), ("volumeMounts", "volume_mounts"), ("volumes", "volumes")):
        if k8s[key]:
            config[snake] = k8s[key]
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def chart_instance(values: Mapping[str, Any]) -> dict[str, Any]:
    """The dagster.yaml the chart renders from ``values`` (its templates/configmap-instance.yaml),
    for the features these values use; a value turning on a section this model does not render
    fails here rather than pass unchecked."""
    daemon = values["dagsterDaemon"]
    assert not any(daemon[section]["enabled"] for section in ("runCoordinator", "runMonitoring", "runRetries"))
    pg = values["postgresql"]
    postgres_db = {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
        "params": pg["postgresqlParams"], **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }
    stores = {
        key: {"module": f"dagster_postgres.{module}", "class": cls, "config": {"postgres_db": postgres_db}}
        for key, module, cls in (("schedule_storage", "schedule_storage", "PostgresScheduleStorage"),
                                 ("run_storage", "run_storage", "PostgresRunStorage"),
                                 ("event_log_storage", "event_log", "PostgresEventLogStorage"))
    }
    retention = values["retention"]
    rendered = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        **stores,
        "run_launcher": chart_run_launcher(values),
        "compute_logs": {"module": "dagster.core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        **({"retention": {kind: {"purge_after_days": retention[kind]["purgeAfterDays"]} for kind in ("sensor", "schedule")}}
           if retention["enabled"] else {}),
    }
    extra: dict[str, Any] = values["additionalInstanceConfig"]
    assert not set(extra) & set(rendered), "a section both rendered by the chart and appended: a duplicate YAML key"
    return rendered | extra


def test_the_chart_instance_keeps_the_projects_settings_on_postgres_with_psycopg2(tmp_path: Path) -> None:
    rendered = chart_instance(VALUES)
    loaded = instance_settings(rendered, tmp_path)
    assert differences(PROJECT, loaded) == []
    assert {key: loaded[key] for key in ("retention", "telemetry")} == {key: PROJECT[key] for key in ("retention", "telemetry")}
    assert driver_problems(loaded, CHART_ENV) == []
    assert "run_coordinator" not in loaded  # concurrency.runs configures Dagster's queued run coordinator


def test_the_chart_storage_and_run_launcher_pass_their_classes_own_config_types(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = chart_instance(VALUES)
    for key in ("schedule_storage", "run_storage", "event_log_storage"):
        value = validated(pg_config(), rendered[key]["config"], CHART_ENV, monkeypatch)
        assert value["postgres_db"]["scheme"] == "postgresql+psycopg2"
    schema = K8sRunLauncher.config_type()  # type: ignore[no-untyped-call]
    value = validated(schema, rendered["run_launcher"]["config"], CHART_ENV, monkeypatch)
    assert value["env_secrets"] == ["market-memory"]
    assert value["instance_config_map"] == CHART_ENV["DAGSTER_K8S_INSTANCE_CONFIG_MAP"]


def test_the_user_deployment_serves_the_projects_code_location_to_its_runs() -> None:
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    assert VALUES["dagster-user-deployments"]["enabled"] is True
    assert option(deployment["dagsterApiGrpcArgs"], "-m", "--module-name") == WORKSPACE_MODULE
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {"name": "market-memory"} in deployment["envSecrets"]
    assert VALUES["postgresql"]["enabled"] is False and VALUES["generatePostgresqlPasswordSecret"] is False
