"""`--json`: stdout carries exactly one JSON document, logs go to stderr, for every command that has it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from sync.cli import main
from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from tests.factories import sandbox_config

TOKEN_ENV = "LEADSYNC_E2E_JSON_TOKEN"


@pytest.fixture
def portal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Path, Path]]:
    """A sandbox portal, its config (demote on) and a snapshot file of it."""
    with Sandbox(generate_portal(120, 4, portal_id=12345678), rate_limit="off") as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        config = sandbox_config(sb.url, TOKEN_ENV)
        config["model"]["lifecycle"]["demote"] = True
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        snap = tmp_path / "portal.snapshot.json"
        snap.write_text(requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).text)
        yield sb, file, snap


def one_document(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[dict[str, object], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    document = json.loads(out)  # fails on a second document or a log line on stdout
    assert isinstance(document, dict)
    return document, err


def test_sync_json_prints_one_summary_and_logs_to_stderr(
    portal: tuple[Sandbox, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, file, _ = portal
    db = f"sqlite:///{tmp_path / 'state.db'}"
    argv = ["sync", "--config", str(file), "--full", "--db", db, "--json", "--log-level", "info"]
    summary, err = one_document(capsys, argv)
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "run_started" in events and "run_finished" in events
    version = compile_ruleset(load_portal(file).rules).version
    assert summary["portal"] == {"name": "acme-eu", "id": 12345678} and summary["version"] == version
    assert summary["kind"] == "full" and summary["status"] == "ok" and summary["error"] is None
    assert {"run_id", "promotions", "demotions", "stages_held_back", "written"} <= summary.keys()
    assert summary["demotions"] == 0  # a first sync: no stage is leadsync's yet

    again, _ = one_document(capsys, ["sync", "--config", str(file), "--db", db, "--json", "--log-format", "json"])
    assert (again["kind"], again["promotions"], again["demotions"]) == ("incremental", 0, 0)  # named when none


def test_the_sync_summary_line_names_the_portal_version_and_stage_counts(
    portal: tuple[Sandbox, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, file, _ = portal
    assert main(["sync", "--config", str(file), "--db", f"sqlite:///{tmp_path / 's.db'}", "--log-level", "error"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    version = compile_ruleset(load_portal(file).rules).version
    assert line.startswith("acme-eu (portal 12345678): incremental sync ok (run ")
    assert f"rule-set version {version}" in line
    for count in ("promotions", "demotions", "stages_held_back"):
        assert f"{count} " in line


@pytest.mark.parametrize("command", ["score", "plan", "plan-with-db", "explain", "backtest", "report"])
def test_every_json_command_prints_exactly_one_document(
    portal: tuple[Sandbox, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    sb, file, snap = portal
    db = f"sqlite:///{tmp_path / 'state.db'}"
    assert main(["sync", "--config", str(file), "--full", "--db", db, "--log-level", "error"]) == 0
    capsys.readouterr()
    contact = requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()["contacts"][0]["id"]
    argv = {
        "score": ["score", "--config", str(file), "--snapshot", str(snap)],
        "plan": ["plan", "--config", str(file)],
        "plan-with-db": ["plan", "--config", str(file), "--db", db],
        "explain": ["explain", "--config", str(file), "--contact", contact, "--db", db],
        "backtest": ["backtest", "--config", str(file), "--snapshot", str(snap)],
        "report": ["report", "--config", str(file), "--snapshot", str(snap), "--out", str(tmp_path / "r.html")],
    }[command]
    document, _ = one_document(capsys, [*argv, "--json"])
    assert document
