"""The `interests:` section of a portal file (docs/SCORING.md section 7): what it builds, what it refuses (each
problem at its line), and the example file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.config import build_portal, json_schema, load_portal
from sync.core.rules import EventRule, InterestProperties, MapRule, compile_ruleset
from sync.errors import ConfigError
from tests.factories import EXAMPLE, ROOT, example_data

EXAMPLE_INTERESTS = ROOT / "config" / "portals" / "interests-example.yaml"
RULE = {"id": "pricing", "event": "form_submission", "page_url_contains": ["/pricing"], "points": 20}

Change = Callable[[dict[str, Any]], None]


def with_interests(*interests: dict[str, Any]) -> dict[str, Any]:
    data = example_data()
    data["interests"] = list(interests)
    return data


def problems(*interests: dict[str, Any], change: Change | None = None) -> list[tuple[str, str]]:
    data = with_interests(*interests)
    if change is not None:
        change(data)
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("p.yaml"))
    return [(p.path, p.message) for p in info.value.problems]


def test_an_interest_builds_its_rules_outputs_segment_decay_and_clamp() -> None:
    interest = {
        "name": "grid",
        "segment": {"property": "industry", "equals": "ENERGY"},
        "max": 80,
        "rules": [RULE, {"id": "need", "property": "need_level", "map": {"core": 10}}],
        "decay": {"inactivity": [{"after_days": 30, "points": -5}]},
        "total": {"clamp": [0, 100]},
    }
    spec = build_portal(with_interests(interest), Path("p.yaml")).rules.interests[0]
    assert spec.name == "grid"
    assert spec.properties == InterestProperties("ls_interest_grid", "ls_interest_grid_reasons")
    assert [type(r) for r in spec.rules.rules] == [EventRule, MapRule]
    assert spec.rules.max == 8000 and spec.clamp == (0, 100)
    assert spec.segment is not None and spec.decay is not None and spec.decay.steps[0].points == -500


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"score": "ls_a"}, InterestProperties("ls_a", "ls_interest_grid_reasons")),
        ({"reasons": "ls_a_why"}, InterestProperties("ls_interest_grid", "ls_a_why")),
        ({"reasons": False}, InterestProperties("ls_interest_grid", None)),
    ],
)
def test_output_names_are_configurable(properties: dict[str, Any], expected: InterestProperties) -> None:
    spec = build_portal(with_interests({"name": "grid", "properties": properties, "rules": [RULE]}), Path("p.yaml"))
    assert spec.rules.interests[0].properties == expected


@pytest.mark.parametrize(
    ("interests", "path", "message"),
    [
        ([{"name": "Grid", "rules": [RULE]}], "interests[0].name", "should match pattern"),
        ([{"name": "grid-a", "rules": [RULE]}], "interests[0].name", "should match pattern"),
        ([{"name": "a" * 61, "rules": [RULE]}], "interests[0].name", "at most 60 characters"),
        ([{"name": "grid", "rules": [RULE], "color": "red"}], "interests[0].color", "unknown key"),
        ([{"name": "grid", "properties": {"reasons": True}, "rules": [RULE]}], "interests[0].properties.reasons", ""),
        ([{"name": "grid", "rules": []}], "interests[0].rules", "needs at least one rule"),
        (
            [{"name": "grid", "rules": [RULE]}, {"name": "grid", "rules": [RULE]}],
            "interests[1].name",
            "duplicate interest name 'grid' (also interests[0])",
        ),
        ([{"name": "grid", "rules": [RULE, RULE]}], "interests[0].rules[1].id", "duplicate rule id 'pricing'"),
        (
            [{"name": "grid", "rules": [{**RULE, "map": {"a": 1}}]}],
            "interests[0].rules[0]",
            "not map and event",
        ),
        (
            [{"name": "grid", "rules": [RULE], "total": {"clamp": [10, 0]}}],
            "interests[0].total.clamp",
            "low <= high",
        ),
        (
            [{"name": "grid", "rules": [RULE], "segment": {"property": "industry", "contains": ""}}],
            "interests[0].segment.contains",
            "empty value",
        ),
    ],
)
def test_a_bad_interest_is_refused_clearly(interests: list[dict[str, Any]], path: str, message: str) -> None:
    found = problems(*interests)
    assert any(p == path and message in m for p, m in found), found


@pytest.mark.parametrize(
    ("properties", "path", "message"),
    [
        ({"score": "ls_score"}, "interests[0].properties.score", "ls_score is also the lead score's score"),
        ({"reasons": "ls_reasons"}, "interests[0].properties.reasons", "ls_reasons is also the lead score's reasons"),
        ({"score": "ls_scored_at"}, "interests[0].properties.score", "is also the lead score's scored_at"),
        ({"score": "hubspotscore"}, "interests[0].properties.score", "hubspotscore is a HubSpot default property"),
        ({"reasons": "hs_lead_status"}, "interests[0].properties.reasons", "is a HubSpot default property"),
        ({"score": "lifecyclestage"}, "interests[0].properties.score", "is a HubSpot default property"),
        ({"score": "ls_x", "reasons": "ls_x"}, "interests[0].properties.reasons", "is also the score of interest"),
    ],
)
def test_an_output_that_is_not_leadsyncs_own_or_not_its_own_is_refused(
    properties: dict[str, Any], path: str, message: str
) -> None:
    found = problems({"name": "grid", "properties": properties, "rules": [RULE]})
    assert any(p == path and message in m for p, m in found), found


def test_two_interests_may_not_share_an_output() -> None:
    found = problems(
        {"name": "a", "rules": [RULE]},
        {"name": "b", "properties": {"score": "ls_interest_a"}, "rules": [RULE]},
    )
    assert found == [
        (
            "interests[1].properties.score",
            "interest 'b': ls_interest_a is also the score of interest 'a': each output needs a name of its own",
        )
    ]


def test_a_default_name_that_clashes_is_reported_at_the_interests_name() -> None:
    def lead_output(d: dict[str, Any]) -> None:
        d["properties"]["score"] = "ls_interest_a"

    found = problems({"name": "a", "rules": [RULE]}, change=lead_output)
    assert ("interests[0].name", "interest 'a': ls_interest_a is also the lead score's score (properties.score): "
            "each output needs a name of its own") in found  # fmt: skip


def test_an_account_output_is_reserved_too() -> None:
    def accounts(d: dict[str, Any]) -> None:
        d["accounts"] = {
            "fit": {"rules": [{"id": "s", "property": "numberofemployees", "bands": [{"gte": 1, "points": 1}]}]}
        }

    found = problems({"name": "a", "properties": {"score": "ls_account_score"}, "rules": [RULE]}, change=accounts)
    assert any("is also the account score" in m for _, m in found), found


@pytest.mark.parametrize(
    "reader",
    [
        {"id": "loop", "property": "ls_interest_a", "gte": 10, "points": 5},  # the lead score reads it
        {"id": "loop", "property": "ls_interest_a_reasons", "map": {"x": 1}},
    ],
)
def test_an_output_a_rule_reads_is_refused(reader: dict[str, Any]) -> None:
    def reads(d: dict[str, Any]) -> None:
        d["model"]["fit"]["rules"].append(reader)

    found = problems({"name": "a", "rules": [RULE]}, change=reads)
    assert any(p == "interests[0].name" and "is read by model.fit.rules[12]" in m for p, m in found), found


def test_an_interest_rule_reading_the_lead_score_is_refused() -> None:
    reader = {"id": "hot", "property": "ls_score", "gte": 50, "points": 10}
    found = problems({"name": "a", "rules": [RULE, reader]})
    assert any(p == "properties.score" and "is read by interests[0].rules[1]" in m for p, m in found), found


def test_problems_name_the_line_of_the_file(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(
        f"extends: {EXAMPLE}\n"
        "portal: {id: 5, name: five}\n"
        "interests:\n"
        "  - name: grid\n"
        "    rules:\n"
        "      - {id: a, event: email_click, points: 1}\n"
        "  - name: energy\n"
        "    properties:\n"
        "      score: ls_interest_grid\n"
        "    rules:\n"
        "      - {id: b, event: email_open, points: 1}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_portal(file)
    (problem,) = info.value.problems
    assert (problem.line, problem.path) == (9, "interests[1].properties.score")
    assert "ls_interest_grid is also the score of interest 'grid'" in problem.message


def test_the_section_is_in_the_json_schema_with_descriptions() -> None:
    schema = json_schema()
    assert "interests" in schema["properties"] and schema["properties"]["interests"]["description"]
    for name in ("InterestModel", "InterestPropertiesModel"):
        fields = schema["$defs"][name]["properties"]
        assert fields and all(str(f.get("description", "")).strip() for f in fields.values()), name


def test_the_example_file_loads_with_two_interests_the_second_in_a_segment() -> None:
    loaded = load_portal(EXAMPLE_INTERESTS)
    grid, energy = loaded.rules.interests
    assert (grid.name, energy.name) == ("grid_analytics", "energy_data")
    assert grid.segment is None and energy.segment is not None
    assert energy.properties == InterestProperties("ls_interest_energy_data", None)
    rules = compile_ruleset(loaded.rules)
    assert "need_level" in rules.properties_read and "email_click" in rules.event_kinds
    assert loaded.rules.models == load_portal(EXAMPLE).rules.models  # the lead score is example.yaml's
