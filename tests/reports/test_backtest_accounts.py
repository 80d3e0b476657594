"""`leadsync backtest` and `leadsync report` with an accounts: section: conversion by account band and grade,
where a company converted when any of its counted contacts did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.cli import main
from sync.sandbox.generator import generate_portal
from tests.factories import ROOT, example_data
from tests.reports.conftest import NOW as GENERATED_NOW

CASES = ROOT / "tests" / "data" / "accounts"
CONFIG = str(CASES / "accounts.yaml")
SNAPSHOT = CASES / "snapshot.json"
NOW = "2026-11-01T12:00:00Z"


def converted_snapshot(tmp_path: Path, *contact_ids: str) -> str:
    """The cases' snapshot with these contacts become customers."""
    snapshot = json.loads(SNAPSHOT.read_text())
    for contact in snapshot["contacts"]:
        if contact["id"] in contact_ids:
            contact["properties"]["lifecyclestage"] = "customer"
    file = tmp_path / "converted.json"
    file.write_text(json.dumps(snapshot), encoding="utf-8")
    return str(file)


def backtest(capsys: pytest.CaptureFixture[str], config: str, snapshot: str) -> dict[str, Any]:
    assert main(["backtest", "--config", config, "--snapshot", snapshot, "--now", NOW, "--json"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def grades(accounts: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {g["grade"]: (g["companies"], g["converted"]) for g in accounts["grades"]}


def test_a_company_converts_when_any_of_its_contacts_does(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Contact 1 converts Energy Corp (A1); contact 9 converts both its companies, Primary or not."""
    accounts = backtest(capsys, CONFIG, converted_snapshot(tmp_path, "1", "9"))["accounts"]
    # Finance Ltd (103) has only an excluded contact: nothing there could convert, so it is left out.
    assert accounts["companies"] == {"total": 5, "scored": 4, "without_counted_contacts": 1}
    assert accounts["base_rate"] == {"companies": 4, "converted": 3, "rate": 0.75}
    assert grades(accounts) == {"A1": (1, 1), "B1": (1, 0), "B3": (1, 1), "C3": (1, 1)}
    bands = {b["label"]: (b["companies"], b["converted"], b["lift"]) for b in accounts["score_bands"]}
    assert bands["100"] == (1, 1, 1.3333)
    assert bands["70-79"] == (1, 0, 0.0)


def test_an_excluded_contact_converts_no_company(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    accounts = backtest(capsys, CONFIG, converted_snapshot(tmp_path, "7"))["accounts"]  # the competitor
    assert accounts["base_rate"]["converted"] == 0


def test_account_grades_are_listed_best_first(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    accounts = backtest(capsys, CONFIG, converted_snapshot(tmp_path, "4"))["accounts"]
    assert [g["grade"] for g in accounts["grades"]] == ["A1", "B1", "B3", "C3"]
    assert grades(accounts)["B1"] == (1, 1)


def test_backtest_text_shows_the_account_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["backtest", "--config", CONFIG, "--snapshot", converted_snapshot(tmp_path, "1"), "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "Conversion by account band" in out
    assert "Conversion by account grade" in out
    assert "1 of 4 companies with counted contacts" in out


def test_a_portal_without_accounts_has_no_account_part(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = yaml.safe_load(Path(CONFIG).read_text())
    del config["accounts"]
    file = tmp_path / "no-accounts.yaml"
    file.write_text(yaml.safe_dump(config), encoding="utf-8")
    snapshot = converted_snapshot(tmp_path, "1")
    assert "accounts" not in backtest(capsys, str(file), snapshot)
    out = tmp_path / "report.html"
    argv = ["report", "--config", str(file), "--snapshot", snapshot, "--now", NOW, "--out", str(out)]
    assert main([*argv, "--db", f"sqlite:///{tmp_path / 'none.db'}"]) == 0
    page = out.read_text()
    assert "chart-account" not in page
    assert "Accounts:" not in page


def test_report_charts_conversion_by_account_band_and_grade(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    snapshot = converted_snapshot(tmp_path, "1", "4")
    argv = ["report", "--config", CONFIG, "--snapshot", snapshot, "--now", NOW, "--out", str(out)]
    assert main([*argv, "--db", f"sqlite:///{tmp_path / 'none.db'}"]) == 0
    page = out.read_text()
    assert 'id="chart-account-conversion-by-band"' in page
    assert 'id="chart-account-grade-matrix"' in page
    assert "<h2>Accounts: conversion by account band</h2>" in page
    assert "2 of 4 companies (50.0%)" in page
    assert f'data-charts="{page.count("<img class=")}"' in page  # the account charts are counted as charts


ACCOUNTS: dict[str, Any] = {
    "fit": {
        "rules": [
            {"id": "size", "property": "numberofemployees", "bands": [{"gte": 1000, "points": 30}]},
            {"id": "industry", "property": "industry", "map": {"ENERGY": 20, "FINANCE": 20}},
        ]
    },
    "grades": {"fit": [{"grade": "A", "min": 50}, {"grade": "C"}], "engagement": [{"grade": "1"}]},
}


def test_the_planted_account_signal_shows_in_the_account_grades(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The generator puts converted contacts in high-fit companies (ENERGY or FINANCE, 1,000+ employees)
    far more often: back-tested, the A companies convert more often than the C ones."""
    snapshot = tmp_path / "portal.json"
    snapshot.write_text(json.dumps(generate_portal(1200, 3, companies=150).snapshot()), encoding="utf-8")
    config = example_data()
    config["accounts"] = ACCOUNTS
    file = tmp_path / "portal.yaml"
    file.write_text(yaml.safe_dump(config), encoding="utf-8")
    argv = ["backtest", "--config", str(file), "--snapshot", str(snapshot), "--now", GENERATED_NOW, "--json"]
    assert main(argv) == 0
    rates = {g["grade"]: g for g in json.loads(capsys.readouterr().out)["accounts"]["grades"]}
    assert rates["A1"]["companies"] >= 10 and rates["C1"]["companies"] >= 10
    assert rates["A1"]["rate"] > rates["C1"]["rate"]
