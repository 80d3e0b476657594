"""The `accounts:` section of a portal file (docs/SCORING.md section 6): what it builds, what it refuses, and the
rule-set version it changes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.config import build_portal, load_portal
from sync.core.accounts import ContactsRule
from sync.core.conditions import CountSpec, PropertyTest
from sync.core.rules import BandRule, MapRule, compile_ruleset
from sync.errors import ConfigError
from tests.factories import EXAMPLE, ROOT

CASES = ROOT / "tests" / "data" / "accounts"
ACCOUNTS = CASES / "accounts.yaml"
EXAMPLE_ACCOUNTS = ROOT / "config" / "portals" / "accounts-example.yaml"

Change = Callable[[dict[str, Any]], None]


@cache
def _base() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACCOUNTS.read_text())
    return loaded


def data(change: Change | None = None) -> dict[str, Any]:
    d = copy.deepcopy(_base())
    if change is not None:
        change(d)
    return d


def problems(change: Change) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        build_portal(data(change), Path("p.yaml"))
    return [(p.path, p.message) for p in info.value.problems]


def version(change: Change | None = None) -> str:
    return build_portal(data(change), Path("p.yaml")).rules.version


def fit_rule(**rule: Any) -> Change:
    return lambda d: d["accounts"]["fit"]["rules"].append(rule)


def engagement_rule(**rule: Any) -> Change:
    return lambda d: d["accounts"]["engagement"]["rules"].append(rule)


def output(kind: str, name: str) -> Change:
    return lambda d: d["accounts"]["properties"].__setitem__(kind, name)


def contact_fit_rule(**rule: Any) -> Change:
    return lambda d: d["model"]["fit"]["rules"].append(rule)


# --- what it builds ----------------------------------------------------------------------------


def test_the_sections_example_builds_the_core_spec() -> None:
    loaded = load_portal(ACCOUNTS)
    spec = loaded.accounts
    assert spec is not None
    size, industry = spec.fit.rules
    assert isinstance(size, BandRule) and [(b.gte, b.points) for b in size.bands] == [(1000, 3000), (200, 1500)]
    assert isinstance(industry, MapRule) and dict(industry.points) == {"energy": 2000, "finance": 1000}
    assert (spec.fit.max, spec.engagement.max, spec.engagement.rollup) == (10000, 10000, "sum")
    buying, execs = spec.engagement.rules
    assert buying == ContactsRule("buying-group", PropertyTest("ls_engagement", "gte", 15.0), 1500, CountSpec(3))
    assert execs == ContactsRule("exec-engaged", PropertyTest("jobtitle", "contains", ("ceo", "cto", "vp")), 1000)
    assert spec.clamp == (0, 100)
    assert spec.grades is not None and spec.grades.label == "{fit}{engagement}"
    assert (spec.properties.score, spec.properties.scored_at) == ("ls_account_score", "ls_account_scored_at")
    assert spec.version == loaded.rules.version


def test_a_file_without_accounts_has_none_and_keeps_its_version() -> None:
    loaded = load_portal(EXAMPLE)
    assert loaded.accounts is None
    assert loaded.rules.version == "deb9422c6ee0"  # as tests/core/test_version.py pins it


def test_the_shipped_accounts_example_loads() -> None:
    loaded = load_portal(EXAMPLE_ACCOUNTS)
    assert loaded.accounts is not None
    assert loaded.config.portal.name == "acme-accounts"
    assert loaded.accounts.engagement.rules[-1].id == "demo-in-account"


def test_company_properties_work_in_every_kind_of_contact_condition() -> None:
    def change(d: dict[str, Any]) -> None:
        d["model"]["engagement"]["rules"].append(
            {"id": "big-energy", "property": "company.industry", "equals": "ENERGY", "points": 5,
             "when": {"property": "company.annualrevenue", "gte": 1_000_000}}
        )  # fmt: skip
        d["model"]["segment"] = {"any": [{"property": "company.country", "in": ["RO", "DE"]}, {"exists": False,
                                 "property": "company.country"}]}  # fmt: skip
        d["exclusions"].append({"reason": "tiny", "property": "company.numberofemployees", "lt": 2})

    loaded = build_portal(data(change), Path("p.yaml"))
    assert compile_ruleset(loaded.rules).company_properties_read == {
        "numberofemployees",
        "industry",
        "annualrevenue",
        "country",
    }


def test_contacts_where_may_read_the_contact_models_outputs() -> None:
    loaded = build_portal(
        data(engagement_rule(id="hot", contacts={"where": {"property": "ls_score", "gte": 50}}, points=5)),
        Path("p.yaml"),
    )
    assert loaded.accounts is not None and loaded.accounts.engagement.rules[-1].id == "hot"


def test_a_contacts_rule_may_test_events_and_gate_on_the_company() -> None:
    rule = {
        "id": "demo",
        "contacts": {"where": {"event": "form_submission", "form_name_contains": ["demo"]}, "count": {"at_least": 2}},
        "when": {"property": "industry", "equals": "ENERGY"},
        "points": 10,
    }
    loaded = build_portal(data(engagement_rule(**rule)), Path("p.yaml"))
    assert loaded.accounts is not None
    built = loaded.accounts.engagement.rules[-1]
    assert isinstance(built, ContactsRule) and built.count == CountSpec(2) and built.when is not None


# --- what it refuses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (fit_rule(id="opens", event="email_open", points=1), "accounts.fit.rules[2].event", "a company has no events"),
        (
            engagement_rule(id="opens", event="email_open", points=1),
            "accounts.engagement.rules[2].event",
            "a company has no events",
        ),
        (
            fit_rule(id="c", contacts={"where": {"property": "jobtitle", "exists": True}}, points=1),
            "accounts.fit.rules[2].contacts",
            "a contacts rule belongs in accounts.engagement",
        ),
        (
            fit_rule(id="mail", email_domain_in=["acme.com"], points=1),
            "accounts.fit.rules[2]",
            "a company has no email address",
        ),
        (
            fit_rule(id="listed", property="industry", equals="ENERGY", points=1, when={"hubspot_list": 4}),
            "accounts.fit.rules[2].when",
            "a company has no list memberships",
        ),
        (
            engagement_rule(
                id="c",
                property="jobtitle",
                contains=["ceo"],
                contacts={"where": {"exists": True, "property": "jobtitle"}},
                points=1,
            ),
            "accounts.engagement.rules[2].property",
            "a contacts rule takes no property; the test of each contact goes under contacts.where",
        ),
        (
            engagement_rule(id="c", contacts={"where": {"property": "jobtitle", "exists": True}}),
            "accounts.engagement.rules[2].points",
            "a contacts rule needs points",
        ),
        (
            engagement_rule(
                id="c",
                contacts={"where": {"property": "jobtitle", "exists": True}, "count": {"between": [5, 2]}},
                points=1,
            ),
            "accounts.engagement.rules[2].contacts.count",
            "can never match",
        ),
        (
            engagement_rule(id="c", contacts={"where": {"property": "jobtitle"}}, points=1),
            "accounts.engagement.rules[2].contacts.where.property",
            "no test for property",
        ),
        (fit_rule(id="size", property="industry", equals="X", points=1), "accounts.fit.rules[2].id", "duplicate"),
        (
            engagement_rule(id="industry", contacts={"where": {"property": "x", "exists": True}}, points=1),
            "accounts.engagement.rules[2].id",
            "duplicate rule id 'industry'",
        ),
        (output("score", "numberofemployees"), "accounts.properties.score", "HubSpot default company property"),
        (output("grade", "lifecyclestage"), "accounts.properties.grade", "HubSpot default company property"),
        (output("fit", "hs_account_fit"), "accounts.properties.fit", "HubSpot default company property"),
        (output("score", "ls_score"), "accounts.properties.score", "also a contact output (properties.score)"),
        (output("reasons", "ls_account_grade"), "accounts.properties.reasons", "also the account's grade"),
        (
            fit_rule(id="loop", property="ls_account_fit", gte=10, points=1),
            "accounts.properties.fit",
            "ls_account_fit is read by accounts.fit.rules[2]",
        ),
        (
            contact_fit_rule(id="acct", property="company.ls_account_score", gte=50, points=5),
            "model.fit.rules[2]",
            "company.ls_account_score is the account's score",
        ),
        (
            lambda d: d["accounts"]["total"].__setitem__("clamp", [10, 0]),
            "accounts.total.clamp",
            "whole numbers with low <= high",
        ),
        (
            lambda d: d["accounts"]["grades"]["fit"][0].__setitem__("min", 150),
            "accounts.grades.fit[0].min",
            "can never be reached: the account's fit is capped at 100",
        ),
        (
            lambda d: d["accounts"]["engagement"].__setitem__("rolup", "max"),
            "accounts.engagement.rolup",
            "unknown key; did you mean 'rollup'?",
        ),
        (
            lambda d: d["accounts"]["engagement"].__setitem__("rollup", "avg"),
            "accounts.engagement.rollup",
            "Input should be 'sum', 'max' or 'top_3'",
        ),
        (
            lambda d: d["accounts"]["engagement"]["rules"][0]["contacts"].__setitem__("wher", {}),
            "accounts.engagement.rules[0].contacts.wher",
            "unknown key; did you mean 'where'?",
        ),
    ],
)
def test_an_accounts_section_that_could_not_work_is_an_error(change: Change, path: str, message: str) -> None:
    found = problems(change)
    assert any(p == path and message in m for p, m in found), found


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    text = ACCOUNTS.read_text().replace(
        "      - {id: industry, property: industry, map: {ENERGY: 20, FINANCE: 10}}\n",
        "      - {id: industry, property: industry, map: {ENERGY: 20, FINANCE: 10}}\n"
        "      - {id: opens, event: email_open, points: 1}\n",
    )
    file = tmp_path / "p.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_portal(file)
    (problem,) = info.value.problems
    line = text.splitlines().index("      - {id: opens, event: email_open, points: 1}") + 1
    assert (problem.file, problem.line, problem.path) == (str(file), line, "accounts.fit.rules[2].event")


# --- the version -----------------------------------------------------------------------------------


def _without_accounts(d: dict[str, Any]) -> None:
    del d["accounts"]


def test_the_version_covers_the_accounts_section() -> None:
    base = version()
    assert version(_without_accounts) != base
    assert version(lambda d: d["accounts"]["engagement"].__setitem__("rollup", "max")) != base
    assert version(lambda d: d["accounts"]["fit"]["rules"][0]["bands"][0].__setitem__("points", 31)) != base


def test_account_output_names_do_not_change_the_version() -> None:
    assert version(output("score", "ls_company_score")) == version()


def test_the_account_spec_carries_the_files_version() -> None:
    loaded = build_portal(data(), Path("p.yaml"))
    assert loaded.accounts is not None and loaded.accounts.version == loaded.rules.version
