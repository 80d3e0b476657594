"""plan_contact: only what differs is written; nothing for holdout or skipped exclusions; stages by kind."""

from __future__ import annotations

import pytest

from sync.core.planning import plan_contact
from sync.core.rules import OutputProperties
from sync.core.scoring import reasons_text, score
from tests.factories import NOW, NOW_MS, contact, example_data, form, rules_from, unclamped

PROPS = OutputProperties()
RULES = rules_from(unclamped())


def written(result_contact: object, current: dict[str, str] | None = None, action: str = "skip") -> dict[str, str]:
    c = result_contact
    result = score(c, [form("d1", 1, name="Demo request")], RULES, NOW)  # type: ignore[arg-type]
    plan = plan_contact(result, c, PROPS, action, NOW_MS, current)  # type: ignore[arg-type]
    return dict(plan.update.properties) if plan.update else {}


def test_a_new_score_writes_every_owned_property_the_forward_stage_and_scored_at() -> None:
    values = written(contact())
    assert values == {
        "ls_score": "70",
        "ls_fit": "0",
        "ls_engagement": "70",
        "ls_grade": "C1",
        "ls_reasons": "+70 demo-request",
        "lifecyclestage": "marketingqualifiedlead",
        "ls_scored_at": str(NOW_MS),
    }


def test_nothing_is_written_when_hubspot_already_holds_the_values() -> None:
    c = contact(stage="marketingqualifiedlead")
    result = score(c, [form("d1", 1, name="Demo request")], RULES, NOW)
    held = {
        "ls_score": "70.0",
        "ls_fit": "0",
        "ls_engagement": "70",
        "ls_grade": "C1",
        "ls_reasons": reasons_text(result),
    }
    plan = plan_contact(result, c, PROPS, "skip", NOW_MS, held)
    assert plan.empty  # no churn: "70.0" equals 70, and scored_at alone is never written


def test_only_the_values_that_differ_are_written() -> None:
    held = {"ls_score": "70", "ls_fit": "0", "ls_engagement": "65", "ls_grade": "C1", "ls_reasons": "+70 demo-request"}
    assert written(contact(stage="marketingqualifiedlead"), held) == {
        "ls_engagement": "70",
        "ls_scored_at": str(NOW_MS),
    }


def test_a_holdout_contact_gets_no_write() -> None:
    data = unclamped()
    data["holdout"] = {"percent": 50, "salt": "s"}
    rules = rules_from(data)
    holdout = next(c for c in (contact(cid=str(i)) for i in range(100)) if rules.in_holdout(c.id))
    result = score(holdout, [form("d1", 1, name="Demo request")], rules, NOW)
    assert result.holdout and plan_contact(result, holdout, PROPS, "skip", NOW_MS).empty


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("skip", {}),
        (
            "zero",
            # ls_grade is "" and the contact has none: clearing an empty value is no write
            {"ls_score": "0", "ls_fit": "0", "ls_engagement": "0", "ls_reasons": "excluded: competitor"},
        ),
    ],
)
def test_an_excluded_contact_gets_nothing_or_zeros_and_never_a_stage(action: str, expected: dict[str, str]) -> None:
    values = written(contact(email="x@rival.com"), action=action)
    values.pop("ls_scored_at", None)
    assert values == expected


def test_a_backward_stage_move_is_a_separate_clear_then_set() -> None:
    data = example_data()
    data["model"]["lifecycle"]["demote"] = True
    rules = rules_from(data)
    c = contact(stage="salesqualifiedlead", need_level="core", industry="ENERGY")
    result = score(c, [], rules, NOW, written_stage="salesqualifiedlead")  # a stage leadsync wrote
    plan = plan_contact(result, c, PROPS, "skip", NOW_MS)
    assert plan.stage_change is not None
    assert (plan.stage_change.stage, plan.stage_change.clear_first) == ("lead", True)
    assert plan.update is not None and "lifecyclestage" not in plan.update.properties
