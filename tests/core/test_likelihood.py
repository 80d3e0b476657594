"""The learned likelihood in the core: feature values as of now, the probability, contributions and factors,
and the writes decide() adds (diff-only, with the score's)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from sync.core.decision import decide
from sync.core.likelihood import (
    EVENTS,
    FORM,
    NUMBER,
    PAGE,
    PROPERTY,
    RULE,
    Feature,
    LikelihoodModel,
    Predictive,
    feature_values,
    likelihood,
    number_bin,
    observe,
    page_path,
)
from sync.core.model import EMAIL_OPEN, Event
from sync.core.rules import RuleSet, compile_ruleset
from sync.core.scoring import score_at
from sync.core.version import ruleset_version
from tests.factories import NOW_MS, contact, email_event, example_rules, form

TITLE = Feature(PROPERTY, "jobtitle", "Energy Manager")
CHECKLIST = Feature(FORM, "Procurement checklist")
DEMO_RULE = Feature(RULE, "demo-request")
OPENS_90 = Feature(EVENTS, EMAIL_OPEN, days=90)
SIZE = Feature(NUMBER, "numberofemployees", low=100.0, high=300.0)
PRICING = Feature(PAGE, "/pricing")
MODEL = LikelihoodModel(
    "m1", (TITLE, CHECKLIST, DEMO_RULE, OPENS_90, SIZE, PRICING), (1.5, 1.0, 0.8, 0.5, -0.6, 0.2), -3.0, "v1"
)
EVENTS_OF: list[Event] = [
    form("f1", 20, name="Procurement checklist", page_url="https://www.acme.example/pricing?utm=x"),
    form("f2", 5, name="Demo request"),
    email_event("e1", EMAIL_OPEN, 10),
    email_event("e2", EMAIL_OPEN, 100),
    email_event("e3", EMAIL_OPEN, -1),  # after now: never counted
    email_event("e4", EMAIL_OPEN, 3, filtered=True),  # a scanner's open: never counted
]


def breakdown(c: object, events: list[Event]) -> tuple[object, ...]:
    return score_at(c, events, example_rules(), NOW_MS).breakdown  # type: ignore[arg-type]


def test_each_kind_of_feature_reads_its_value_as_of_now() -> None:
    c = contact(jobtitle="energy manager", numberofemployees="250")
    values = feature_values(MODEL.features, c, EVENTS_OF, NOW_MS, breakdown(c, EVENTS_OF))  # type: ignore[arg-type]
    assert values == [1.0, 1.0, 1.0, math.log1p(1), 1.0, 1.0]


def test_events_after_now_do_not_count() -> None:
    c = contact()
    earlier = NOW_MS - 30 * 86_400_000  # the checklist (20 days ago) and the demo (5) had not happened yet
    values = feature_values(MODEL.features, c, EVENTS_OF, earlier, ())
    assert values[1] == 0.0 and values[5] == 0.0 and values[3] == math.log1p(1)  # the open of 100 days ago


def test_the_probability_is_the_logistic_of_intercept_plus_contributions() -> None:
    c = contact(jobtitle="Energy Manager")
    got = likelihood(MODEL, c, [], NOW_MS, ())
    assert got.probability == pytest.approx(1 / (1 + math.exp(-(-3.0 + 1.5))))
    assert got.value == round(got.probability * 100)
    assert [x.contribution for x in got.contributions] == [1.5, 0.0, 0.0, 0.0, -0.0, 0.0]
    assert got.model_version == "m1"


def test_factors_list_the_largest_contributions_first_with_one_decimal() -> None:
    c = contact(jobtitle="Energy Manager", numberofemployees="120")
    got = likelihood(MODEL, c, EVENTS_OF, NOW_MS, breakdown(c, EVENTS_OF))  # type: ignore[arg-type]
    assert got.factors() == (
        "+1.5 jobtitle=Energy Manager; +1.0 form:Procurement checklist; +0.8 demo-request; "
        "-0.6 numberofemployees 100-300; +0.3 email_open 90d"
    )
    assert got.factors(top=2) == "+1.5 jobtitle=Energy Manager; +1.0 form:Procurement checklist"


@pytest.mark.parametrize(
    ("number", "bin_"),
    [(-5.0, (None, 0.0)), (0.0, (0.0, 1.0)), (2.5, (1.0, 3.0)), (100.0, (100.0, 300.0)), (1e6, (10000.0, None))],
)
def test_numbers_fall_in_fixed_bins(number: float, bin_: tuple[float | None, float | None]) -> None:
    assert number_bin(number) == bin_


@pytest.mark.parametrize(
    ("url", "path"),
    [("https://www.acme.example/pricing?utm=x", "/pricing"), ("https://acme.example", "/"), ("/demo/", "/demo")],
)
def test_a_page_is_its_path_without_site_or_query(url: str, path: str) -> None:
    assert page_path(url) == path


def test_observe_gives_each_feature_the_value_apply_reads() -> None:
    c = contact(jobtitle="Energy Manager", numberofemployees="250", industry="ENERGY", hs_analytics_source="OFFLINE")
    hits = breakdown(c, EVENTS_OF)
    observed = observe(c, EVENTS_OF, NOW_MS, hits, ["jobtitle", "numberofemployees", "industry"], pages=True)  # type: ignore[arg-type]
    features = [f for f, _ in observed]
    assert feature_values(features, c, EVENTS_OF, NOW_MS, hits) == [v for _, v in observed]  # type: ignore[arg-type]
    keys = {f.key for f in features}
    assert {"property:jobtitle=energy manager", "form:Procurement checklist", "page:/pricing"} <= keys
    assert "rule:industry=ENERGY" in keys and "property:industry=energy" not in keys  # the rule's hit says it
    assert not any("hs_analytics_source" in k for k in keys)  # only the properties asked for


QUIET = [EVENTS_OF[0], EVENTS_OF[2]]  # no demo request: no stage to move, only the values to write


def ruleset_with(predictive: Predictive | None) -> RuleSet:
    spec = example_rules().spec
    return compile_ruleset(replace(spec, predictive=predictive))


def test_decide_writes_the_likelihood_and_factors_then_nothing_once_hubspot_holds_them() -> None:
    rules = ruleset_with(Predictive(MODEL, "ls_likelihood", "ls_likelihood_factors"))
    c = contact(jobtitle="Energy Manager")
    first = decide(c, QUIET, rules, NOW_MS, c.properties)
    assert first.plan.update is not None and first.likelihood is not None
    written = dict(first.plan.update.properties)
    assert written["ls_likelihood"] == str(first.likelihood.value)
    assert written["ls_likelihood_factors"] == first.likelihood.factors()
    held = {**c.properties, **written}
    again = decide(c, iter(QUIET), rules, NOW_MS + 1000, held)  # events as a one-pass iterator
    assert again.plan.update is None


def test_a_likelihood_change_alone_is_written_with_scored_at() -> None:
    rules = ruleset_with(Predictive(MODEL, "ls_likelihood", "ls_likelihood_factors"))
    c = contact(jobtitle="Energy Manager")
    first = decide(c, QUIET, rules, NOW_MS, c.properties)
    assert first.plan.update is not None
    held = {**c.properties, **first.plan.update.properties, "ls_likelihood": "3"}
    again = decide(c, QUIET, rules, NOW_MS + 1000, held)
    assert again.plan.update is not None
    assert set(again.plan.update.properties) == {"ls_likelihood", "ls_scored_at"}


def test_holdout_contacts_get_no_likelihood_written() -> None:
    spec = replace(example_rules().spec, holdout_percent=100.0)
    rules = compile_ruleset(replace(spec, predictive=Predictive(MODEL, "ls_likelihood", "ls_likelihood_factors")))
    c = contact(jobtitle="Energy Manager")
    got = decide(c, EVENTS_OF, rules, NOW_MS, c.properties)
    assert got.plan.update is None and got.likelihood is None


def test_the_model_does_not_change_the_rule_set_version() -> None:
    spec = example_rules().spec
    with_model = replace(spec, predictive=Predictive(MODEL, "ls_likelihood", "ls_likelihood_factors"))
    assert ruleset_version(with_model) == ruleset_version(spec)


def test_the_rule_set_reads_the_properties_the_model_reads() -> None:
    rules = ruleset_with(Predictive(MODEL, "ls_likelihood", "ls_likelihood_factors"))
    assert {"jobtitle", "numberofemployees"} <= rules.properties_read
