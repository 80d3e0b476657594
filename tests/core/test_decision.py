"""decide(): the score, the model, the minimal writes against what HubSpot holds, and what it holds after."""

from __future__ import annotations

from typing import Any

import pytest

from sync.core.decision import Decision, Holding, decide
from sync.core.model import Contact, Event
from sync.core.rules import RuleSet
from tests.factories import NOW_MS, contact, example_data, form, rules_from, unclamped

MQL, SQL = "marketingqualifiedlead", "salesqualifiedlead"
RULES = rules_from(unclamped())
DEMO = [form("d1", 1, name="Demo request")]  # 70 points: score 70, grade C1, MQL (unclamped reference)
WRITTEN_NOW = {
    "ls_score": "70",
    "ls_fit": "0",
    "ls_engagement": "70",
    "ls_grade": "C1",
    "ls_reasons": "+70 demo-request",
}


def decided(
    c: Contact,
    current: dict[str, str] | None = None,
    rules: RuleSet = RULES,
    events: list[Event] | None = None,
    written_stage: str | None = None,
) -> Decision:
    held = c.properties if current is None else current
    return decide(c, DEMO if events is None else events, rules, NOW_MS, held, written_stage=written_stage)


def rules_with(**changes: Any) -> RuleSet:
    data = unclamped()
    data.update(changes.pop("top", {}))
    data["model"]["lifecycle"].update(changes)
    return rules_from(data)


def test_a_new_score_writes_every_owned_property_the_forward_stage_and_scored_at() -> None:
    d = decided(contact())
    assert d.model is not None and d.model.name == d.result.model
    assert d.plan.update is not None and d.plan.stage_change is None
    assert dict(d.plan.update.properties) == {**WRITTEN_NOW, "lifecyclestage": MQL, "ls_scored_at": str(NOW_MS)}
    assert d.reasons == "+70 demo-request"
    assert (d.planned_stage, d.stage_move) == (MQL, None)
    assert d.before == Holding(None, None, "")
    assert d.after == Holding(70, "C1", MQL)


def test_hubspot_holding_the_values_already_is_an_empty_plan_and_no_change() -> None:
    d = decided(contact(stage=MQL), WRITTEN_NOW)
    assert d.plan.empty and d.planned_stage is None
    assert d.before == d.after == Holding(70, "C1", MQL)


def test_hubspots_70_point_0_is_the_70_leadsync_writes() -> None:
    d = decided(contact(stage=MQL), {**WRITTEN_NOW, "ls_score": "70.0", "ls_engagement": "70.00"})
    assert d.plan.empty  # no churn: our own write would bump lastmodifieddate and come back next cycle
    assert d.before.score == d.after.score == 70


def test_the_plan_is_a_diff_against_current_not_the_contacts_own_properties() -> None:
    """The worker passes the values it wrote and HubSpot may not show yet: those count as held."""
    c = contact(stage=MQL)
    assert decided(c).plan.update is not None
    d = decided(c, {**c.properties, **WRITTEN_NOW, "ls_engagement": "65"})
    assert d.plan.update is not None
    assert dict(d.plan.update.properties) == {"ls_engagement": "70", "ls_scored_at": str(NOW_MS)}
    assert d.before == d.after == Holding(70, "C1", MQL)  # engagement is not part of what is compared


def test_a_holdout_contact_is_scored_and_gets_no_write() -> None:
    rules = rules_with(top={"holdout": {"percent": 50, "salt": "s"}})
    held_out = next(c for c in (contact(cid=str(i)) for i in range(100)) if rules.in_holdout(c.id))
    d = decided(held_out, rules=rules)
    assert d.result.holdout and d.result.score == 70 and d.model is not None
    assert d.plan.empty and d.before == d.after == Holding(None, None, "")
    assert d.reasons == "+70 demo-request"  # logged and shown, never written


@pytest.mark.parametrize(
    ("action", "writes", "after"),
    [
        ("skip", None, Holding(70, "C1", MQL)),
        # ls_grade "" against a contact with no grade is no write; the stage is left alone
        (
            "zero",
            {"ls_score": "0", "ls_fit": "0", "ls_engagement": "0", "ls_reasons": "excluded: competitor"},
            Holding(0, None, MQL),
        ),
    ],
)
def test_an_excluded_contact_gets_nothing_or_zeros_and_never_a_stage(
    action: str, writes: dict[str, str] | None, after: Holding
) -> None:
    rival = contact(email="x@rival.com", stage=MQL)
    current = {**rival.properties, **({"ls_score": "70", "ls_grade": "C1"} if action == "skip" else {})}
    d = decided(rival, current, rules=rules_with(top={"exclusion_action": action}))
    assert d.result.excluded and d.result.exclusion_reason == "competitor"
    assert d.plan.stage_change is None and d.planned_stage is None
    if writes is None:
        assert d.plan.empty
    else:
        assert d.plan.update is not None
        assert {k: v for k, v in d.plan.update.properties.items() if k != "ls_scored_at"} == writes
        assert "lifecyclestage" not in d.plan.update.properties
    assert d.after == after


def test_a_demotion_of_a_stage_leadsync_wrote_is_a_clear_then_set() -> None:
    c = contact(stage=SQL, need_level="core", industry="ENERGY")
    d = decided(c, events=[], rules=rules_with(demote=True), written_stage=SQL)
    assert d.plan.stage_change is not None and d.plan.stage_change.clear_first
    assert d.stage_move == d.planned_stage == "lead"
    assert d.plan.update is not None and "lifecyclestage" not in d.plan.update.properties
    assert (d.before.stage, d.after.stage) == (SQL, "lead")


@pytest.mark.parametrize("written_stage", [None, MQL])
def test_a_demotion_of_a_stage_leadsync_did_not_write_is_held_back(written_stage: str | None) -> None:
    c = contact(stage=SQL, need_level="core", industry="ENERGY")
    d = decided(c, events=[], rules=rules_with(demote=True), written_stage=written_stage)
    assert d.result.stage_held is not None and "held back" in d.result.stage_held
    assert d.stage_move is None and d.planned_stage is None
    assert d.after.stage == SQL


def test_a_contact_no_model_takes_is_decided_with_no_model_and_no_write() -> None:
    data = example_data()
    model = data.pop("model")
    data["models"] = [{**model, "name": "energy", "segment": {"property": "industry", "equals": "ENERGY"}}]
    retail = contact(industry="RETAIL", stage="lead")
    d = decided(retail, {**retail.properties, "ls_score": "12"}, rules=rules_from(data))
    assert d.model is None and d.result.exclusion_reason == "no_model"
    assert d.plan.empty
    assert d.before == d.after == Holding(12, None, "lead")  # read through the first model's properties
