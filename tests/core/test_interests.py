"""Product-interest scores (docs/SCORING.md section 7): named extra scores beside the lead score.

Each is scored by the lead score's own steps from its own rules (segment, decay, clamp), is written diff-only
to its own properties, one property at a time, and never moves a lifecycle stage.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.core.decision import Decision, decide
from sync.core.model import Contact, Event, InterestResult
from sync.core.planning import interest_values
from sync.core.rules import RuleSet
from sync.core.scoring import score_at
from tests.factories import NOW_MS, contact, email_event, example_data, form, rules_from, unclamped

PRODUCT_A: dict[str, Any] = {
    "name": "product_a",
    "rules": [
        {"id": "pricing-form", "event": "form_submission", "page_url_contains": ["/pricing"], "points": 30},
        {"id": "pricing-click", "event": "email_click", "url_contains": ["/pricing"], "points": 10},
        {"id": "trial", "property": "product_a_trial", "map": {"yes": 15}},  # no lead-score rule reads it
    ],
    "decay": {"inactivity": [{"after_days": 60, "points": -10}, {"after_days": 90, "points": -25}]},
    "total": {"clamp": [0, 100]},
}
PRODUCT_B: dict[str, Any] = {
    "name": "product_b",
    "segment": {"property": "industry", "equals": "ENERGY"},
    "properties": {"score": "ls_b", "reasons": False},
    "rules": [{"id": "ebook", "event": "form_submission", "form_name_contains": ["ebook"], "points": 20}],
}


def rules_with(*interests: dict[str, Any], data: dict[str, Any] | None = None) -> RuleSet:
    data = data if data is not None else unclamped()
    data["interests"] = list(interests)
    return rules_from(data)


RULES = rules_with(PRODUCT_A, PRODUCT_B)
PRICING = form("p1", 5, name="Book a demo", page_url="https://x.example/pricing")
CLICK = email_event("c1", "email_click", 3, url="https://x.example/pricing")


def interest(c: Contact, events: list[Event], name: str, rules: RuleSet = RULES) -> InterestResult:
    result = score_at(c, events, rules, NOW_MS)
    return next(i for i in result.interests if i.name == name)


def decided(c: Contact, events: list[Event], current: dict[str, str], rules: RuleSet = RULES) -> Decision:
    return decide(c, events, rules, NOW_MS, current)


def test_each_interest_is_scored_from_its_own_rules_and_its_lines_add_up() -> None:
    result = score_at(contact(industry="ENERGY"), [PRICING, CLICK, form("e1", 2, name="Energy ebook")], RULES, NOW_MS)
    a, b = result.interests
    assert (a.name, a.score, a.points, a.decay) == ("product_a", 40, 40, 0)
    assert (b.name, b.score) == ("product_b", 20)
    for one in (a, b):
        assert one.score is not None and sum(h.cents for h in one.breakdown) == one.score * 100
    assert [h.rule for h in a.breakdown if h.matched] == ["pricing-form", "pricing-click"]


def test_the_lead_score_is_the_same_with_or_without_interests() -> None:
    events: list[Event] = [PRICING, CLICK, form("d1", 1, name="Demo request")]
    with_interests = score_at(contact(), events, RULES, NOW_MS)
    without = score_at(contact(), events, rules_from(unclamped()), NOW_MS)
    assert (with_interests.score, with_interests.breakdown) == (without.score, without.breakdown)
    assert without.interests == ()


@pytest.mark.parametrize(
    ("industry", "expected"),
    [("ENERGY", 20), ("energy", 20), ("FINANCE", None), ("", None)],
)
def test_a_segment_chooses_the_contacts_that_get_the_interest(industry: str, expected: int | None) -> None:
    c = contact(industry=industry) if industry else contact()
    assert interest(c, [form("e1", 2, name="Energy ebook")], "product_b").score == expected


@pytest.mark.parametrize(("days", "decay", "score"), [(59, 0, 30), (60, -10, 20), (90, -25, 5), (200, -25, 5)])
def test_decay_counts_from_the_newest_engagement_event(days: int, decay: int, score: int) -> None:
    old_pricing = form("p1", days, page_url="https://x.example/pricing")
    found = interest(contact(created_days_ago=400), [old_pricing], "product_a")
    assert (found.decay, found.score) == (decay, score)


def test_the_clamp_bounds_the_interest_with_a_line_for_it() -> None:
    found = interest(contact(created_days_ago=400), [], "product_a")  # no events: decay from createdate, -25
    assert found.score == 0 and found.decay == -25
    assert [h.rule for h in found.breakdown][-1] == "total:clamp"


def test_a_high_interest_never_moves_a_stage() -> None:
    hot = rules_with({**PRODUCT_A, "rules": [{"id": "any-form", "event": "form_submission", "points": 500}]})
    d = decided(contact(stage="lead"), [form("f1", 1, name="Ebook download")], {}, hot)
    assert d.result.interests[0].score == 100
    assert d.result.score < 50 and d.result.stage_write == "none" and d.result.stage_target is None
    assert d.plan.stage_change is None
    assert d.plan.update is not None and "lifecyclestage" not in d.plan.update.properties


def written(d: Decision) -> dict[str, str]:
    return dict(d.plan.update.properties) if d.plan.update is not None else {}


def settled(c: Contact, events: list[Event]) -> tuple[Contact, dict[str, str]]:
    """The contact and what HubSpot holds once a first run wrote it: its stage and our properties."""
    held = {k: v for k, v in written(decided(c, events, {})).items() if k != "ls_scored_at"}
    stage = held.pop("lifecyclestage", c.lifecycle_stage)
    moved = Contact(c.id, c.properties, c.email, c.created_at_ms, stage, c.list_ids)
    return moved, held


def test_a_new_contact_gets_every_interest_property() -> None:
    d = decided(contact(industry="ENERGY"), [PRICING, form("e1", 2, name="Energy ebook")], {})
    out = written(d)
    assert out["ls_interest_product_a"] == "30"
    assert out["ls_interest_product_a_reasons"] == "+30 pricing-form"
    assert out["ls_b"] == "20"
    assert "ls_interest_product_b_reasons" not in out  # reasons: false


def test_a_change_to_one_interest_writes_its_properties_only() -> None:
    events: list[Event] = [PRICING, form("e1", 2, name="Energy ebook")]
    c, held = settled(contact(industry="ENERGY"), events)
    assert decided(c, events, held).plan.empty
    trial = Contact(c.id, {**c.properties, "product_a_trial": "yes"}, c.email, c.created_at_ms, c.lifecycle_stage)
    changed = written(decided(trial, events, held))
    assert changed == {
        "ls_interest_product_a": "45",
        "ls_interest_product_a_reasons": "+30 pricing-form; +15 trial=yes",
        "ls_scored_at": str(NOW_MS),
    }


def test_a_number_held_in_another_form_is_not_rewritten() -> None:
    events: list[Event] = [PRICING, form("e1", 2, name="Energy ebook")]
    c, held = settled(contact(industry="ENERGY"), events)
    held["ls_b"] = "20.0"  # HubSpot may hand a number back so
    assert decided(c, events, held).plan.empty


def test_leaving_a_segment_clears_the_interest_and_only_it() -> None:
    events: list[Event] = [form("e1", 2, name="Energy ebook")]
    c, held = settled(contact(industry="ENERGY"), events)
    finance = Contact(c.id, {**c.properties, "industry": "FINANCE"}, c.email, c.created_at_ms, c.lifecycle_stage)
    moved = written(decided(finance, events, held))
    assert moved["ls_b"] == ""
    assert not any(k.startswith("ls_interest_product_a") for k in moved)


def test_holdout_contacts_get_no_interest_writes() -> None:
    data = unclamped()
    data["holdout"] = {"percent": 50, "salt": "s"}
    rules = rules_with(PRODUCT_A, data=data)
    held_out = next(c for c in (contact(cid=str(i)) for i in range(100)) if rules.in_holdout(c.id))
    d = decided(held_out, [PRICING], {}, rules)
    assert d.result.interests[0].score == 30 and d.plan.empty


@pytest.mark.parametrize(("action", "expected"), [("skip", {}), ("zero", {"ls_interest_product_a": "0"})])
def test_an_excluded_contact_follows_the_exclusion_action(action: str, expected: dict[str, str]) -> None:
    data = unclamped()
    data["exclusion_action"] = action
    rules = rules_with(PRODUCT_A, data=data)
    out = written(decided(contact(email="x@rival.com"), [PRICING], {}, rules))
    assert {k: v for k, v in out.items() if k == "ls_interest_product_a"} == expected
    if action == "zero":
        assert out["ls_interest_product_a_reasons"] == "excluded: competitor"


def test_interest_values_of_no_specs_are_none() -> None:
    result = score_at(contact(), [PRICING], RULES, NOW_MS)
    assert interest_values((), result.interests) == {}


def test_rules_read_by_interests_are_pulled() -> None:
    rules = rules_with({"name": "x", "rules": [{"id": "r", "property": "favourite_colour", "map": {"red": 5}}]})
    assert "favourite_colour" in rules.properties_read
    clicks = rules_with({"name": "y", "rules": [{"id": "r", "event": "email_spam_report", "points": -5}]})
    assert "email_spam_report" in clicks.event_kinds


def test_the_version_covers_interest_rules_but_not_their_property_names() -> None:
    base = rules_from(example_data()).version
    one = rules_with(PRODUCT_A, data=example_data()).version
    renamed = rules_with({**PRODUCT_A, "properties": {"score": "ls_a"}}, data=example_data()).version
    more = rules_with({**PRODUCT_A, "total": {"clamp": [0, 50]}}, data=example_data()).version
    assert base != one and one == renamed and more != one
    assert rules_with(data=example_data()).version == base  # an empty interests: list keeps the hash
