"""The cases of docs/SCORING.md section 5, each as written there (reference config, clamp off unless said)."""

from __future__ import annotations

from typing import Any

import pytest

from sync.core.lifecycle import decide_stage
from sync.core.model import EMAIL_CLICK, EMAIL_OPEN, ScoreResult
from sync.core.scoring import score
from tests.factories import (
    NOW,
    contact,
    contact_with,
    email_event,
    example_data,
    example_rules,
    form,
    rules_from,
    unclamped,
)

RULES = rules_from(unclamped())
SIX = ("authority", "industry", "need", "company-size", "timeline", "budget")


def points(result: ScoreResult, rule: str) -> float:
    (hit,) = [h for h in result.breakdown if h.rule == rule]
    return hit.points


@pytest.mark.parametrize(
    ("case", "props", "expected"),
    [
        (
            "case-1-strong-fit",
            dict(
                decision_role="owner",
                industry="ENERGY",
                need_level="core",
                numberofemployees="800",
                purchase_timeline="days",
                budget_fit="fits",
            ),
            70,
        ),
        (
            "case-2-poor-fit",
            dict(
                decision_role="none",
                industry="FINANCE",
                need_level="none",
                numberofemployees="40",
                purchase_timeline="none",
                budget_fit="short",
            ),
            -35,
        ),
    ],
)
def test_fit_contributions_of_the_six_rules(case: str, props: dict[str, str], expected: int) -> None:
    result = score(contact_with(props), [], RULES, NOW)
    assert sum(points(result, r) for r in SIX) == expected


@pytest.mark.parametrize(("employees", "expected"), [("99", 3), ("100", 5), ("500", 5), ("501", 10)])
def test_case_3_company_size_bands(employees: str, expected: int) -> None:
    assert points(score(contact(numberofemployees=employees), [], RULES, NOW), "company-size") == expected


def _decide(score_value: int, fit_grade: str, current: str = "", demote: bool = False) -> tuple[str | None, str]:
    data = unclamped()
    data["model"]["lifecycle"]["demote"] = demote
    model = rules_from(data).models[0]
    decision = decide_stage(
        model.spec.lifecycle,
        current=current,
        score=score_value,
        fit_grade=fit_grade,
        fit_grade_rank=model.fit_grade_rank,
        rule_stages=[],
        written_stage=current,  # the stage the contact falls from is one leadsync wrote (section 3)
    )
    return decision.target if decision.write != "none" else None, decision.write


@pytest.mark.parametrize(
    ("score_value", "expected"),
    [(49, None), (50, "marketingqualifiedlead"), (79, "marketingqualifiedlead"), (80, "salesqualifiedlead")],
)
def test_case_4_stage_thresholds_with_fit_grade_a(score_value: int, expected: str | None) -> None:
    assert _decide(score_value, "A")[0] == expected


def test_case_5_high_score_with_fit_grade_c_is_mql_not_sql() -> None:
    assert _decide(85, "C") == ("marketingqualifiedlead", "set")


@pytest.mark.parametrize(("visits", "expected"), [("1", 0), ("2", 3), ("5", 3), ("6", 6)])
def test_case_6_visit_bands_do_not_stack(visits: str, expected: int) -> None:
    assert points(score(contact(hs_analytics_num_visits=visits), [], RULES, NOW), "visits") == expected


def test_case_7_twelve_distinct_opens_are_capped_at_ten() -> None:
    opens = [email_event(f"o{i}", EMAIL_OPEN, days_ago=i) for i in range(12)]
    assert points(score(contact(), opens, RULES, NOW), "email-open") == 10


def test_case_7_the_same_open_synced_twice_counts_once() -> None:
    opens = [email_event("o1", EMAIL_OPEN, 3), email_event("o1", EMAIL_OPEN, 3)]
    assert points(score(contact(), opens, RULES, NOW), "email-open") == 1


def _decay_rules(mode: str) -> object:
    data = unclamped()
    data["model"]["engagement"]["decay"]["mode"] = mode
    return rules_from(data)


@pytest.mark.parametrize(
    ("mode", "days", "expected"),
    [
        ("replace", 59, 0),
        ("replace", 60, -10),
        ("replace", 90, -25),
        ("replace", 120, -50),
        ("cumulative", 59, 0),
        ("cumulative", 60, -10),
        ("cumulative", 90, -35),
        ("cumulative", 120, -85),
    ],
)
def test_cases_8_and_9_inactivity_decay(mode: str, days: int, expected: int) -> None:
    rules = _decay_rules(mode)
    # 23 hours more than whole days: whole days elapsed is what counts.
    result = score(contact(created_days_ago=400), [form("s1", days + 23 / 24)], rules, NOW)  # type: ignore[arg-type]
    assert result.decay == expected


