"""The deployment files under deploy/ agree with the program: their commands are real `leadsync run`
command lines, their probes hit the port it listens on and a path it serves, and the example portal
and secret they ship fit together. No image is built and nothing leaves the machine."""

from __future__ import annotations

import argparse
import configparser
import json
import re
import shlex
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from sync.cli import build_parser
from sync.config import load_portal
from sync.observability import Metrics, serve_http
from sync.store.schema import database_url

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"

# -- reading the files -------------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """The final stage's instructions as (KEYWORD, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        # Docker drops comment lines even inside a continued instruction.
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        keyword, _, rest = (current + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _docker_exec_form(keyword: str) -> list[str]:
    values = [rest for kw, rest in _dockerfile() if kw == keyword]
    assert values, f"the Dockerfile has no {keyword}"
    argv = json.loads(values[-1])  # the exec (JSON) form, so signals reach leadsync and not a shell
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), f"{keyword} is not in exec form"
    return argv


def _docker_entrypoint() -> list[str]:
    return _docker_exec_form("ENTRYPOINT")


def _docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in _dockerfile():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def _docker_volumes() -> list[str]:
    volumes: list[str] = []
    for keyword, rest in _dockerfile():
        if keyword == "VOLUME":
            volumes += json.loads(rest) if rest.startswith("[") else rest.split()
    return volumes


def _docker_healthcheck() -> list[str]:
    rest = next(rest for keyword, rest in _dockerfile() if keyword == "HEALTHCHECK")
    _, _, command = rest.partition(" CMD ")
    argv: list[str] = json.loads(command)
    return argv


def _healthcheck_url() -> str:
    found = re.search(r"https?://[^'\"\s]+", " ".join(_docker_healthcheck()))
    assert found, "the HEALTHCHECK names no URL"
    return found.group(0)


def _yaml_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))


def _kubernetes_objects() -> list[dict[str, Any]]:
    return [
        doc
        for file in sorted(KUBERNETES.glob("*.yaml"))
        if file.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(file.read_text())
        if doc
    ]


def _kubernetes(kind: str) -> dict[str, Any]:
    [found] = [obj for obj in _kubernetes_objects() if obj["kind"] == kind]
    return found


