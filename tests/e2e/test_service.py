"""The service: portals on their schedules, a broken portal file isolated, leases shared by replicas."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from structlog.testing import capture_logs

from sync.app import ConfiguredPortal, open_portal
from sync.observability import Metrics, serve_http
from sync.ports import StateStore
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.scheduler import Service
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config

ROOT = Path(__file__).resolve().parents[2]


def portal_file(folder: Path, name: str, portal_id: int, sandbox: Sandbox, every: str = "2s") -> Path:
    config = sandbox_config(sandbox.url, "LEADSYNC_SERVICE_TOKEN")
    config["portal"].update(id=portal_id, name=name)
    config["schedule"] = {"every": every, "rescore": None, "timezone": "UTC"}
    file = folder / f"{name}.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


@contextmanager
def sandboxes(count: int, contacts: int = 300) -> Iterator[list[Sandbox]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(Sandbox(generate_portal(contacts, 40 + i, portal_id=7000 + i), rate_limit="off"))
            for i in range(count)
        ]


def wait_for(check: Any, timeout: float, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s")


def test_the_service_syncs_every_portal_isolates_a_broken_file_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandboxes(2) as (a, b):
        monkeypatch.setenv("LEADSYNC_SERVICE_TOKEN", a.token)
        folder = tmp_path / "portals"
        folder.mkdir()
        portal_file(folder, "alpha", 7000, a)
        portal_file(folder, "beta", 7001, b)
        (folder / "broken.yaml").write_text(
            "portal: {id: 1, name: broken, token_env: X}\nmodel: {fit: {rules: [{id: x}]}}\n"
        )
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        metrics = Metrics()
        service = Service(folder, store, open_portal, metrics=metrics, lease_ttl_s=6, jitter_s=0)
        server = serve_http("127.0.0.1", 0, service.health, metrics)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with capture_logs() as logs:
            runner = threading.Thread(target=service.serve, kwargs={"install_signals": False})
            runner.start()
            try:
                wait_for(
                    lambda: all(
                        store.last_runs(pid, 1) and store.last_runs(pid, 1)[0].status == "ok" for pid in (7000, 7001)
                    ),
                    60,
                )
                health = requests.get(f"{url}/healthz", timeout=5)
                exposition = requests.get(f"{url}/metrics", timeout=5).text
            finally:
                service.stop.set()
                runner.join(60)
                server.shutdown()
                store.close()
    assert not runner.is_alive()  # stopped after the batch in flight
    assert health.status_code == 200 and set(health.json()["portals"]) == {"alpha", "beta"}
    assert 'leadsync_runs_total{kind="incremental",portal="alpha",status="ok"}' in exposition
    assert "leadsync_last_success_timestamp_seconds" in exposition and "leadsync_api_calls" in exposition
    problems = [e for e in logs if e["event"] == "config_error"]
    assert problems and all("broken.yaml" in e["file"] for e in problems)
    assert {e["portal"] for e in logs if e["event"] == "lease_released"} == {"alpha", "beta"}


def run_service(folder: Path, db: str, token: str, log: Path, listen: str = "off") -> subprocess.Popen[bytes]:
    env = {**os.environ, "LEADSYNC_SERVICE_TOKEN": token}
    command = [sys.executable, "-m", "sync", "run", "--config-dir", str(folder), "--db", db, "--listen", listen,
               "--lease-ttl", "4", "--log-format", "json"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def held_now(log: Path) -> set[str]:
    """The portals a replica holds by its log: taken, and not since released or lost."""
    held: set[str] = set()
    for e in events(log):
        if e.get("event") == "lease_acquired":
            held.add(e["portal"])
        elif e.get("event") in ("lease_released", "lease_lost"):
            held.discard(e["portal"])
    return held


@pytest.mark.postgres
def test_two_replicas_share_three_portals_and_one_takes_over_when_the_other_dies(
    tmp_path: Path,
    pg_schema_url: str,
) -> None:
    with sandboxes(3) as boxes:
        folder = tmp_path / "portals"
        folder.mkdir()
        for i, box in enumerate(boxes):
            portal_file(folder, f"p{i}", 7000 + i, box, every="1s")
        logs = [tmp_path / "one.log", tmp_path / "two.log"]
        procs = [run_service(folder, pg_schema_url, boxes[0].token, log) for log in logs]
        try:
            # Both replicas run; every portal gets synced, each by exactly one replica at a time.
            def all_synced() -> bool:
                for proc, log in zip(procs, logs, strict=True):
                    assert proc.poll() is None, f"a replica exited early:\n{log.read_text()[-2000:]}"
                return len({e["portal"] for log in logs for e in events(log) if e.get("event") == "run_finished"}) == 3

            wait_for(all_synced, 90)
            time.sleep(3)  # the fair share settles: 2 and 1
            holding = [held_now(log) for log in logs]
            owners = {p: i for i, held in enumerate(holding) for p in held}
            assert set(owners) == {"p0", "p1", "p2"} and sorted(map(len, holding)) == [1, 2]
            for i, log in enumerate(logs):
                ran = {e["portal"] for e in events(log) if e.get("event") == "run_started"}
                took = {e["portal"] for e in events(log) if e.get("event") == "lease_acquired"}
                assert ran <= took, (i, ran, took)  # a replica runs only portals it took
            # Kill the replica holding the most portals; the other takes them over within a minute.
            victim = max((0, 1), key=lambda i: sum(1 for owner in owners.values() if owner == i))
            os.killpg(procs[victim].pid, signal.SIGKILL)
            procs[victim].wait(10)
            killed_at = time.monotonic()
            survivor = logs[1 - victim]
            orphaned = {p for p, owner in owners.items() if owner == victim}

            def taken_over() -> bool:
                took = {e["portal"] for e in events(survivor) if e.get("event") == "lease_acquired"}
                ran = {e["portal"] for e in events(survivor) if e.get("event") == "run_finished"}
                return orphaned <= took and orphaned <= ran

            wait_for(taken_over, 60)
            assert time.monotonic() - killed_at < 60
        finally:
            for proc in procs:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(60)
        survivor_proc = procs[1 - victim]
        assert survivor_proc.returncode == 0  # SIGTERM: finished the batch in flight, exited cleanly


def test_a_reload_picks_up_a_new_portal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with sandboxes(2) as (a, b):
        monkeypatch.setenv("LEADSYNC_SERVICE_TOKEN", a.token)
        folder = tmp_path / "portals"
        folder.mkdir()
        portal_file(folder, "alpha", 7000, a)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        service = Service(folder, store, open_portal, lease_ttl_s=6, jitter_s=0)
        runner = threading.Thread(target=service.serve, kwargs={"install_signals": False})
        runner.start()
        try:
            wait_for(lambda: store.last_runs(7000, 1), 60)
            portal_file(folder, "beta", 7001, b)
            service.reload.set()  # what SIGHUP does
            wait_for(lambda: store.last_runs(7001, 1) and store.last_runs(7001, 1)[0].status == "ok", 60)
        finally:
            service.stop.set()
            runner.join(60)
            store.close()
    assert set(service.portals) == {"alpha", "beta"}


@pytest.mark.parametrize("same", ["name", "id"])
def test_a_second_file_for_the_same_portal_is_reported_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same: str
) -> None:
    with sandboxes(1) as (a,):
        monkeypatch.setenv("LEADSYNC_SERVICE_TOKEN", a.token)
        folder = tmp_path / "portals"
        folder.mkdir()
        portal_file(folder, "alpha", 7000, a)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        twin = portal_file(elsewhere, "alpha" if same == "name" else "beta", 7000 if same == "id" else 7001, a)
        twin.rename(folder / "zz-twin.yaml")  # read after alpha.yaml
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        service = Service(folder, store, open_portal, lease_ttl_s=6, jitter_s=0)
        with capture_logs() as logs:
            service.load()
        store.close()
    assert set(service.portals) == {"alpha"}
    (problem,) = [e for e in logs if e["event"] == "config_error"]
    assert problem["file"].endswith("zz-twin.yaml") and "already defined by" in problem["problem"]


BROKEN = ROOT / "tests" / "data" / "broken"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


HOSTILE = ["points-nan.yaml", "alias-bomb.yaml", "deep-nesting.yaml", "points-1e308.yaml"]


class ServiceProbe:
    """The /healthz and /metrics of a service running in another process, failing fast if it exits."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def health(self) -> tuple[int, dict[str, Any]] | None:
        assert self.proc.poll() is None, f"the service exited:\n{self.log.read_text()[-3000:]}"
        try:
            reply = requests.get(f"{self.url}/healthz", timeout=5)
        except requests.ConnectionError:
            return None
        return reply.status_code, reply.json()

    def synced(self, name: str) -> Any:
        found = self.health()
        last = found and found[1]["portals"].get(name, {}).get("last_run")
        return found if last and last["status"] == "ok" else None

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=5).text


