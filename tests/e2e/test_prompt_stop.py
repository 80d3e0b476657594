"""End to end: SIGTERM (and SIGINT) end `leadsync sync` and `leadsync run` promptly while HubSpot answers every
call with a 429 or lets it time out; the run is recorded as interrupted and no alert goes out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.state import SqlStateStore
from tests.factories import ROOT, sandbox_config

TOKEN_ENV = "LEADSYNC_STOP_TOKEN"
HOOK_ENV = "LEADSYNC_STOP_WEBHOOK"
LIMIT_S = 30.0


class Hook:
    """A local webhook that records every message posted to it."""

    def __init__(self) -> None:
        posted: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posted.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.posted = posted
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.server.shutdown()


def portal_file(folder: Path, sb: Sandbox) -> Path:
    config = sandbox_config(sb.url, TOKEN_ENV)
    config["schedule"] = {"every": "1h", "rescore": None, "timezone": "UTC"}
    config["alerts"] = {"webhook_env": HOOK_ENV, "send_resolved": True}
    folder.mkdir(exist_ok=True)
    file = folder / "acme.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def start(args: list[str], sb: Sandbox, hook: Hook) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), TOKEN_ENV: sb.token, HOOK_ENV: hook.url}
    return subprocess.Popen(
        [sys.executable, "-m", "sync", *args, "--log-format", "json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_when_waiting(proc: subprocess.Popen[str], sb: Sandbox, sig: int) -> tuple[float, str, str]:
    """Once HubSpot has refused some calls, send `sig`; returns the seconds to exit, stdout and stderr."""
    deadline = time.monotonic() + 60
    while not sum(sb.stats_json()["faults"].values()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the worker never called the sandbox"
        time.sleep(0.05)
    time.sleep(1.5)  # well into a retry wait (or a call held without an answer)
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=LIMIT_S + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {LIMIT_S + 10} s after the signal:\n{err[-2000:]}")
    took = time.monotonic() - sent
    print(f"exited {took:.2f} s after {signal.Signals(sig).name}")
    return took, out, err


def logged(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def last_run(db: str, file: Path) -> Any:
    store = SqlStateStore(db)
    try:
        runs = store.last_runs(yaml.safe_load(file.read_text())["portal"]["id"], 1)
    finally:
        store.close()
    assert runs, "no run recorded"
    return runs[0]


FAULTS = {"429": {"faults": "429=1"}, "timeout": {"faults": "timeout=1", "fault_timeout_seconds": 2.0}}


@pytest.mark.parametrize(
    ("fault", "sig", "code"),
    [("429", signal.SIGTERM, 143), ("timeout", signal.SIGTERM, 143), ("429", signal.SIGINT, 130)],
)
def test_a_signal_ends_sync_promptly_as_interrupted_without_an_alert(
    tmp_path: Path, hook: Hook, fault: str, sig: int, code: int
) -> None:
    with Sandbox(generate_portal(120, 5), rate_limit="off", **FAULTS[fault]) as sb:  # type: ignore[arg-type]
        file = portal_file(tmp_path / "portals", sb)
        db = f"sqlite:///{tmp_path / 'state.db'}"
        proc = start(["sync", "--config", str(file), "--db", db], sb, hook)
        took, out, err = stop_when_waiting(proc, sb, sig)
    assert proc.returncode == code, err[-2000:]
    assert took < LIMIT_S
    run = last_run(db, file)
    assert run.status == "interrupted" and run.error is None
    events = [e["event"] for e in logged(out)]
    assert "run_interrupted" in events and "alert_sent" not in events
    assert hook.posted == []


@pytest.mark.parametrize("fault", ["429", "timeout"])
def test_sigterm_ends_the_service_promptly_and_its_cycle_as_interrupted(tmp_path: Path, hook: Hook, fault: str) -> None:
    with Sandbox(generate_portal(120, 5), rate_limit="off", **FAULTS[fault]) as sb:  # type: ignore[arg-type]
        folder = tmp_path / "portals"
        file = portal_file(folder, sb)
        db = f"sqlite:///{tmp_path / 'state.db'}"
        proc = start(["run", "--config-dir", str(folder), "--db", db, "--listen", "off"], sb, hook)
        took, out, err = stop_when_waiting(proc, sb, signal.SIGTERM)
    assert proc.returncode == 0, err[-2000:]
    assert took < LIMIT_S
    assert last_run(db, file).status == "interrupted"
    events = [e["event"] for e in logged(out)]
    assert "run_interrupted" in events and "service_stopped" in events and "alert_sent" not in events
    assert hook.posted == []
