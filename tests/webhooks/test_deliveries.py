"""Deliveries: contact events of legacy and project apps, other objects left out, repeats recognised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.webhooks import DeliveryError, Seen, parse_delivery


def event(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventId": 1,
        "subscriptionId": 9,
        "portalId": 7,
        "appId": 3,
        "occurredAt": 1_000,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 42,
        "propertyName": "recent_conversion_date",
        "propertyValue": "1000",
        "changeSource": "FORM",
    }
    base.update(fields)
    return base


def body(*events: object) -> bytes:
    return json.dumps(list(events)).encode()


def test_contact_events_of_legacy_and_project_apps_are_read() -> None:
    parsed = parse_delivery(
        body(
            event(subscriptionType="contact.creation", propertyName=None, propertyValue=None),
            event(),
            event(subscriptionType="object.propertyChange", objectTypeId="0-1", objectId="43", propertyName="jobtitle"),
        )
    )
    assert [(e.kind, e.contact_id, e.prop) for e in parsed.events] == [
        ("creation", "42", ""),
        ("property_change", "42", "recent_conversion_date"),
        ("property_change", "43", "jobtitle"),
    ]
    assert parsed.events[1].value == "1000" and parsed.events[1].source == "FORM"


def test_other_objects_and_kinds_are_ignored_and_malformed_events_skipped_with_a_reason() -> None:
    parsed = parse_delivery(
        body(
            event(subscriptionType="company.propertyChange"),
            event(subscriptionType="object.propertyChange", objectTypeId="0-2"),
            event(subscriptionType="contact.deletion"),
            event(objectId="not a number"),
            event(propertyName=""),
            "not an object",
            event(),
        )
    )
    assert len(parsed.events) == 1
    assert parsed.ignored == 6
    assert len(parsed.problems) == 3 and "whole numbers" in parsed.problems[0]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(b"{not json", "not JSON"), (b'{"a": 1}', "JSON array"), (body(*[event()] * 101), "at most 100")],
)
def test_a_body_that_is_no_delivery_is_refused(raw: bytes, problem: str) -> None:
    with pytest.raises(DeliveryError, match=problem):
        parse_delivery(raw)


def test_repeated_events_are_recognised_by_what_they_say_not_by_event_id() -> None:
    seen = Seen()
    first = parse_delivery(body(event(eventId=1), event(eventId=1, occurredAt=2_000), event(eventId=1))).events
    assert len(seen.new(first)) == 2  # same eventId, another time: another event; the exact repeat: none
    retried = parse_delivery(body(event(eventId=99, attemptNumber=1))).events  # a retry: new eventId, same event
    assert seen.new(retried) == []
    other_portal = parse_delivery(body(event(portalId=8))).events
    assert len(seen.new(other_portal)) == 1


def test_the_memory_of_seen_events_is_bounded() -> None:
    seen = Seen(capacity=10)
    events = parse_delivery(body(*[event(occurredAt=i) for i in range(30)])).events
    assert len(seen.new(events)) == 30
    assert len(seen.new(events[:20])) == 20  # forgotten: processed again (idempotently), never unbounded
    assert seen.new(events[10:20]) == []  # the ten seen last are remembered