def config_errors_gauge(exposition: str, file: Path) -> float:
    line = next(x for x in exposition.splitlines() if x.startswith(f'leadsync_portal_config_errors{{file="{file}"}}'))
    return float(line.split()[-1])


def broken_by_name(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(e["file"]).name: e for e in state["broken"]}


def check_the_start(probe: ServiceProbe, folder: Path, alpha: Path) -> None:
    """At start: alpha syncs; five files do not load, each reported; the service is degraded, not down."""
    code, state = wait_for(lambda: probe.synced("alpha"), 60)
    assert code == 200 and state["status"] == "degraded"
    assert set(state["portals"]) == {"alpha"}
    broken = broken_by_name(state)
    assert set(broken) == {*HOSTILE, "beta.yaml"}
    assert broken["points-nan.yaml"]["portal"] == "test-portal"  # the name, when the file gives it
    assert broken["beta.yaml"]["portal"] == "beta"
    assert broken["alias-bomb.yaml"]["portal"] is None  # refused before any name could be read
    assert "a portal file never needs more than 50,000" in broken["alias-bomb.yaml"]["error"]
    assert "nested more than 64 levels deep" in broken["deep-nesting.yaml"]["error"]
    assert "1e308 is too large" in broken["points-1e308.yaml"]["error"]
    assert f"{folder / 'points-nan.yaml'}:26: model.engagement.rules[0].points:" in broken["points-nan.yaml"]["error"]
    exposition = probe.metrics()
    assert config_errors_gauge(exposition, alpha) == 0
    assert all(config_errors_gauge(exposition, folder / name) == 1 for name in [*HOSTILE, "beta.yaml"])


