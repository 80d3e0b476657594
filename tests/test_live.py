"""`leadsync validate --live`: each kind of finding, through the CLI against a sandbox portal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from tests.factories import validate_live

TOKEN_ENV = "LEADSYNC_LIVE_TOKEN"
Config = dict[str, Any]


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(generate_portal(60, 9), rate_limit="off") as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        yield sandbox


def fit_rule(config: Config, rule: dict[str, Any]) -> None:
    config["model"]["fit"]["rules"].append({"id": "probe", **rule})


def lifecycle(config: Config, **changes: Any) -> None:
    config["model"]["lifecycle"].update(changes)


def run(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable[[Config], None]
) -> tuple[int, list[str]]:
    return validate_live(sb.url, TOKEN_ENV, tmp_path, change)


def test_the_reference_config_against_its_portal_has_no_finding(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(sb, tmp_path, capsys, lambda c: None) == (0, [])


CASES: list[tuple[str, Callable[[Config], None], int, str]] = [
    (
        "a property no rule can read",
        lambda c: fit_rule(c, {"property": "budget_owner", "equals": "yes", "points": 5}),
        2,
        "error: model.fit.rules[12]: property budget_owner does not exist in the portal",
    ),
    (
        "an exclusion reading a missing property",
        lambda c: c["exclusions"].append({"reason": "gone", "property": "is_partner", "exists": True}),
        2,
        "error: exclusions[6]: property is_partner does not exist in the portal",
    ),
    (
        "bands on a text property",
        lambda c: fit_rule(c, {"property": "jobtitle", "bands": [{"gt": 3, "points": 1}]}),
        0,
        "warning: model.fit.rules[12]: bands can never match: jobtitle is a string property in the portal",
    ),
    (
        "gt on an enumeration",
        lambda c: fit_rule(c, {"property": "industry", "gt": 3, "points": 1}),
        0,
        "warning: model.fit.rules[12]: gt can never match: industry is a enumeration property in the portal",
    ),
    (
        "contains on a number",
        lambda c: fit_rule(c, {"property": "numberofemployees", "contains": "1", "points": 1}),
        0,
        "warning: model.fit.rules[12]: contains can never match: numberofemployees is a number property",
    ),
    (
        "a map key that is not an option",
        lambda c: c["model"]["fit"]["rules"][1]["map"].update({"ENERGIE": 3}),
        0,
        "warning: model.fit.rules[1].map: 'ENERGIE' is not an option of industry; its options are: ENERGY, OIL_GAS",
    ),
    (
        "an equals value that is not an option",
        lambda c: fit_rule(c, {"property": "hs_analytics_source", "in": ["DIRECT_TRAFFIC", "TV"], "points": 1}),
        0,
        "warning: model.fit.rules[12]: 'tv' is not an option of hs_analytics_source",
    ),
    (
        "a stage the portal does not have",
        lambda c: lifecycle(
            c,
            order=[
                "subscriber",
                "lead",
                "discovery",
                "marketingqualifiedlead",
                "salesqualifiedlead",
                "opportunity",
                "customer",
                "evangelist",
                "other",
            ],
            stages=[{"stage": "discovery", "min_score": 30}, {"stage": "salesqualifiedlead", "min_score": 80}],
        ),
        2,
        "error: model.lifecycle.stages[0].stage: 'discovery' is not a lifecycle stage of the portal",
    ),
    (
        "a list that does not exist",
        lambda c: c["exclusions"].append({"reason": "gone", "hubspot_list": 4242}),
        2,
        "error: exclusions[6]: hubspot_list 4242: the portal has no such list",
    ),
    (
        "a form name no form has",
        lambda c: c["model"]["engagement"]["rules"][4].update(form_name_contains=["webinar", "roadshow"]),
        0,
        "warning: model.engagement.rules[4].form_name_contains: no form of the portal has 'roadshow' in its name",
    ),
    (
        "a segment no contact is in",
        lambda c: c.update(
            models=[
                {**c["model"], "name": "mars", "segment": {"property": "country", "equals": "Mars"}},
                {**c.pop("model"), "name": "rest"},
            ]
        ),
        0,
        "warning: models[0].segment: matches none of all 60 contacts of the portal",
    ),
]


@pytest.mark.parametrize(("change", "code", "finding"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_kind_of_finding(
    sb: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Config], None],
    code: int,
    finding: str,
) -> None:
    got, lines = run(sb, tmp_path, capsys, change)
    assert any(line.startswith(finding) for line in lines), lines
    assert got == code
    assert sb.portal.write_log() == []


def test_a_custom_stage_the_portal_has_passes(sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sb.portal.add_lifecycle_stage("discovery", "Discovery")
    order = [
        "subscriber", "lead", "discovery", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
        "customer", "evangelist", "other",
    ]  # fmt: skip
    stages_cfg = [{"stage": "discovery", "min_score": 30}, {"stage": "salesqualifiedlead", "min_score": 80}]
    assert run(sb, tmp_path, capsys, lambda c: lifecycle(c, order=order, stages=stages_cfg)) == (0, [])
