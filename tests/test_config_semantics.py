"""Configs that load but could not work are errors; equivalent configs share one rule-set version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.config import build_portal
from sync.core.scoring import score
from sync.errors import ConfigError
from tests.factories import NOW, contact, example_data, rules_from

Change = Callable[[dict[str, Any]], None]


def problems(change: Change) -> list[tuple[str, str]]:
    data = example_data()
    change(data)
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("p.yaml"))
    return [(p.path, p.message) for p in info.value.problems]


def version(change: Change) -> str:
    data = example_data()
    change(data)
    return build_portal(data, Path("p.yaml")).rules.version


def engagement_rule(**rule: Any) -> Change:
    return lambda d: d["model"]["engagement"]["rules"].append(rule)


def two_models(d: dict[str, Any]) -> None:
    model = d.pop("model")
    d["models"] = [
        {**model, "name": "all"},
        {**model, "name": "ro", "segment": {"property": "country", "equals": "RO"}},
    ]


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (
            engagement_rule(id="x", event="form_submission", form_id=[], points=5),
            "model.engagement.rules[10].form_id",
            "empty list",
        ),
        (
            engagement_rule(id="x", event="email_click", campaign_id=[], points=5),
            "model.engagement.rules[10].campaign_id",
            "empty list",
        ),
        (
            lambda d: d["exclusions"].append({"reason": "typo", "property": "jobtitle", "contains": ""}),
            "exclusions[6].contains",
            "empty value",
        ),
        (
            lambda d: d["exclusions"].append({"reason": "none", "email_domain_in": []}),
            "exclusions[6].email_domain_in",
            "empty list",
        ),
        (
            lambda d: d["exclusions"].append({"reason": "none", "hubspot_list": []}),
            "exclusions[6].hubspot_list",
            "empty list",
        ),
        (two_models, "models[1]", "unreachable: model 'all' before it has no segment"),
        (
            lambda d: d["model"]["lifecycle"]["never_touch"].append("marketingqualifiedlead"),
            "model.lifecycle.never_touch[4]",
            "set by this model",
        ),
        (
            lambda d: d["model"]["lifecycle"]["stages"][1].update(min_score=150),
            "model.lifecycle.stages[1].min_score",
            "clamped to at most 100",
        ),
        (lambda d: d["model"]["grades"]["fit"][0].update(min=150), "model.grades.fit[0].min", "fit is capped at 100"),
        (lambda d: d["model"]["engagement"]["decay"].update(events=[]), "model.engagement.decay.events", "is empty"),
        (lambda d: d["model"]["lifecycle"].update(mode="rules"), "model.lifecycle.stages", "only in mode: score"),
        (
            engagement_rule(id="x", event="form_submission", include_filtered=True, points=5),
            "model.engagement.rules[10].include_filtered",
            "never bot-filtered",
        ),
    ],
)
def test_a_config_that_could_not_work_is_an_error(change: Change, path: str, message: str) -> None:
    found = problems(change)
    assert any(p == path and message in m for p, m in found), found


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["model"]["fit"]["rules"][1].pop("default"), id="explicit-default-0-dropped"),
        pytest.param(
            lambda d: d["model"]["fit"]["rules"][6].update(contains=["CEO", "cto", "Founder", "owner"]), id="case"
        ),
        pytest.param(
            lambda d: d["model"]["engagement"]["rules"][4].update(form_name_contains="webinar"), id="string-vs-list"
        ),
        pytest.param(lambda d: d.update(models=[{**d.pop("model"), "name": "default"}]), id="model-vs-models"),
        pytest.param(lambda d: d["properties"].update(score="acme_score", group="acme"), id="output-names"),
        pytest.param(
            lambda d: d["portal"].update(base_url="http://127.0.0.1:8080", token_env="OTHER"), id="connection"
        ),
    ],
)
def test_equivalent_configs_share_one_version(change: Change) -> None:
    assert version(change) == version(lambda d: None)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["model"]["fit"]["rules"][1]["map"].update(ENERGY=11), id="points"),
        pytest.param(lambda d: d["model"]["lifecycle"].update(hysteresis=6), id="hysteresis"),
        pytest.param(lambda d: d["holdout"].update(salt="other"), id="holdout-salt"),
        pytest.param(lambda d: d.update(free_mail_domains=["example.net"]), id="free-mail-list"),
        pytest.param(lambda d: d["exclusions"].pop(), id="exclusions"),
    ],
)
def test_a_change_that_can_change_a_score_changes_the_version(change: Change) -> None:
    assert version(change) != version(lambda d: None)


@pytest.mark.parametrize(
    ("where", "cond", "email", "expected"),
    [
        (
            "exclusion",
            {"reason": "ro_partner", "email_domain_in": ["x.com"], "when": {"property": "country", "equals": "RO"}},
            "a@x.com",
            True,
        ),
        (
            "exclusion",
            {"reason": "ro_partner", "email_domain_in": ["x.com"], "when": {"property": "country", "equals": "DE"}},
            "a@x.com",
            False,
        ),
    ],
)
def test_when_narrows_an_exclusion(where: str, cond: dict[str, Any], email: str, expected: bool) -> None:
    data = example_data()
    data["exclusions"] = [cond]
    result = score(contact(email=email, country="RO"), [], rules_from(data), NOW)
    assert result.excluded is expected


def test_when_narrows_a_segment() -> None:
    data = example_data()
    model = data.pop("model")
    data["models"] = [
        {
            **model,
            "name": "ro",
            "segment": {"property": "industry", "exists": True, "when": {"property": "country", "equals": "RO"}},
        },
        {**model, "name": "rest"},
    ]
    rules = rules_from(data)
    assert score(contact(country="RO", industry="ENERGY"), [], rules, NOW).model == "ro"
    assert score(contact(country="DE", industry="ENERGY"), [], rules, NOW).model == "rest"