def check_a_reload_that_breaks_alpha_and_fixes_beta(probe: ServiceProbe, alpha: Path, beta: Path, good: str) -> None:
    """SIGHUP after breaking alpha and fixing beta: alpha stops and is reported, beta runs."""
    alpha.write_text(alpha.read_text().replace("per_10s: 100000", "per_10s: true"))
    beta.write_text(good)
    os.kill(probe.proc.pid, signal.SIGHUP)
    code, state = wait_for(lambda: probe.synced("beta"), 60)
    assert code == 200 and state["status"] == "degraded"
    assert set(state["portals"]) == {"beta"}
    broken = broken_by_name(state)
    assert set(broken) == {*HOSTILE, "alpha.yaml"}
    assert broken["alpha.yaml"]["portal"] == "alpha"
    assert "portal.rate_limit.per_10s: must be a number, not true" in broken["alpha.yaml"]["error"]
    exposition = probe.metrics()
    assert (config_errors_gauge(exposition, alpha), config_errors_gauge(exposition, beta)) == (1, 0)


def check_a_reload_with_every_file_fixed(probe: ServiceProbe, folder: Path, alpha: Path) -> None:
    """Every file fixed or gone: ok again."""
    for name in HOSTILE:
        (folder / name).unlink()
    alpha.write_text(alpha.read_text().replace("per_10s: true", "per_10s: 100000"))
    os.kill(probe.proc.pid, signal.SIGHUP)
    code, state = wait_for(lambda: (h := probe.health()) and h[1]["status"] == "ok" and h, 60)
    assert code == 200 and state["broken"] == [] and set(state["portals"]) == {"alpha", "beta"}
    assert "points-nan.yaml" not in probe.metrics()


