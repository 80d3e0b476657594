"""Rule semantics: event rules, maps, bands, when:, holdout, segments, reasons, cap and rounding lines.

The reference config (clamp off) where it has the rule; otherwise a small
config with just the rules under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sync.core.model import (
    EMAIL_BOUNCE,
    EMAIL_CLICK,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    EMAIL_SPAM_REPORT,
    Event,
    RuleHit,
    ScoreResult,
)
from sync.core.rules import Band, RuleSet
from sync.core.scoring import reasons_text, score
from tests.factories import NOW, contact, contact_with, email_event, example_data, form, rules_from, unclamped

RULES = rules_from(unclamped())


def portal(
    fit: list[dict[str, Any]] | None = None,
    engagement: list[dict[str, Any]] | None = None,
    limits: dict[str, dict[str, float]] | None = None,
) -> RuleSet:
    """A rule set with only the given rules (and group limits): no decay, clamp or grades, lifecycle off."""
    limits = limits or {}
    model = {
        "fit": {"rules": fit or [], **limits.get("fit", {})},
        "engagement": {"rules": engagement or [], **limits.get("engagement", {})},
    }
    return rules_from({"portal": {"id": 1, "name": "test-portal", "token_env": "HUBSPOT_TOKEN_TEST"}, "model": model})


def line(result: ScoreResult, rule: str) -> RuleHit:
    (hit,) = [h for h in result.breakdown if h.rule == rule]
    return hit


def points(result: ScoreResult, rule: str) -> float:
    return line(result, rule).points


def opens(ages: list[float], filtered: bool = False) -> list[Event]:
    return [email_event(f"o{i}", EMAIL_OPEN, age, filtered=filtered) for i, age in enumerate(ages)]


def clicks(ages: list[float]) -> list[Event]:
    return [email_event(f"k{i}", EMAIL_CLICK, age) for i, age in enumerate(ages)]


# --- per occurrence, per contact, windows and counts --------------------------------


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        ([], 0),
        ([1], 1),
        ([1, 2, 3], 3),
        ([float(i) for i in range(10)], 10),
        ([float(i) for i in range(12)], 10),  # max: 10
        ([90], 1),  # within_days 90 includes day 90
        ([90 + 23 / 24], 1),  # 90 days 23 hours is 90
        ([91], 0),
        ([1, 91, 200], 1),
    ],
)
def test_email_open_counts_each_occurrence_within_90_days_up_to_max(ages: list[float], expected: int) -> None:
    assert points(score(contact(), opens(ages), RULES, NOW), "email-open") == expected


@pytest.mark.parametrize(
    ("ages", "expected"),
    [([], 0), ([1], 5), ([1, 2, 3], 5), ([14], 5), ([14.9], 5), ([15], 0), ([15, 30], 0), ([2, 30], 5)],
)
def test_recent_click_is_per_contact_once_within_14_days(ages: list[float], expected: int) -> None:
    assert points(score(contact(), clicks(ages), RULES, NOW), "recent-click") == expected


@pytest.mark.parametrize(("n", "expected"), [(1, 15), (3, 15)])
def test_webinar_gives_points_once_however_many_webinars(n: int, expected: int) -> None:
    forms = [form(f"w{i}", i + 1, name="Webinar: grid analytics") for i in range(n)]
    assert points(score(contact(), forms, RULES, NOW), "webinar") == expected


@pytest.mark.parametrize(("n", "expected"), [(1, 5), (2, 10), (3, 15), (5, 15)])
def test_tofu_form_counts_each_occurrence_up_to_15(n: int, expected: int) -> None:
    forms = [form(f"t{i}", i + 1, name="Energy ebook" if i % 2 else "Solar checklist") for i in range(n)]
    assert points(score(contact(), forms, RULES, NOW), "tofu-form") == expected


@pytest.mark.parametrize(
    ("urls", "expected", "matched"),
    [
        ([], 0, False),
        (["https://acme-eu.example/pricing"], 0, False),  # at_least 2
        (["https://acme-eu.example/pricing", "https://acme-eu.example/PRICING?plan=pro"], 10, True),
        (["/pricing", "/pricing", "/pricing"], 10, True),  # per contact: once
        (["/pricing", "/blog", "/about"], 0, False),
    ],
)
def test_pricing_page_forms_need_at_least_two(urls: list[str], expected: int, matched: bool) -> None:
    forms = [form(f"p{i}", 3, name="Pricing question", page_url=url) for i, url in enumerate(urls)]
    hit = line(score(contact(), forms, RULES, NOW), "pricing-page-forms")
    assert (hit.points, hit.matched) == (expected, matched)


@pytest.mark.parametrize(
    ("count", "n", "expected"),
    [
        ({"at_most": 1}, 0, -5),  # at_most matches a contact with no event
        ({"at_most": 1}, 1, -5),
        ({"at_most": 1}, 2, 0),
        ({"exactly": 2}, 2, -5),
        ({"exactly": 2}, 3, 0),
        ({"between": [2, 3]}, 1, 0),
        ({"between": [2, 3]}, 3, -5),
    ],
)
def test_event_rule_count_specs(count: dict[str, Any], n: int, expected: int) -> None:
    rules = portal(engagement=[{"id": "quiet", "event": "email_open", "count": count, "points": -5}])
    assert points(score(contact(), opens([1] * n), rules, NOW), "quiet") == expected


def test_a_per_occurrence_rule_matched_by_having_no_events_gives_nothing() -> None:
    rules = portal(
        engagement=[{"id": "quiet", "event": "email_open", "count": {"at_most": 0}, "points": -5, "per": "occurrence"}]
    )
    hit = line(score(contact(), [], rules, NOW), "quiet")
    assert (hit.matched, hit.points) == (True, 0)


# --- half-life ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        ([0], 3),
        ([30], 1.5),  # case 11
        ([60], 0.75),
        ([30, 30], 3),
        ([0, 30, 60], 5.25),
        ([0] * 6, 15),  # 18 capped at 15
    ],
)
def test_half_life_per_occurrence_weighs_each_click(ages: list[float], expected: float) -> None:
    assert points(score(contact(), clicks(ages), RULES, NOW), "email-click") == expected


@pytest.mark.parametrize(("ages", "expected"), [([0], 20), ([10], 10), ([10, 20], 10), ([20, 40], 5), ([30], 2.5)])
def test_half_life_per_contact_weighs_the_newest_event(ages: list[float], expected: float) -> None:
    rules = portal(engagement=[{"id": "any-form", "event": "form_submission", "points": 20, "half_life_days": 10}])
    forms = [form(f"s{i}", age) for i, age in enumerate(ages)]
    assert points(score(contact(), forms, rules, NOW), "any-form") == expected


# --- bot filtering -----------------------------------------------------------------------


@pytest.mark.parametrize(("include_filtered", "expected"), [(False, 0), (True, 2)])
def test_bot_filtered_events_count_only_with_include_filtered(include_filtered: bool, expected: int) -> None:
    rule = {"id": "opens", "event": "email_open", "points": 1, "per": "occurrence"}
    if include_filtered:
        rule["include_filtered"] = True
    rules = portal(engagement=[rule])
    events = opens([1, 2], filtered=True)
    assert points(score(contact(), events, rules, NOW), "opens") == expected


def test_a_bot_filtered_open_does_not_reset_inactivity() -> None:
    result = score(contact(created_days_ago=100), opens([1], filtered=True), RULES, NOW)
    assert result.decay == -25


# --- maps, bands, when: ---------------------------------------------------------------------

MAP = {"id": "industry", "property": "industry", "map": {"ENERGY": 10, "FINANCE": 3}}


@pytest.mark.parametrize(
    ("extra", "value", "expected"),
    [
        ({}, "ENERGY", 10),
        ({}, "energy", 10),  # values compare case-insensitively
        ({}, "RETAIL", 0),  # no default: 0
        ({}, None, 0),
        ({"default": 2}, "RETAIL", 2),
        ({"default": 2}, None, 2),  # default covers a missing property too
        ({"default": 2}, "", 2),
        ({"default": 2, "missing": -3}, None, -3),  # missing overrides for a missing property
        ({"default": 2, "missing": -3}, "", -3),
        ({"default": 2, "missing": -3}, "RETAIL", 2),
        ({"missing": -3}, "FINANCE", 3),
    ],
)
def test_map_default_and_missing(extra: dict[str, Any], value: str | None, expected: float) -> None:
    rules = portal(fit=[{**MAP, **extra}])
    subject = contact() if value is None else contact(industry=value)
    assert points(score(subject, [], rules, NOW), "industry") == expected


def test_map_breakdown_names_the_value_as_written_in_the_config() -> None:
    hit = line(score(contact(industry="energy"), [], RULES, NOW), "industry")
    assert (hit.matched, hit.label) == (True, "industry=ENERGY")


BANDS = {
    "id": "size",
    "property": "numberofemployees",
    "bands": [{"gte": 0, "points": 1}, {"gte": 10, "points": 5}, {"gte": 100, "points": 9}],
}


@pytest.mark.parametrize(
    ("value", "expected", "matched"),
    [
        ("5", 1, True),
        ("20", 1, True),  # the first matching band wins, not the tightest
        ("500", 1, True),
        ("-1", 0, False),  # in no band
        ("many", 0, False),
        ("", 0, False),
        (None, 0, False),
    ],
)
def test_bands_first_match_wins(value: str | None, expected: float, matched: bool) -> None:
    subject = contact() if value is None else contact(numberofemployees=value)
    hit = line(score(subject, [], portal(fit=[BANDS]), NOW), "size")
    assert (hit.points, hit.matched) == (expected, matched)


WHEN_ENERGY = {"property": "industry", "equals": "ENERGY"}
WHEN_DELIVERED = {"event": "email_delivered", "count": {"at_least": 2}}


@pytest.mark.parametrize(
    ("rule", "props", "events", "expected"),
    [
        (
            {"id": "r", "property": "jobtitle", "contains": ["ceo"], "points": 10, "when": WHEN_ENERGY},
            {"jobtitle": "CEO", "industry": "ENERGY"},
            [],
            10,
        ),
        (
            {"id": "r", "property": "jobtitle", "contains": ["ceo"], "points": 10, "when": WHEN_ENERGY},
            {"jobtitle": "CEO", "industry": "FINANCE"},
            [],
            0,
        ),
        (
            {"id": "r", "property": "jobtitle", "map": {"ceo": 7}, "when": WHEN_ENERGY},
            {"jobtitle": "CEO"},
            [],
            0,
        ),
        (
            {"id": "r", "property": "numberofemployees", "bands": [{"gte": 1, "points": 4}], "when": WHEN_ENERGY},
            {"numberofemployees": "50", "industry": "ENERGY"},
            [],
            4,
        ),
        (
            {"id": "r", "event": "form_submission", "points": 10, "when": WHEN_ENERGY},
            {"industry": "ENERGY"},
            [form("s1", 1)],
            10,
        ),
        (
            {"id": "r", "event": "form_submission", "points": 10, "when": WHEN_ENERGY},
            {"industry": "RETAIL"},
            [form("s1", 1)],
            0,
        ),
    ],
)
def test_when_gates_any_rule(rule: dict[str, Any], props: dict[str, str], events: list[Event], expected: int) -> None:
    hit = line(score(contact_with(props), events, portal(fit=[rule]), NOW), "r")
    assert (hit.points, hit.matched) == (expected, expected != 0)


# --- holdout -----------------------------------------------------------------------------


def holdout_rules(percent: float, salt: str = "2026-q4") -> RuleSet:
    data = example_data()
    data["holdout"] = {"percent": percent, "salt": salt}
    return rules_from(data)


IDS = [str(i) for i in range(10_000)]


def test_holdout_is_deterministic_for_the_same_id_and_salt() -> None:
    first, second = holdout_rules(5), holdout_rules(5)
    assert [first.in_holdout(i) for i in IDS] == [second.in_holdout(i) for i in IDS]


def test_holdout_depends_on_the_salt() -> None:
    first, other = holdout_rules(5, "a"), holdout_rules(5, "b")
    assert {i for i in IDS if first.in_holdout(i)} != {i for i in IDS if other.in_holdout(i)}


@pytest.mark.parametrize(("percent", "low", "high"), [(0, 0, 0), (5, 400, 600), (20, 1800, 2200), (50, 4800, 5200)])
def test_about_percent_of_ids_land_in_the_holdout(percent: float, low: int, high: int) -> None:
    rules = holdout_rules(percent)
    assert low <= sum(rules.in_holdout(i) for i in IDS) <= high


def test_a_wider_holdout_contains_the_narrower_one() -> None:
    narrow, wide = holdout_rules(5), holdout_rules(20)
    assert all(wide.in_holdout(i) for i in IDS if narrow.in_holdout(i))


def test_a_holdout_contact_is_scored_but_its_stage_is_not_written() -> None:
    rules = holdout_rules(50)
    cid = next(i for i in IDS if rules.in_holdout(i))
    result = score(contact(cid=cid), [form("d1", 1, name="Demo request")], rules, NOW)
    assert (result.holdout, result.engagement, result.stage_target, result.stage_write) == (
        True,
        70,
        "marketingqualifiedlead",
        "none",
    )


# --- several models ---------------------------------------------------------------------


def segmented(catch_all: bool = False) -> RuleSet:
    data = example_data()
    base = data.pop("model")
    energy = {**base, "name": "energy", "segment": {"property": "industry", "equals": "ENERGY"}}
    energy["fit"] = {"rules": [{"id": "e-fit", "property": "industry", "exists": True, "points": 40}]}
    grid = {**base, "name": "grid", "segment": {"property": "industry", "in": ["ENERGY", "UTILITIES"]}}
    grid["fit"] = {"rules": [{"id": "g-fit", "property": "industry", "exists": True, "points": 20}]}
    data["models"] = [energy, grid]
    if catch_all:
        data["models"].append({**base, "name": "rest"})
    return rules_from(data)


@pytest.mark.parametrize(
    ("industry", "model", "fit"),
    [("ENERGY", "energy", 40), ("energy", "energy", 40), ("UTILITIES", "grid", 20)],
)
def test_the_first_matching_segment_wins(industry: str, model: str, fit: int) -> None:
    result = score(contact(industry=industry), [], segmented(), NOW)
    assert (result.model, result.fit, result.excluded) == (model, fit, False)


@pytest.mark.parametrize("props", [{"industry": "RETAIL"}, {}])
def test_no_matching_segment_excludes_with_reason_no_model(props: dict[str, str]) -> None:
    result = score(contact_with(props), [form("d1", 1, name="Demo request")], segmented(), NOW)
    assert (result.model, result.excluded, result.exclusion_reason) == (None, True, "no_model")
    assert (result.score, result.stage_write, result.breakdown) == (0, "none", ())


def test_a_model_without_segment_catches_the_rest() -> None:
    result = score(contact(industry="RETAIL"), [], segmented(catch_all=True), NOW)
    assert (result.model, result.excluded) == ("rest", False)


def test_an_exclusion_reason_wins_over_no_model() -> None:
    result = score(contact(email="x@rival.com", industry="RETAIL"), [], segmented(), NOW)
    assert (result.excluded, result.exclusion_reason) == (True, "competitor")


# --- event conditions anywhere a condition goes --------------------------------------------

DELIVERED_TWICE = [email_event("d1", EMAIL_DELIVERED, 3), email_event("d2", EMAIL_DELIVERED, 5)]
SPAM = [email_event("s1", EMAIL_SPAM_REPORT, 3)]


def test_an_event_condition_in_when_gates_a_property_rule() -> None:
    data = unclamped()
    data["model"]["fit"]["rules"].append(
        {"id": "reached", "property": "industry", "exists": True, "points": 4, "when": {"all": [WHEN_DELIVERED]}}
    )
    rules = rules_from(data)
    with_events = score(contact(industry="ENERGY"), DELIVERED_TWICE, rules, NOW)
    without = score(contact(industry="ENERGY"), [], rules, NOW)
    assert (points(with_events, "reached"), points(without, "reached")) == (4, 0)


def test_an_event_condition_in_an_exclusion() -> None:
    data = unclamped()
    data["exclusions"].append({"reason": "spammer", "any": [{"event": "email_spam_report"}]})
    rules = rules_from(data)
    assert score(contact(), SPAM, rules, NOW).exclusion_reason == "spammer"
    assert score(contact(), [], rules, NOW).exclusion_reason is None


def test_an_event_condition_in_a_segment() -> None:
    data = unclamped()
    base = data.pop("model")
    data["models"] = [{**base, "name": "quiet", "segment": {"not": WHEN_DELIVERED}}, {**base, "name": "reached"}]
    rules = rules_from(data)
    assert (score(contact(), [], rules, NOW).model, score(contact(), DELIVERED_TWICE, rules, NOW).model) == (
        "quiet",
        "reached",
    )


def test_an_event_condition_in_a_stage_rule() -> None:
    data = unclamped()
    data["model"]["lifecycle"]["rules"] = [{"stage": "salesqualifiedlead", "when": {"all": [WHEN_DELIVERED]}}]
    rules = rules_from(data)
    got = score(contact(stage="lead"), DELIVERED_TWICE, rules, NOW)
    assert (got.stage_target, got.stage_write) == ("salesqualifiedlead", "set")
    assert score(contact(stage="lead"), DELIVERED_TWICE[:1], rules, NOW).stage_write == "none"


# --- grades ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "engagement", "decay", "grade"),
    [(30, 70, 0, "C1"), (100, 70, -25, "C1"), (130, 70, -50, "C2")],  # 70 alone would grade 1
)
def test_the_engagement_grade_is_computed_on_engagement_plus_decay(
    days: float, engagement: int, decay: int, grade: str
) -> None:
    got = score(contact(created_days_ago=400), [form("d1", days, name="Demo request")], RULES, NOW)
    assert (got.engagement, got.decay, got.grade) == (engagement, decay, grade)


# --- reasons text -------------------------------------------------------------------------


def reasons_of(props: dict[str, str], events: Sequence[Event], rules: RuleSet = RULES, limit: int = 500) -> str:
    return reasons_text(score(contact_with(props), events, rules, NOW), limit=limit)


def test_reasons_are_ordered_by_size_and_skip_zero_lines() -> None:
    text = reasons_of(
        {"industry": "OIL_GAS", "need_level": "none", "hs_analytics_num_visits": "3"},
        [form("d1", 1, name="Demo request")],
    )
    assert text == "+70 demo-request; -20 need=none; +5 industry=OIL_GAS; +3 visits"


def test_reasons_carry_no_rounding_cap_or_clamp_lines() -> None:
    rules = rules_from(example_data())  # clamp [0, 100]
    result = score(contact(ls_sales_feedback="unqualified"), clicks([30]), rules, NOW)
    kinds = {h.kind for h in result.breakdown if h.cents}
    assert {"rounding", "clamp"} <= kinds
    assert reasons_text(result) == "-100 sales-unqualified; +1.5 email-click"


@pytest.mark.parametrize("limit", [0, 10, 20, 30, 45, 60])
def test_reasons_stop_at_the_limit_keeping_the_biggest(limit: int) -> None:
    props = {"industry": "OIL_GAS", "need_level": "none", "hs_analytics_num_visits": "3"}
    events = [form("d1", 1, name="Demo request")]
    full = reasons_of(props, events).split("; ")
    text = reasons_of(props, events, limit=limit)
    assert len(text) <= limit
    kept = text.split("; ") if text else []
    assert kept == full[: len(kept)]


def test_reasons_text_of_the_spec_example() -> None:
    assert reasons_of({"industry": "ENERGY"}, [form("d1", 60, name="Demo request")]) == (
        "+70 demo-request; +10 industry=ENERGY; -10 inactive 60d"
    )


# --- cap and rounding lines -------------------------------------------------------------------


def test_a_half_life_click_of_1_5_makes_a_rounding_line_of_0_5() -> None:
    result = score(contact(), clicks([30]), RULES, NOW)
    assert (line(result, "engagement:rounding").points, result.engagement) == (0.5, 2)


@pytest.mark.parametrize(
    ("value", "fit", "rounding"),
    [(2.5, 3, 0.5), (-2.5, -3, -0.5), (2.49, 2, -0.49), (-2.51, -3, -0.49), (2.0, 2, None)],
)
def test_fit_is_rounded_half_away_from_zero_with_its_own_line(value: float, fit: int, rounding: float | None) -> None:
    rules = portal(fit=[{"id": "m", "property": "tier", "map": {"x": value}}])
    result = score(contact(tier="x"), [], rules, NOW)
    lines = [h.points for h in result.breakdown if h.rule == "fit:rounding"]
    assert (result.fit, lines) == (fit, [rounding] if rounding is not None else [])


BOTH = [
    {"id": "a", "property": "a", "exists": True, "points": 15},
    {"id": "b", "property": "b", "exists": True, "points": -45},
    {"id": "c", "property": "c", "exists": True, "points": 30},
]


@pytest.mark.parametrize(
    ("group", "limits", "props", "expected", "cap"),
    [
        ("fit", {"max": 20}, ("a", "c"), 20, -25),
        ("fit", {"max": 50}, ("a", "c"), 45, None),
        ("fit", {"min": -20}, ("a", "b"), -20, 10),
        ("fit", {"min": -40}, ("a", "b"), -30, None),
        ("engagement", {"max": 25}, ("a", "c"), 25, -20),
        ("engagement", {"max": 25, "min": -10}, ("b",), -10, 35),
    ],
)
def test_group_max_and_min_make_a_cap_line(
    group: str, limits: dict[str, float], props: tuple[str, ...], expected: int, cap: float | None
) -> None:
    rules = portal(**{group: BOTH}, limits={group: limits})
    result = score(contact_with(dict.fromkeys(props, "1")), [], rules, NOW)
    caps = [h.points for h in result.breakdown if h.rule == f"{group}:cap"]
    assert (getattr(result, group), caps) == (expected, [cap] if cap is not None else [])


def test_a_per_occurrence_max_caps_negative_rules_too() -> None:
    rules = portal(
        engagement=[{"id": "bounces", "event": "email_bounce", "points": -5, "per": "occurrence", "max": 12}]
    )
    events = [email_event(f"b{i}", EMAIL_BOUNCE, 1) for i in range(3)]
    assert points(score(contact(), events, rules, NOW), "bounces") == -12


def test_reasons_that_fit_the_limit_exactly_are_kept() -> None:
    result = score(contact(industry="OIL_GAS"), [form("d1", 1, name="Demo request")], RULES, NOW)
    full = reasons_text(result)
    assert full == "+70 demo-request; +5 industry=OIL_GAS"
    assert reasons_text(result, limit=len(full)) == full


@pytest.mark.parametrize(
    ("band", "shown"),
    [
        (Band(10, gte=50_000_000), ">=50000000"),
        (Band(10, gte=1000, lt=5000), ">=1000 <5000"),
        (Band(10, gt=0.5), ">0.5"),
        (Band(10, lte=2.25), "<=2.25"),
        (Band(10), "any value"),
    ],
)
def test_a_band_reads_as_people_write_numbers(band: Band, shown: str) -> None:
    assert band.describe() == shown
