"""`leadsync sandbox` as a process: prints its URL and token, serves, and exits 0 on SIGTERM or SIGINT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "examples" / "acme-eu.snapshot.json"
# The command as sync/cli.py mounts it: a parser with add_sandbox_command on its subparsers.
LAUNCH = """
import argparse, sys
from sync.sandbox.cli import add_sandbox_command
parser = argparse.ArgumentParser(prog="leadsync")
add_sandbox_command(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def launch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "sandbox", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_it_prints_url_and_token_serves_and_exits_0_on_a_signal(
    processes: list[subprocess.Popen[str]], stop: signal.Signals
) -> None:
    process = launch("--contacts", "50", "--seed", "3", "--port", "0", "--token", "t-123", "--json")
    processes.append(process)
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    assert info["token"] == "t-123"
    assert info["contacts"] == 50 and info["companies"] == 0
    assert info["url"].startswith("http://127.0.0.1:") and not info["url"].endswith(":0")
    response = requests.get(
        f"{info['url']}/crm/v3/objects/contacts", headers={"Authorization": "Bearer t-123"}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["X-HubSpot-RateLimit-Max"] == "190"
    process.send_signal(stop)
    assert process.wait(timeout=10) == 0


def test_it_serves_a_snapshot_and_reports_skipped_records(processes: list[subprocess.Popen[str]]) -> None:
    process = launch("--snapshot", str(EXAMPLE), "--rate-limit", "off", "--faults", "500=0")
    processes.append(process)
    assert process.stdout is not None
    first = process.stdout.readline()
    url = first.split(" at ")[1].strip()
    assert process.stdout.readline().strip() == "token: sandbox-token"
    body = requests.get(f"{url}/__sandbox/snapshot", timeout=5).json()
    assert len(body["contacts"]) == 12
    process.terminate()
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    assert "contacts[12]: contact: has no id; skipped" in process.stderr.read()  # as `leadsync score` says it


def test_it_says_how_many_companies_it_serves(processes: list[subprocess.Popen[str]]) -> None:
    process = launch("--contacts", "40", "--companies", "5", "--port", "0", "--portal-id", "777")
    processes.append(process)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("HubSpot sandbox for portal 777 (40 contacts, 5 companies) at ")
    process.terminate()
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--rate-limit", "per10s=many"],
        ["--faults", "500=2"],
        ["--snapshot", "x.json", "--contacts", "5"],
        ["--port", "-1"],
    ],
    ids=["bad-rate-limit", "bad-faults", "snapshot-and-contacts", "negative-port"],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, "sandbox", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr
