"""score --json, explain, plan, backtest and report show the product-interest scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.cli import main
from sync.core.model import Contact, Event
from sync.reports.backtest import parse_outcome, run_backtest
from sync.reports.explain import explain
from sync.reports.plan import build_plan
from tests.factories import NOW_MS, contact, example_data, form, rules_from

ROOT = Path(__file__).resolve().parent.parent.parent
CONFIG = ROOT / "config" / "portals" / "interests-example.yaml"
SNAPSHOT = ROOT / "config" / "examples" / "acme-eu.snapshot.json"
NOW = "2026-11-01T12:00:00Z"
LEVELS = {f"s{n}": n for n in range(101)}
RULES = rules_from(
    {
        **example_data(),
        "interests": [
            {"name": "a", "rules": [{"id": "level", "property": "a_level", "map": LEVELS}]},
            {
                "name": "b",
                "segment": {"property": "industry", "equals": "ENERGY"},
                "properties": {"reasons": False},
                "rules": [{"id": "ebook", "event": "form_submission", "form_name_contains": ["ebook"], "points": 20}],
            },
        ],
    }
)


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_score_json_carries_each_contacts_interests(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(["score", "--config", str(CONFIG), "--snapshot", str(SNAPSHOT), "--now", NOW, "--json"], capsys)
    first = out["results"][0]
    assert [i["name"] for i in first["interests"]] == ["grid_analytics", "energy_data"]
    for interest in (i for r in out["results"] for i in r["interests"] if i["score"] is not None):
        assert round(sum(line["points"] for line in interest["breakdown"]), 2) == interest["score"]
    assert any(i["score"] is None for r in out["results"] for i in r["interests"])  # outside energy_data's segment


def test_score_json_without_interests_has_no_interests_key(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(CONFIG.parent / "example.yaml")
    out = run_json(["score", "--config", example, "--snapshot", str(SNAPSHOT), "--now", NOW, "--json"], capsys)
    assert "interests" not in out["results"][0]


def test_explain_shows_each_interest_rule_by_rule() -> None:
    c = contact(industry="FINANCE", a_level="s30")
    ex = explain(c, [form("e1", 2, name="Energy ebook")], RULES, NOW_MS).json()
    a, b = ex["interests"]
    assert (a["name"], a["score"], a["reasons"]) == ("a", 30, "+30 level=s30")
    assert [r["rule"] for r in a["rules"]] == ["level"] and a["rules"][0]["matched"]
    assert b["score"] is None and "outside it" in b["segment"]
    held = {row["property"]: row["would_write"] for row in ex["hubspot"]}
    assert held["ls_interest_a"] == "30" and held["ls_interest_a_reasons"] == "+30 level=s30"
    assert "ls_interest_b" in held and "ls_interest_b_reasons" not in held


def test_explain_prints_the_interests(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "--config", str(CONFIG), "--snapshot", str(SNAPSHOT), "--contact", "101", "--now", NOW])
    out = capsys.readouterr().out
    assert code == 0
    assert "interest grid_analytics:" in out and "interest energy_data:" in out and "never moves a stage" in out


def test_plan_counts_the_contacts_written_per_interest_property() -> None:
    inputs: list[tuple[Contact, list[Event]]] = [
        (contact("1", a_level="s10"), []),
        (contact("2", a_level="s10", ls_interest_a="10", ls_interest_a_reasons="+10 level=s10"), []),
        (contact("3", industry="ENERGY", a_level="s10"), [form("e1", 2, name="Energy ebook")]),
    ]
    report = build_plan(iter(inputs), RULES, NOW_MS, source="test")
    assert report.interest_json() == [
        {"interest": "a", "property": "ls_interest_a", "contacts": 2},
        {"interest": "a", "property": "ls_interest_a_reasons", "contacts": 2},
        {"interest": "b", "property": "ls_interest_b", "contacts": 1},
    ]
    assert report.json(top=5)["interest_writes"] == report.interest_json()


def test_backtest_gives_conversion_by_band_of_each_interest() -> None:
    def person(cid: str, level: int, won: bool) -> tuple[Contact, list[Event]]:
        return contact(cid, stage="customer" if won else "lead", a_level=f"s{level}"), []

    people = [person("1", 5, False), person("2", 8, False), person("3", 25, True), person("4", 28, False)]
    bt = run_backtest(iter(people), RULES, NOW_MS, parse_outcome("lifecyclestage=opportunity|customer"))
    a, b = bt.interests
    assert [(band.label, band.counts.contacts, band.counts.converted) for band in a.bands] == [
        ("0-9", 2, 0),
        ("10-19", 0, 0),
        ("20-28", 2, 1),
    ]
    assert b.overall.contacts == 0 and b.bands == []  # nobody in its segment
    assert bt.json()["interests"][0]["name"] == "a"


def test_the_html_report_has_a_section_for_the_interests(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    argv = ["report", "--config", str(CONFIG), "--snapshot", str(SNAPSHOT), "--now", NOW, "--out", str(out)]
    assert main(argv) == 0
    html = out.read_text()
    assert "Product-interest scores</h2>" in html and "<h3>grid_analytics:" in html and "<h3>energy_data:" in html