def _k8s_container() -> dict[str, Any]:
    containers: list[dict[str, Any]] = _kubernetes("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _k8s_argv() -> list[str]:
    container = _k8s_container()
    return [*container.get("command", _docker_entrypoint()), *container.get("args", [])]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return compose


def _compose_workers() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return {name: s for name, s in services.items() if "postgres" not in str(s.get("image", ""))}


def _compose_argv(service: dict[str, Any]) -> list[str]:
    return [*service.get("entrypoint", _docker_entrypoint()), *service.get("command", _docker_exec_form("CMD"))]


def _without_compose_variables(text: str) -> str:
    return re.sub(r"\$\{[^}]*\}", "x", text)


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string((DEPLOY / "leadsync.service").read_text())
    return unit


def _leadsync(argv: list[str]) -> argparse.Namespace:
    """The command line parsed by leadsync's own parser; an unknown or abbreviated option fails the test."""
    assert PurePosixPath(argv[0]).name == "leadsync", f"not the leadsync command: {argv}"
    parser = build_parser()
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit:
        raise AssertionError(f"leadsync rejects {shlex.join(argv[1:])!r}") from None
    # argparse accepts a prefix of an option (--config for --config-dir), which a new option would break.
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    spelled = {o for action in commands.choices[args.command]._actions for o in action.option_strings}
    given = {token.split("=")[0] for token in argv[2:] if token.startswith("-")}
    assert given <= spelled, f"not spelled out in full: {sorted(given - spelled)}"
    return args


def _listen_port(argv: list[str]) -> int:
    return int(_leadsync(argv).listen.rpartition(":")[2])


def _docker_argv() -> list[str]:
    return [*_docker_entrypoint(), *_docker_exec_form("CMD")]


def _probes() -> dict[str, dict[str, Any]]:
    container = _k8s_container()
    return {kind: container[kind] for kind in ("livenessProbe", "readinessProbe")}


# -- every file ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", _yaml_files(), ids=lambda f: str(f.relative_to(DEPLOY)))
def test_yaml_file_parses_into_mappings(file: Path) -> None:
    docs = list(yaml.safe_load_all(file.read_text()))
    assert docs and all(isinstance(doc, dict) for doc in docs)


# -- the container image -------------------------------------------------------------------------------


def test_image_command_is_leadsync_run() -> None:
    assert _leadsync(_docker_argv()).command == "run"


def test_image_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in _dockerfile() if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_image_config_dir_is_on_a_volume() -> None:
    config_dir = PurePosixPath(_leadsync(_docker_argv()).config_dir)
    assert any(config_dir.is_relative_to(volume) for volume in _docker_volumes())


def test_image_default_sqlite_store_is_on_a_volume() -> None:
    url = database_url(_docker_env()["LEADSYNC_DB_URL"])
    assert url.get_backend_name() == "sqlite"
    assert any(PurePosixPath(url.database or "").is_relative_to(volume) for volume in _docker_volumes())


def test_image_listens_on_all_interfaces() -> None:
    # A container's loopback is unreachable from outside it: probes and Prometheus would never get in.
    assert _leadsync(_docker_argv()).listen.rpartition(":")[0] == "0.0.0.0"


def test_image_exposes_the_listen_port() -> None:
    exposed = [int(port.split("/")[0]) for kw, rest in _dockerfile() if kw == "EXPOSE" for port in rest.split()]
    assert _listen_port(_docker_argv()) in exposed


def test_image_healthcheck_uses_the_listen_port() -> None:
    assert urlsplit(_healthcheck_url()).port == _listen_port(_docker_argv())


def test_image_healthcheck_needs_only_python() -> None:
    # The slim base image has no curl or wget.
    assert _docker_healthcheck()[0] in ("python", "python3")


def test_docker_build_context_leaves_out_the_venv_and_compiled_modules() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert "**/*.so" in ignored  # an in-place build of sync/core must not reach the image's install


# -- the probe paths are served -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def health_url() -> Iterator[str]:
    server = serve_http("127.0.0.1", 0, lambda: {"status": "ok"}, Metrics())
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _probe_paths() -> list[tuple[str, str]]:
    paths = [(f"kubernetes {kind}", probe["httpGet"]["path"]) for kind, probe in _probes().items()]
    return [*paths, ("Dockerfile HEALTHCHECK", urlsplit(_healthcheck_url()).path)]


@pytest.mark.parametrize(("source", "path"), _probe_paths())
def test_probe_path_is_served(health_url: str, source: str, path: str) -> None:
    try:
        with urllib.request.urlopen(health_url + path, timeout=5) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 200, f"{source} probes {path}: HTTP {status}"


# -- Kubernetes ----------------------------------------------------------------------------------------


def test_kubernetes_command_is_leadsync_run() -> None:
    assert _leadsync(_k8s_argv()).command == "run"


@pytest.mark.parametrize("kind", ["livenessProbe", "readinessProbe"])
def test_kubernetes_probe_hits_the_listen_port(kind: str) -> None:
    port = _probes()[kind]["httpGet"]["port"]
    if isinstance(port, str):
        [port] = [p["containerPort"] for p in _k8s_container()["ports"] if p.get("name") == port]
    assert port == _listen_port(_k8s_argv())


def test_kubernetes_runs_two_replicas() -> None:
    assert _kubernetes("Deployment")["spec"]["replicas"] == 2


def test_kubernetes_pod_must_run_as_non_root() -> None:
    assert _kubernetes("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_container_has_resource_requests_and_a_memory_limit() -> None:
    resources = _k8s_container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_kubernetes_gives_the_batch_in_flight_time_to_finish() -> None:
    # SIGTERM finishes the batch in flight; the default 30 s grace would cut a rate-limited batch short.
    assert _kubernetes("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


def test_kubernetes_mounts_the_portal_configmap_at_the_config_dir() -> None:
    pod = _kubernetes("Deployment")["spec"]["template"]["spec"]
    config_dir = _leadsync(_k8s_argv()).config_dir
    [mount] = [m for m in _k8s_container()["volumeMounts"] if m["mountPath"] == config_dir]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == _kubernetes("ConfigMap")["metadata"]["name"]


def test_kubernetes_takes_its_environment_from_the_secret() -> None:
    refs = [source["secretRef"]["name"] for source in _k8s_container()["envFrom"] if "secretRef" in source]
    assert _kubernetes("Secret")["metadata"]["name"] in refs


def test_kubernetes_pods_do_not_start_without_the_shared_database_url() -> None:
    [db] = [e for e in _k8s_container()["env"] if e["name"] == "LEADSYNC_DB_URL"]
    ref = db["valueFrom"]["secretKeyRef"]
    assert ref["name"] == _kubernetes("Secret")["metadata"]["name"] and ref["key"] == "LEADSYNC_DB_URL"
    assert ref.get("optional", False) is False


def _configmap_portals(folder: Path) -> list[Path]:
    files = []
    for name, text in _kubernetes("ConfigMap")["data"].items():
        (folder / name).write_text(text)
        files.append(folder / name)
    return files


def test_kubernetes_configmap_portal_files_pass_validation(tmp_path: Path) -> None:
    files = _configmap_portals(tmp_path)
    assert files
    for file in files:
        load_portal(file)  # raises ConfigError with every problem


def test_kubernetes_secret_holds_every_portal_token(tmp_path: Path) -> None:
    token_envs = {load_portal(file).config.portal.token_env for file in _configmap_portals(tmp_path)}
    assert token_envs <= set(_kubernetes("Secret")["stringData"])


def test_kubernetes_secret_store_is_postgresql() -> None:
    # Two replicas can share the portals only through one PostgreSQL store.
    url = database_url(_kubernetes("Secret")["stringData"]["LEADSYNC_DB_URL"])
    assert url.get_backend_name() == "postgresql"


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"]
    on_disk = [f.name for f in sorted(KUBERNETES.glob("*.yaml")) if f.name != "kustomization.yaml"]
    assert sorted(listed) == on_disk


# -- Compose ---------------------------------------------------------------------------------------------


def test_compose_runs_two_workers() -> None:
    workers = _compose_workers().values()
    assert sum(w.get("deploy", {}).get("replicas", 1) for w in workers) == 2


def test_compose_runs_postgres_16_with_a_healthcheck() -> None:
    postgres = _compose()["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert postgres["healthcheck"]["test"]


@pytest.mark.parametrize("name", list(_compose_workers()))
def test_compose_worker_command_is_leadsync_run(name: str) -> None:
    assert _leadsync(_compose_argv(_compose_workers()[name])).command == "run"


@pytest.mark.parametrize("name", list(_compose_workers()))
def test_compose_worker_store_is_the_postgres_service(name: str) -> None:
    raw = _compose_workers()[name]["environment"]["LEADSYNC_DB_URL"]
    url = database_url(_without_compose_variables(raw))
    assert url.get_backend_name() == "postgresql"
    assert make_url(url).host == "postgres"


@pytest.mark.parametrize("name", list(_compose_workers()))
def test_compose_worker_waits_for_a_healthy_postgres(name: str) -> None:
    assert _compose_workers()[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", list(_compose_workers()))
def test_compose_worker_mounts_the_config_dir_read_only(name: str) -> None:
    config_dir = PurePosixPath(_leadsync(_compose_argv(_compose_workers()[name])).config_dir)
    mounts = [v.rsplit(":", 2) for v in _compose_workers()[name]["volumes"]]
    assert any(config_dir.is_relative_to(target) and mode == "ro" for _, target, mode in mounts)


@pytest.mark.parametrize("name", list(_compose_workers()))
def test_compose_worker_reads_tokens_from_an_env_file(name: str) -> None:
    assert _compose_workers()[name]["env_file"]


# -- systemd ---------------------------------------------------------------------------------------------


def test_systemd_exec_start_is_leadsync_run() -> None:
    assert _leadsync(shlex.split(_unit()["Service"]["ExecStart"])).command == "run"


def test_systemd_reload_sends_sighup() -> None:
    assert shlex.split(_unit()["Service"]["ExecReload"])[1:] == ["-HUP", "$MAINPID"]


def test_systemd_runs_as_the_leadsync_user() -> None:
    assert _unit()["Service"]["User"] == "leadsync"


def test_systemd_reads_tokens_from_an_environment_file() -> None:
    assert _unit()["Service"]["EnvironmentFile"].lstrip("-").startswith("/")


def test_systemd_restarts_on_failure() -> None:
    assert _unit()["Service"]["Restart"] == "on-failure"


def test_systemd_waits_for_the_batch_in_flight() -> None:
    # The default 90 s is long enough for most batches; the unit says so explicitly and allows more.
    assert int(_unit()["Service"]["TimeoutStopSec"]) >= 90


@pytest.mark.parametrize(("key", "value"), [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict")])
def test_systemd_is_hardened(key: str, value: str) -> None:
    assert _unit()["Service"][key] == value


def test_systemd_default_sqlite_store_is_in_the_state_directory() -> None:
    # ProtectSystem=strict leaves only the StateDirectory writable.
    service = _unit()["Service"]
    state = PurePosixPath("/var/lib") / service["StateDirectory"]
    name, _, value = service["Environment"].partition("=")
    assert name == "LEADSYNC_DB_URL"
    assert PurePosixPath(database_url(value).database or "").parent == state
