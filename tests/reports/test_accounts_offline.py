"""Account scores offline: `score --snapshot` and `explain --company` on a snapshot with companies.

tests/data/accounts holds docs/SCORING.md section 6's example (accounts.yaml; accounts-max.yaml for A4) and a
snapshot whose companies are the cases A1-A3, a contact without a company (A5) and bad input.
"""

from __future__ import annotations

import json
import tracemalloc
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.cli import main
from sync.config import load_portal
from sync.core.model import Company, CompanyAssociation, Contact, with_company
from sync.core.rules import compile_ruleset
from sync.core.scoring import score_at
from sync.reports.accounts import AccountPass, Companies
from tests.factories import ROOT

CASES = ROOT / "tests" / "data" / "accounts"
CONFIG = str(CASES / "accounts.yaml")
SNAPSHOT = str(CASES / "snapshot.json")
NOW = "2026-11-01T12:00:00Z"


def score_document(capsys: pytest.CaptureFixture[str], config: str = CONFIG, *extra: str) -> dict[str, Any]:
    assert main(["score", "--config", config, "--snapshot", SNAPSHOT, "--now", NOW, "--json", *extra]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def by_id(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def points(entry: dict[str, Any], rule: str) -> tuple[bool, float]:
    (line,) = [b for b in entry["breakdown"] if b["rule"] == rule]
    return line["matched"], line["points"]


def summary(company: dict[str, Any]) -> tuple[int, int, int, str]:
    return company["fit"], company["engagement"], company["score"], company["grade"]


# --- cases A1-A5 through score --json ---------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """`score --json` of the cases' snapshot, run once for the module."""
    out = StringIO()
    with redirect_stdout(out):
        assert main(["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW, "--json"]) == 0
    loaded: dict[str, Any] = json.loads(out.getvalue())
    return loaded


def test_a1(document: dict[str, Any]) -> None:
    a1 = by_id(document["companies"], "company_id")["101"]
    assert summary(a1) == (50, 65, 100, "A1")
    assert a1["rollup"] == 55
    assert points(a1, "engagement:rollup") == (True, 55)
    assert points(a1, "exec-engaged") == (True, 10)
    # Contact 3 holds a stale ls_engagement of 95 in HubSpot: this run's 5 is what counts, so two reach 15.
    assert points(a1, "buying-group") == (False, 0)
    assert points(a1, "total:clamp") == (True, -15)
    assert sum(b["points"] for b in a1["breakdown"]) == a1["score"]
    assert a1["contacts"] == {"counted": 3, "excluded": 0}


def test_a2(document: dict[str, Any]) -> None:
    a2 = by_id(document["companies"], "company_id")["102"]
    assert summary(a2) == (15, 63, 78, "B1")
    assert points(a2, "industry") == (False, 0)
    assert points(a2, "buying-group") == (True, 15)
    assert a2["reasons"] == "+48 contacts' interest (sum); +15 size; +15 buying-group"


def test_a3(document: dict[str, Any]) -> None:
    a3 = by_id(document["companies"], "company_id")["103"]
    assert summary(a3) == (10, 0, 10, "C3")
    assert a3["contacts"] == {"counted": 0, "excluded": 1}
    assert points(a3, "exec-engaged") == (False, 0)  # the excluded contact is a CEO: it counts for nothing


def test_a4_rollup_max(capsys: pytest.CaptureFixture[str]) -> None:
    a4 = by_id(score_document(capsys, str(CASES / "accounts-max.yaml"))["companies"], "company_id")["101"]
    assert a4["engagement"] == 40
    assert points(a4, "engagement:rollup") == (True, 30)
    assert points(a4, "exec-engaged") == (True, 10)


def test_a5_a_contact_without_a_company_gets_the_missing_value_behaviour(document: dict[str, Any]) -> None:
    solo = by_id(document["results"], "contact_id")["8"]
    # Its own numberofemployees (800) is not its company's: the bands rule finds no value, the map its `missing`.
    assert points(solo, "company-size") == (False, 0)
    assert points(solo, "company-industry") == (True, -5)
    assert solo["fit"] == -5


def test_contacts_read_their_primary_companys_properties(document: dict[str, Any]) -> None:
    results = by_id(document["results"], "contact_id")
    assert points(results["1"], "company-size") == (True, 10)  # 1,500 employees at company 101
    assert points(results["4"], "company-size") == (True, 5)  # 250 at company 102
    # Contact 3's only company is 101, not marked Primary: the lowest associated id is its primary one.
    assert points(results["3"], "company-industry") == (True, 10)
    # Contact 9: Primary 104 (ENERGY, an unparseable size) wins over the lower id 105 (FINANCE, 50 employees).
    assert points(results["9"], "company-industry") == (True, 10)
    assert points(results["9"], "company-size") == (False, 0)


def test_every_company_is_scored_in_id_order(document: dict[str, Any]) -> None:
    assert [c["company_id"] for c in document["companies"]] == ["101", "102", "103", "104", "105"]
    assert document["companies"][0].keys() >= {
        "fit", "engagement", "score", "grade", "reasons", "breakdown", "contacts", "version", "rollup",
    }  # fmt: skip
    assert {c["version"] for c in document["companies"]} == {document["version"]}


def test_bad_input_is_reported_and_the_rest_scored(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW, "--json"]) == 0
    out, err = capsys.readouterr()
    assert "associations[9]: company 999 is not in the snapshot; skipped" in err
    assert "company 104: numberofemployees 'about 2k' is not a number; rules read it as missing" in err
    vague = by_id(json.loads(out)["companies"], "company_id")["104"]
    assert points(vague, "size") == (False, 0)
    assert summary(vague) == (20, 0, 20, "B3")


def test_a_config_without_accounts_prints_no_companies(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = yaml.safe_load(Path(CONFIG).read_text())
    del config["accounts"]
    file = tmp_path / "contacts-only.yaml"
    file.write_text(yaml.safe_dump(config))
    document = score_document(capsys, str(file))
    assert "companies" not in document
    # company.<property> still reads the primary company without an accounts section.
    assert points(by_id(document["results"], "contact_id")["1"], "company-size") == (True, 10)


def test_contact_filter_shows_its_companies_scored_from_all_contacts(capsys: pytest.CaptureFixture[str]) -> None:
    document = score_document(capsys, CONFIG, "--contact", "2")
    assert [r["contact_id"] for r in document["results"]] == ["2"]
    (company,) = document["companies"]
    assert company["company_id"] == "101" and summary(company) == (50, 65, 100, "A1")


def test_jsonl_prints_companies_after_contacts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW, "--jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert ["contact_id" in line for line in lines] == [True] * 9 + [False] * 5
    assert [line["company_id"] for line in lines[9:]] == ["101", "102", "103", "104", "105"]


def test_the_table_lists_companies_after_contacts_with_an_iso_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", "2026-11-01T14:00:00+02:00"]) == 0
    out = capsys.readouterr().out
    assert "as of 2026-11-01T12:00:00Z" in out
    assert out.index("contacts scored") < out.index("┃ company ") < out.index("5 companies scored")
    assert "A1" in out and "B1" in out and "C3" in out


def test_a_snapshot_without_companies_says_why_no_account_is_scored(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(ROOT / "config" / "examples" / "acme-eu.snapshot.json")
    assert main(["score", "--config", CONFIG, "--snapshot", example, "--now", NOW]) == 0
    out, err = capsys.readouterr()
    assert "0 companies scored" in out
    assert f"{example}: no companies, so no account is scored: `leadsync snapshot` saves" in err


def test_a_snapshot_with_companies_gets_no_such_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW]) == 0
    assert "no account is scored" not in capsys.readouterr().err


# --- the roll-up: one pass, constant memory per company --------------------------------------------


def test_the_pass_keeps_a_tally_per_company_not_the_contacts() -> None:
    loaded = load_portal(CONFIG)
    assert loaded.accounts is not None
    rules = compile_ruleset(loaded.rules)
    n = 20_000
    big = Company("1", {"numberofemployees": "5000", "industry": "ENERGY"})
    companies = Companies.of([big], (CompanyAssociation(str(i), "1", True) for i in range(n)))
    account_pass = AccountPass.build(loaded.accounts, rules, companies)
    expected = 0
    tracemalloc.start()
    try:
        for i in range(n):
            contact = with_company(Contact(str(i), {"planted_interest": "5" if i % 2 else "16"}), big)
            result = score_at(contact, [], rules, 0)
            expected += 5 if i % 2 else 16
            account_pass.add(contact, result, [], 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (account,) = account_pass.results(0)
    assert (account.rollup, account.contacts) == (expected, n)
    assert account.engagement == 100  # capped
    assert peak < 1024 * 1024  # the 20,000 scored contacts are not held: only the tally is


# --- explain --company -------------------------------------------------------------------------------


def explain_company(
    capsys: pytest.CaptureFixture[str], company: str, config: str = CONFIG, *, live: bool = False
) -> dict[str, Any]:
    argv = ["explain", "--config", config, "--now", NOW, "--company", company, "--json"]
    if not live:
        argv += ["--snapshot", SNAPSHOT]
    assert main(argv) == 0
    loaded: dict[str, Any] = json.loads(capsys.readouterr().out)
    return loaded


def test_explain_company_shows_the_roll_up_contact_by_contact(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_company(capsys, "101")
    assert (ex["fit"], ex["engagement"], ex["score"], ex["grade"]) == (50, 65, 100, "A1")
    assert ex["rollup"] == {"how": "sum", "value": 55}
    members = {m["contact_id"]: m for m in ex["roll_up"]}
    assert {cid: (m["interest"], m["counted"], m["matched"]) for cid, m in members.items()} == {
        "1": (30, True, ["buying-group", "exec-engaged"]),
        "2": (20, True, ["buying-group"]),
        "3": (5, True, []),
    }
    assert {m["primary"] for m in members.values()} == {"101"}
    rules = {r["rule"]: r for r in ex["rules"]}
    assert rules["size"]["reads"] == "numberofemployees = '1500'"
    assert rules["total:clamp"]["points"] == -15
    assert ex["grades"][-1] == "grade A1 ({fit}{engagement})"
    assert {h["property"]: h["would_write"] for h in ex["hubspot"]}["ls_account_score"] == "100"


def test_explain_company_shows_excluded_contacts_as_not_counted(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_company(capsys, "103")
    (member,) = ex["roll_up"]
    assert (member["contact_id"], member["interest"], member["counted"], member["status"]) == (
        "7",
        80,
        False,
        "excluded: competitor",
    )
    assert ex["score"] == 10


def test_explain_company_agrees_with_score(capsys: pytest.CaptureFixture[str], document: dict[str, Any]) -> None:
    for company in document["companies"]:
        ex = explain_company(capsys, company["company_id"])
        assert (ex["score"], ex["grade"], ex["reasons"]) == (company["score"], company["grade"], company["reasons"])


def test_explain_company_prints_a_readable_view(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explain", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW, "--company", "102"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "company 102 Retail Co" in out
    assert "score 78 = fit 15 + engagement 63; grade B1" in out
    assert "the roll-up, contact by contact" in out and "buying-group" in out


def test_explain_company_without_accounts_or_company_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["explain", "--config", CONFIG, "--snapshot", SNAPSHOT, "--company", "4242"]
    assert main(argv) == 1 and "no company 4242 in" in capsys.readouterr().err
    config = yaml.safe_load(Path(CONFIG).read_text())
    del config["accounts"]
    file = tmp_path / "contacts-only.yaml"
    file.write_text(yaml.safe_dump(config))
    assert main(["explain", "--config", str(file), "--snapshot", SNAPSHOT, "--company", "101"]) == 1
    assert "has no accounts: section" in capsys.readouterr().err


def test_explain_contact_shows_the_company_values_it_read(capsys: pytest.CaptureFixture[str]) -> None:
    def reads(contact: str) -> dict[str, str]:
        argv = ["explain", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW, "--contact", contact, "--json"]
        assert main(argv) == 0
        return {r["rule"]: r["reads"] for r in json.loads(capsys.readouterr().out)["rules"]}

    assert reads("9")["company-size"] == "company.numberofemployees = 'about 2k'"
    assert reads("8")["company-size"] == "company.numberofemployees is empty (no company)"


def test_live_explain_company_reads_hubspot_and_agrees_with_the_snapshot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.sandbox import Sandbox
    from sync.sandbox.portal import Portal

    raw = json.loads(Path(SNAPSHOT).read_text())
    portal, _ = Portal.from_snapshot(raw, 1_790_000_000_000)
    with Sandbox(portal, rate_limit="off") as sb:
        config = yaml.safe_load(Path(CONFIG).read_text())
        config["portal"].update(base_url=sb.url, token_env="LEADSYNC_ACCOUNTS_TOKEN")
        file = tmp_path / "live.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("LEADSYNC_ACCOUNTS_TOKEN", sb.token)
        for company in ("101", "104"):
            live = explain_company(capsys, company, str(file), live=True)
            offline = explain_company(capsys, company)
            assert live == offline
            assert live["roll_up"]  # its contacts were read
        argv = ["explain", "--config", str(file), "--now", NOW, "--contact", "9", "--json"]
        assert main(argv) == 0
        rules = {r["rule"]: r for r in json.loads(capsys.readouterr().out)["rules"]}
        assert rules["company-size"]["reads"] == "company.numberofemployees = 'about 2k'"


def test_validate_live_does_not_take_company_properties_for_missing_contact_properties(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sync.sandbox import Sandbox
    from sync.sandbox.portal import Portal

    raw = json.loads(Path(SNAPSHOT).read_text())
    portal, _ = Portal.from_snapshot(raw, 1_790_000_000_000)
    with Sandbox(portal, rate_limit="off") as sb:
        config = yaml.safe_load(Path(CONFIG).read_text())
        config["portal"].update(base_url=sb.url, token_env="LEADSYNC_ACCOUNTS_TOKEN")
        file = tmp_path / "live.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("LEADSYNC_ACCOUNTS_TOKEN", sb.token)
        assert main(["validate", str(file), "--live"]) == 0
    out, err = capsys.readouterr()
    assert "company." not in out + err
    assert "ok (portal accounts-cases, checked live" in out
