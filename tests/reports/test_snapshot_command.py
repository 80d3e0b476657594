"""`leadsync snapshot`: the live portal saved as a snapshot file that scores exactly like the portal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from sync.cli import main
from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.core.scoring import score_at
from sync.sandbox.generator import DEFAULT_NOW_MS
from sync.snapshot import parse_snapshot, read_snapshot
from tests.reports.conftest import StartPortal

NOW_MS = DEFAULT_NOW_MS + 3_600_000


def test_a_saved_snapshot_scores_every_contact_as_the_portal_itself(
    tmp_path: Path, sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]
) -> None:
    sb, file = sandbox_portal(800, 14)
    out = tmp_path / "saved.json"
    assert main(["snapshot", "--config", str(file), "--out", str(out)]) == 0
    everything = parse_snapshot(requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json())
    assert "800 contacts" in capsys.readouterr().err
    saved = read_snapshot(out)
    assert saved.problems == []
    rules = compile_ruleset(load_portal(file).rules)
    ours = {c.id: score_at(c, e, rules, NOW_MS) for c, e in saved.scoring_inputs()}
    theirs = {c.id: score_at(c, e, rules, NOW_MS) for c, e in everything.scoring_inputs()}
    assert len(ours) == 800 and ours == theirs
    assert any(c.list_ids for c in saved.contacts)  # list memberships kept (exclusions read them)
    assert sum(len(e) for e in saved.events_by_email.values()) > 0


def test_the_saved_file_feeds_the_offline_commands(
    tmp_path: Path, sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]
) -> None:
    _, file = sandbox_portal(300, 15)
    out = tmp_path / "saved.json"
    assert main(["snapshot", "--config", str(file), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["backtest", "--config", str(file), "--snapshot", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
