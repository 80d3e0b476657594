"""End to end: account scores synced into a sandbox portal with companies over loopback HTTP, state in SQLite,
and every company's written score checked against what the offline `leadsync score` predicts from the portal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.app import open_portal
from sync.cli import main
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, Portal
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.store.state import SqlStateStore
from tests.factories import ROOT, sandbox_config
from tests.fakes import ManualClock

T0_MS = DEFAULT_NOW_MS + 3_600_000
ACCOUNTS = ROOT / "config" / "portals" / "accounts-example.yaml"
CONTACTS, COMPANIES = 1200, 150


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Portal, Path]]:
    clock = ManualClock.at_ms(T0_MS)
    hubspot = generate_portal(CONTACTS, 17, portal_id=12345679, companies=COMPANIES)
    with Sandbox(hubspot, rate_limit="off", clock=clock.seconds) as sb:
        (tmp_path / "example.yaml").write_text(yaml.safe_dump(sandbox_config(sb.url, "LEADSYNC_E2E_TOKEN")))
        file = tmp_path / "accounts.yaml"
        file.write_text(ACCOUNTS.read_text())  # extends: example.yaml, the one above
        monkeypatch.setenv("LEADSYNC_E2E_TOKEN", sb.token)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
        portal.clock = clock
        yield sb, portal, file
        store.close()


def predicted(sb: Sandbox, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The companies of `leadsync score --json` on the sandbox's snapshot, as of the cycle's time."""
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps(requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()))
    now = datetime.fromtimestamp(T0_MS / 1000, UTC).isoformat()
    capsys.readouterr()
    assert main(["score", "--config", str(config), "--snapshot", str(snapshot), "--now", now, "--json"]) == 0
    companies: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["companies"]
    return companies


def test_every_company_holds_the_score_the_offline_score_predicts_and_a_second_sync_writes_nothing(
    world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb, portal, config = world
    first = Cycle(portal, "full").run()
    assert first.status == "ok", first.error
    assert first.counts["companies_scored"] == COMPANIES and first.counts["companies_written"] == COMPANIES

    expected = predicted(sb, config, tmp_path, capsys)
    assert len(expected) == COMPANIES
    off = []
    for company in expected:
        props = sb.portal.contact_properties(company["company_id"], "companies") or {}
        held = (props.get("ls_account_score"), props.get("ls_account_fit"), props.get("ls_account_grade"))
        if held != (str(company["score"]), str(company["fit"]), company["grade"]):
            off.append((company["company_id"], held, company["score"], company["grade"]))
    assert off == []
    assert len({c["score"] for c in expected}) > 5  # the planted signal spreads the scores

    contact_writes = len(sb.portal.write_log(0))
    company_writes = len(sb.portal.write_log(0, "companies"))
    second = Cycle(portal, "incremental").run()
    assert second.status == "ok", second.error
    assert second.counts.get("companies_written", 0) == 0 and second.counts.get("written", 0) == 0
    assert len(sb.portal.write_log(0, "companies")) == company_writes
    assert len(sb.portal.write_log(0)) == contact_writes
