"""Bounces in the core: hard ones count unless a rule asks for soft or any; an un-bounce lifts earlier ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from sync.core.conditions import EventFilter, describe_filter
from sync.core.model import EMAIL_BOUNCE, EMAIL_OPEN, EMAIL_UNBOUNCE, EmailEvent, Event
from sync.core.rules import RuleSet
from sync.core.scoring import score
from sync.errors import ConfigError
from tests.factories import NOW, contact, email_event, ms_ago, rules_from


def bounce(eid: str, days_ago: float, soft: bool = False) -> EmailEvent:
    return EmailEvent(eid, EMAIL_BOUNCE, ms_ago(days_ago), "jane@buyer-corp.com", "c1", category="", soft_bounce=soft)


def unbounce(eid: str, days_ago: float) -> EmailEvent:
    return email_event(eid, EMAIL_UNBOUNCE, days_ago)


def rules(**flt: Any) -> RuleSet:
    rule = {"id": "bounced", "event": "email_bounce", "points": -10, "per": "occurrence", **flt}
    model = {"fit": {"rules": []}, "engagement": {"rules": [rule]}}
    return rules_from({"portal": {"id": 1, "name": "test-portal", "token_env": "HUBSPOT_TOKEN_TEST"}, "model": model})


def bounced_points(events: Sequence[Event], **flt: Any) -> float:
    (hit,) = [h for h in score(contact(), events, rules(**flt), NOW).breakdown if h.rule == "bounced"]
    return hit.points


MIXED = [bounce("h1", 3), bounce("h2", 5), bounce("s1", 4, soft=True)]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({}, -20),  # hard by default
        ({"bounce": "hard"}, -20),
        ({"bounce": "soft"}, -10),
        ({"bounce": "any"}, -30),
    ],
)
def test_a_bounce_rule_counts_hard_bounces_unless_it_asks_for_soft_or_any(flt: dict[str, str], expected: int) -> None:
    assert bounced_points(MIXED, **flt) == expected


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([bounce("b1", 10), unbounce("u1", 5)], 0),  # lifted
        ([bounce("b1", 10), bounce("b2", 8), unbounce("u1", 5)], 0),  # every earlier bounce is lifted
        ([bounce("b1", 10), unbounce("u1", 5), bounce("b2", 2)], -10),  # a bounce after the un-bounce counts
        ([unbounce("u1", 5), bounce("b1", 2)], -10),
        ([bounce("b1", 10), unbounce("u1", 7), unbounce("u2", 5)], 0),
        ([bounce("b1", 10)], -10),
        ([unbounce("u1", 5)], 0),
        ([bounce("b1", 10), unbounce("u1", -1)], -10),  # an un-bounce after now does not exist yet
    ],
)
def test_an_unbounce_lifts_the_contacts_earlier_bounces(events: list[Event], expected: int) -> None:
    assert bounced_points(events, bounce="any") == expected


def test_an_unbounce_at_the_same_moment_lifts_the_bounce() -> None:
    b = bounce("b1", 10)
    u = EmailEvent("u1", EMAIL_UNBOUNCE, b.at_ms, b.email)
    assert bounced_points([b, u]) == 0


def test_an_unbounce_touches_nothing_but_bounces() -> None:
    opened = email_event("o1", EMAIL_OPEN, 10)
    model = {"fit": {"rules": []}, "engagement": {"rules": [{"id": "opened", "event": "email_open", "points": 3}]}}
    rs = rules_from({"portal": {"id": 1, "name": "test-portal", "token_env": "HUBSPOT_TOKEN_TEST"}, "model": model})
    result = score(contact(), [opened, unbounce("u1", 1)], rs, NOW)
    assert result.engagement == 3


def test_the_rule_set_reads_unbounces_only_when_some_rule_reads_bounces() -> None:
    assert EMAIL_UNBOUNCE in rules().event_kinds
    model = {"fit": {"rules": []}, "engagement": {"rules": [{"id": "opened", "event": "email_open", "points": 3}]}}
    rs = rules_from({"portal": {"id": 1, "name": "test-portal", "token_env": "HUBSPOT_TOKEN_TEST"}, "model": model})
    assert EMAIL_UNBOUNCE not in rs.event_kinds


def test_a_bounce_condition_uses_the_filter_too() -> None:
    soft_only = {"id": "soft-only", "points": 5, "all": [{"event": "email_bounce", "bounce": "soft"}]}
    model = {"fit": {"rules": []}, "engagement": {"rules": [soft_only]}}
    rs = rules_from({"portal": {"id": 1, "name": "test-portal", "token_env": "HUBSPOT_TOKEN_TEST"}, "model": model})
    assert score(contact(), [bounce("h1", 1)], rs, NOW).engagement == 0
    assert score(contact(), [bounce("s1", 1, soft=True)], rs, NOW).engagement == 5


@pytest.mark.parametrize(
    ("flt", "text"),
    [
        (EventFilter(EMAIL_BOUNCE), "email_bounce"),
        (EventFilter(EMAIL_BOUNCE, bounce="soft"), "email_bounce, soft bounces"),
        (EventFilter(EMAIL_BOUNCE, bounce="any"), "email_bounce, any bounces"),
    ],
)
def test_a_bounce_filter_describes_itself(flt: EventFilter, text: str) -> None:
    assert describe_filter(flt) == text


def test_bounce_is_refused_on_other_event_types() -> None:
    model = {
        "fit": {"rules": []},
        "engagement": {"rules": [{"id": "opened", "event": "email_open", "bounce": "soft", "points": 3}]},
    }
    with pytest.raises(ConfigError, match="bounce applies to email_bounce events, not email_open"):
        rules_from({"portal": {"id": 1, "name": "test-portal", "token_env": "HUBSPOT_TOKEN_TEST"}, "model": model})


def test_an_unknown_bounce_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="bounce"):
        rules(bounce="permanent")
