"""`leadsync plan` with an accounts: section: the companies' new account outputs against what HubSpot holds,
counted and listed after the contacts; on the cases' snapshot, and live against a sandbox with companies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.cli import main
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from tests.factories import ROOT, sandbox_config

CASES = ROOT / "tests" / "data" / "accounts"
CONFIG = str(CASES / "accounts.yaml")
CONFIG_MAX = str(CASES / "accounts-max.yaml")
SNAPSHOT = CASES / "snapshot.json"
NOW = "2026-11-01T12:00:00Z"
TOKEN_ENV = "LEADSYNC_PLAN_ACCOUNTS_TOKEN"


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["plan", "--now", NOW, "--json", *argv]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def by_company(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["company_id"]: item for item in items}


def test_plan_counts_the_company_writes_and_grade_changes(capsys: pytest.CaptureFixture[str]) -> None:
    accounts = plan(capsys, "--config", CONFIG, "--snapshot", str(SNAPSHOT))["accounts"]
    assert accounts["companies"] == 5
    assert accounts["counts"] == {"written": 5, "score_changed": 5, "grade_changed": 5}
    assert accounts["update_batches"] == 1
    written = by_company(accounts["companies_written"])
    a1 = written["101"]  # case A1
    assert (a1["before"], a1["after"]) == ({"score": None, "grade": None}, {"score": 100, "grade": "A1"})
    assert a1["writes"]["ls_account_score"] == "100"
    assert a1["writes"]["ls_account_engagement"] == "65"
    assert "ls_account_scored_at" not in a1["writes"]
    assert (written["102"]["after"], written["103"]["after"]) == (
        {"score": 78, "grade": "B1"},
        {"score": 10, "grade": "C3"},
    )  # A2, A3
    assert [c["company_id"] for c in accounts["top_changes"]][:2] == ["101", "102"]  # largest moves first


def test_plan_with_company_reads_scores_contacts_with_their_primary_company(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Case A5 through plan: contact 8 has no company, so company.industry is missing (-5)."""
    document = plan(capsys, "--config", CONFIG, "--snapshot", str(SNAPSHOT))
    contacts = {d["contact_id"]: d for d in document["contacts_written"]}
    assert contacts["1"]["after"]["score"] == 50  # 30 interest + 10 size (1,500) + 10 ENERGY
    assert contacts["8"]["after"]["score"] == 0  # 5 interest - 5 missing industry, size missing


def test_plan_writes_nothing_for_companies_that_hold_their_scores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = plan(capsys, "--config", CONFIG, "--snapshot", str(SNAPSHOT))["accounts"]
    snapshot = json.loads(SNAPSHOT.read_text())
    writes = {c["company_id"]: c["writes"] for c in first["companies_written"]}
    for company in snapshot["companies"]:
        if company["id"] != "103":  # one left as it was: it alone is written
            company["properties"].update(writes[company["id"]])
    company_101 = next(c for c in snapshot["companies"] if c["id"] == "101")
    company_101["properties"]["ls_account_score"] = "100.0"  # HubSpot may hand a number back so
    held = tmp_path / "held.json"
    held.write_text(json.dumps(snapshot))
    again = plan(capsys, "--config", CONFIG, "--snapshot", str(held))["accounts"]
    assert again["counts"] == {"written": 1, "unchanged": 4, "score_changed": 1, "grade_changed": 1}
    assert [c["company_id"] for c in again["companies_written"]] == ["103"]


def test_plan_between_two_configs_compares_their_account_scores(capsys: pytest.CaptureFixture[str]) -> None:
    """Case A4 against A1: the same company rolled up by max instead of sum."""
    accounts = plan(capsys, "--config", CONFIG_MAX, "--base-config", CONFIG, "--snapshot", str(SNAPSHOT))["accounts"]
    a1 = by_company(accounts["top_changes"])["101"]
    assert (a1["before"]["score"], a1["after"]["score"]) == (100, 90)  # fit 50 + (30 + 10)


def test_plan_without_an_accounts_section_has_no_company_part(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(CONFIG).read_text())
    del config["accounts"]
    file = tmp_path / "no-accounts.yaml"
    file.write_text(yaml.safe_dump(config), encoding="utf-8")
    document = plan(capsys, "--config", str(file), "--snapshot", str(SNAPSHOT))
    assert "accounts" not in document
    assert "company_update_batches" not in document["api_calls"]


def test_plan_text_lists_the_changed_companies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", CONFIG, "--snapshot", str(SNAPSHOT), "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "5 companies (account scores): 5 change score, 5 change grade; 5 would be written in 1 batch" in out
    assert "Top 5 changed companies" in out
    assert "Energy Corp" in out


ACCOUNTS: dict[str, Any] = {
    "fit": {
        "max": 100,
        "rules": [
            {"id": "size", "property": "numberofemployees", "bands": [{"gte": 1000, "points": 30}]},
            {"id": "industry", "property": "industry", "map": {"ENERGY": 20, "FINANCE": 10}},
        ],
    },
    "engagement": {"rollup": "top_3", "max": 100, "rules": []},
    "total": {"clamp": [0, 100]},
    "grades": {
        "fit": [{"grade": "A", "min": 40}, {"grade": "B", "min": 15}, {"grade": "C"}],
        "engagement": [{"grade": "1", "min": 40}, {"grade": "2"}],
    },
}


def test_live_plan_predicts_every_company_score_offline_score_gives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a sandbox with companies: the plan reads the companies and their associations in batches, and
    each company's planned score is what `score` gives on the same portal's snapshot."""
    with Sandbox(generate_portal(250, 5, companies=40), rate_limit="off") as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        config = sandbox_config(sb.url, TOKEN_ENV)
        config["accounts"] = ACCOUNTS
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config), encoding="utf-8")
        dump = tmp_path / "dump.json"
        dump.write_text(json.dumps(sb.portal.snapshot()), encoding="utf-8")
        live = plan(capsys, "--config", str(file))
        requests = sb.stats.to_json()["requests"]
    assert main(["score", "--config", str(file), "--snapshot", str(dump), "--now", NOW, "--json"]) == 0
    offline = {c["company_id"]: c for c in json.loads(capsys.readouterr().out)["companies"]}
    accounts = live["accounts"]
    assert accounts["companies"] == 40
    assert accounts["counts"]["written"] == 40  # nothing written yet: every company gets its scores
    planned = by_company(accounts["companies_written"])
    assert {k: (v["after"]["score"], v["after"]["grade"]) for k, v in planned.items()} == {
        k: (v["score"], v["grade"]) for k, v in offline.items()
    }
    assert len({v["after"]["grade"] for v in planned.values()}) > 1  # the portal's companies differ
    association_calls = sum(sum(s.values()) for route, s in requests.items() if "associations" in route)
    assert 1 <= association_calls <= 3  # 250 contacts, 100 a call
