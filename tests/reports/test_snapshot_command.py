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


def test_a_portal_file_that_reads_companies_saves_the_companies_and_their_associations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from sync.sandbox import Sandbox
    from sync.sandbox.generator import generate_portal
    from tests.factories import sandbox_config
    from tests.reports.test_plan_accounts import ACCOUNTS

    with Sandbox(generate_portal(200, 5, companies=30), rate_limit="off") as sb:
        monkeypatch.setenv("LEADSYNC_TEST_TOKEN", sb.token)
        config = sandbox_config(sb.url, "LEADSYNC_TEST_TOKEN")
        config["accounts"] = ACCOUNTS
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config), encoding="utf-8")
        out = tmp_path / "saved.json"
        assert main(["snapshot", "--config", str(file), "--out", str(out)]) == 0
        everything = parse_snapshot(sb.portal.snapshot())
    assert "30 companies" in capsys.readouterr().err
    saved = read_snapshot(out)
    assert saved.problems == []
    assert sorted(c.id for c in saved.companies) == sorted(c.id for c in everything.companies)
    assert {(a.contact_id, a.company_id, a.primary) for a in saved.associations} == {
        (a.contact_id, a.company_id, a.primary) for a in everything.associations
    }
    assert main(["score", "--config", str(file), "--snapshot", str(out), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["companies"]) == 30


def _saved_both_ways(file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, str]:
    whole, lines = tmp_path / "saved.json", tmp_path / "saved.jsonl"
    for out in (whole, lines):
        assert main(["snapshot", "--config", str(file), "--out", str(out), "--now", "2026-11-29T00:00:00Z"]) == 0
    return whole, lines, capsys.readouterr().err


def test_a_lines_snapshot_is_written_as_the_portal_is_read_and_reads_back_as_the_document(
    tmp_path: Path, sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]
) -> None:
    from sync.snapshot.lines import SnapshotStream, is_lines

    _, file = sandbox_portal(700, 16)
    whole, lines, err = _saved_both_ways(file, tmp_path, capsys)
    assert is_lines(lines) and not is_lines(whole)
    assert err.count("700 contacts") == 2
    document = read_snapshot(whole)
    stream = SnapshotStream(lines)
    assert list(stream.inputs()) == list(document.scoring_inputs())
    assert sum(len(e) for e in document.events_by_email.values()) > 500
    assert stream.problems == document.problems == []
    assert (stream.unattached_events, stream.ignored_events) == (document.unattached_events, document.ignored_events)
    assert read_snapshot(lines).contacts == document.contacts  # list memberships too


def test_a_lines_snapshot_keeps_the_companies_and_associations_read_page_by_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from sync.sandbox import Sandbox
    from sync.sandbox.generator import generate_portal
    from tests.factories import sandbox_config
    from tests.reports.test_plan_accounts import ACCOUNTS

    with Sandbox(generate_portal(250, 5, companies=30), rate_limit="off") as sb:
        monkeypatch.setenv("LEADSYNC_TEST_TOKEN", sb.token)
        config = sandbox_config(sb.url, "LEADSYNC_TEST_TOKEN")
        config["accounts"] = ACCOUNTS
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config), encoding="utf-8")
        whole, lines, _ = _saved_both_ways(file, tmp_path, capsys)
    document, streamed = read_snapshot(whole), read_snapshot(lines)
    assert streamed.companies == document.companies and len(document.companies) == 30
    assert sorted(streamed.associations, key=repr) == sorted(document.associations, key=repr)
    assert len(document.associations) > 100
    assert streamed.problems == document.problems == []