def test_case_10_no_events_decays_from_createdate() -> None:
    assert score(contact(created_days_ago=61), [], RULES, NOW).decay == -10


def test_case_11_half_life_weighs_a_30_day_old_click_by_half() -> None:
    result = score(contact(), [email_event("k1", EMAIL_CLICK, 30)], RULES, NOW)
    assert points(result, "email-click") == 1.5


def test_case_12_competitor_is_excluded_and_nothing_is_written() -> None:
    result = score(contact(email="x@rival.com"), [form("d1", 1, name="Demo request")], RULES, NOW)
    assert (result.excluded, result.exclusion_reason, result.stage_write) == (True, "competitor", "none")


def test_case_13_customer_stage_is_left_alone() -> None:
    assert _decide(95, "A", current="customer") == (None, "none")


@pytest.mark.parametrize(
    ("demote", "expected"),
    [(False, (None, "none")), (True, ("marketingqualifiedlead", "clear_then_set"))],
)
def test_case_14_sql_falling_to_60(demote: bool, expected: tuple[str | None, str]) -> None:
    assert _decide(60, "A", current="salesqualifiedlead", demote=demote) == expected


def test_case_15_demo_form_alone_makes_an_mql() -> None:
    result = score(contact(), [form("d1", 1, name="Demo request")], RULES, NOW)
    assert (result.engagement, result.stage_target, result.stage_write) == (70, "marketingqualifiedlead", "set")


def test_case_16_bot_filtered_open_is_not_counted() -> None:
    result = score(contact(), [email_event("o1", EMAIL_OPEN, 1, filtered=True)], RULES, NOW)
    assert points(result, "email-open") == 0


def test_case_17_clamp_to_0_100() -> None:
    # Two helper rules give raw totals of exactly 130 and -20.
    data = example_data()
    data["model"]["engagement"]["rules"].append({"id": "boost", "property": "boost", "exists": True, "points": 130})
    data["model"]["engagement"]["rules"].append({"id": "sink", "property": "sink", "exists": True, "points": -20})
    data["model"]["engagement"]["max"] = 1000
    data["model"]["engagement"]["decay"] = None
    rules = rules_from(data)
    high = score(contact(boost="1"), [], rules, NOW)
    low = score(contact(sink="1"), [], rules, NOW)
    assert (high.fit + high.engagement + high.decay, high.score) == (130, 100)
    assert (low.fit + low.engagement + low.decay, low.score) == (-20, 0)


def test_case_18_sales_feedback_unqualified_gives_minus_100_named() -> None:
    result = score(contact(ls_sales_feedback="unqualified"), [], RULES, NOW)
    assert points(result, "sales-unqualified") == -100
    assert result.fit == -100


def test_the_version_is_the_same_however_the_config_is_loaded() -> None:
    assert example_rules().version == rules_from(example_data()).version


@pytest.mark.parametrize(
    ("cid", "email", "excluded"),
    [("901", "someone@buyer-corp.com", True), ("5", "test@acme-eu.com", True), ("5", "other@buyer-corp.com", False)],
)
def test_named_exclusion_matches_a_contact_named_by_either_email_or_id(cid: str, email: str, excluded: bool) -> None:
    result = score(contact(cid=cid, email=email), [], RULES, NOW)
    assert result.excluded is excluded
    assert result.exclusion_reason == ("named" if excluded else None)


def test_events_after_now_do_not_count_yet() -> None:
    later = form("d1", -3, name="Demo request")  # submitted three days after `now`
    result = score(contact(created_days_ago=61), [later], RULES, NOW)
    assert points(result, "demo-request") == 0
    assert result.decay == -10  # inactivity still counts from createdate


@pytest.mark.parametrize(
    ("stage", "events", "expected"),
    [
        ("customer", [form("d1", 1, name="Demo request")], (None, "none")),  # never touched
        ("marketingqualifiedlead", [form("d1", 1, name="Demo request")], (None, "none")),  # already there
        ("", [form("d1", 1, name="Demo request")], ("marketingqualifiedlead", "set")),
    ],
)
def test_stage_target_is_set_only_when_a_stage_is_written(
    stage: str, events: list[Any], expected: tuple[str | None, str]
) -> None:
    result = score(contact(stage=stage), events, RULES, NOW)
    assert (result.stage_target, result.stage_write) == expected


def test_an_excluded_contact_shows_the_stage_it_would_get_but_writes_none() -> None:
    result = score(contact(email="x@rival.com"), [form("d1", 1, name="Demo request")], RULES, NOW)
    assert (result.stage_target, result.stage_write) == ("marketingqualifiedlead", "none")
    assert "excluded" in result.stage_reason