def check_the_service_log(log: Path) -> None:
    """Every broken file logged with its portal, no traceback; alpha's lease let go when its file broke."""
    found = events(log)
    assert not [line for line in log.read_text().splitlines() if "Traceback" in line]
    errors = [e for e in found if e.get("event") == "config_error"]
    assert {Path(e["file"]).name for e in errors} == {*HOSTILE, "alpha.yaml", "beta.yaml"}
    assert {e["portal"] for e in errors if Path(e["file"]).name == "alpha.yaml"} == {"alpha"}
    # alpha's lease was let go when its file broke, before the service stopped.
    releases = [i for i, e in enumerate(found) if e.get("event") == "lease_released" and e.get("portal") == "alpha"]
    stopping = next(i for i, e in enumerate(found) if e.get("event") == "service_stopping")
    assert releases and releases[0] < stopping


def test_broken_portal_files_are_reported_and_the_others_run_at_start_and_on_sighup(tmp_path: Path) -> None:
    with sandboxes(2, contacts=60) as (a, b):
        folder = tmp_path / "portals"
        folder.mkdir()
        alpha = portal_file(folder, "alpha", 7000, a)
        for name in HOSTILE:
            shutil.copy(BROKEN / name, folder / name)
        beta = portal_file(folder, "beta", 7001, b)
        good_beta = beta.read_text()
        beta.write_text(good_beta.replace("per_10s: 100000", "per_10s: .nan"))
        port = free_port()
        log = tmp_path / "service.log"
        proc = run_service(folder, f"sqlite:///{tmp_path / 'state.db'}", a.token, log, listen=f"127.0.0.1:{port}")
        probe = ServiceProbe(proc, f"http://127.0.0.1:{port}", log)
        try:
            check_the_start(probe, folder, alpha)
            check_a_reload_that_breaks_alpha_and_fixes_beta(probe, alpha, beta, good_beta)
            check_a_reload_with_every_file_fixed(probe, folder, alpha)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    assert proc.returncode == 0
    check_the_service_log(log)


@pytest.mark.parametrize(
    "failure",
    [RecursionError("maximum recursion depth exceeded"), OverflowError("int too large"), OSError(5, "I/O error")],
    ids=["recursion", "overflow", "os"],
)
def test_any_failure_to_open_a_portal_file_is_contained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    with sandboxes(1, contacts=20) as (a,):
        monkeypatch.setenv("LEADSYNC_SERVICE_TOKEN", a.token)
        folder = tmp_path / "portals"
        folder.mkdir()
        portal_file(folder, "alpha", 7000, a)
        odd = portal_file(folder, "odd", 7001, a)

        def opening(file: Path, store: StateStore) -> ConfiguredPortal:
            if file == odd:  # a file that loads, but whose portal cannot be opened
                raise failure
            return open_portal(file, store)

        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        metrics = Metrics()
        service = Service(folder, store, opening, metrics=metrics, lease_ttl_s=6, jitter_s=0)
        with capture_logs() as logs:
            service.load()
        state = service.health()
        store.close()
    assert set(service.portals) == {"alpha"}
    assert state["status"] == "degraded"
    assert state["broken"] == [{"file": str(odd), "portal": "odd", "error": f"{type(failure).__name__}: {failure}"}]
    assert metrics.registry.get_sample_value("leadsync_portal_config_errors", {"file": str(odd)}) == 1
    (event,) = [e for e in logs if e["event"] == "config_error"]
    assert (event["file"], event["portal"]) == (str(odd), "odd")
