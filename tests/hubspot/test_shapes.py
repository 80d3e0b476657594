"""HubSpot wire records -> core values: contacts, form submissions, marketing email events."""

from __future__ import annotations

from typing import Any

import pytest

from sync.core.model import (
    EMAIL_BOUNCE,
    EMAIL_CLICK,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    EMAIL_SENT,
    EMAIL_SPAM_REPORT,
    EMAIL_UNBOUNCE,
    EMAIL_UNSUBSCRIBE,
)
from sync.errors import SkippableRecordError
from sync.hubspot.shapes import contact_from_wire, email_event_from_wire, email_event_to_wire, submission_from_wire

CREATED_MS = 1_776_254_400_000  # 2026-04-15T12:00:00Z


# --- contacts ----------------------------------------------------------------------------


def test_a_contact_keeps_its_properties_as_strings() -> None:
    got = contact_from_wire(
        {
            "id": 101,
            "properties": {
                "email": "  Maria.Ionescu@VoltGrid.ro ",
                "createdate": "2026-04-15T12:00:00.000Z",
                "lifecyclestage": "lead",
                "numberofemployees": "800",
            },
        },
        frozenset({42}),
    )
    assert (got.id, got.email, got.created_at_ms, got.lifecycle_stage, got.list_ids) == (
        "101",
        "maria.ionescu@voltgrid.ro",
        CREATED_MS,
        "lead",
        frozenset({42}),
    )
    assert got.properties["numberofemployees"] == "800"


def test_null_properties_are_dropped_and_other_values_become_strings() -> None:
    got = contact_from_wire({"id": "1", "properties": {"industry": None, "hs_analytics_num_visits": 7, "x": True}})
    assert dict(got.properties) == {"hs_analytics_num_visits": "7", "x": "True"}


@pytest.mark.parametrize(
    ("createdate", "expected"),
    [
        ("2026-04-15T12:00:00.000Z", CREATED_MS),
        ("2026-04-15T12:00:00Z", CREATED_MS),
        ("2026-04-15T14:00:00+02:00", CREATED_MS),
        (str(CREATED_MS), CREATED_MS),
        (CREATED_MS, CREATED_MS),
        (None, None),
        ("", None),
        ("   ", None),  # blank: no create date
        ("0", None),  # at or before 1970: cannot be real, so no create date
        ("-86400000", None),
        ("1970-01-01T00:00:00Z", None),
        ("2999-01-01T00:00:00Z", 32_472_144_000_000),  # after now: kept; ages count it as 0 days
    ],
)
def test_createdate_as_iso_or_epoch_ms(createdate: Any, expected: int | None) -> None:
    assert contact_from_wire({"id": "1", "properties": {"createdate": createdate}}).created_at_ms == expected


def test_a_contact_without_properties_has_none() -> None:
    got = contact_from_wire({"id": "1"})
    assert (dict(got.properties), got.email, got.created_at_ms, got.lifecycle_stage) == ({}, "", None, "")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"properties": {"email": "orphan@nowhere.com"}}, "has no id"),
        ({"id": "  ", "properties": {}}, "has no id"),
        ({"id": None}, "has no id"),
        ({"id": "114", "properties": {"createdate": "last tuesday"}}, "createdate is not a date"),
        ({"id": "1", "properties": ["email"]}, "properties is not an object"),
        (["id", "1"], "is not an object"),
        ("101", "is not an object"),
    ],
)
def test_a_bad_contact_is_a_skippable_record(raw: Any, message: str) -> None:
    with pytest.raises(SkippableRecordError, match=message):
        contact_from_wire(raw)


def test_a_digit_like_createdate_is_a_skippable_record() -> None:
    with pytest.raises(SkippableRecordError):
        contact_from_wire({"id": "1", "properties": {"createdate": "--1"}})


# --- form submissions -----------------------------------------------------------------------


def submission(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "conversionId": "cv-1",
        "submittedAt": 1_793_275_200_000,
        "values": [{"name": "firstname", "value": "x"}, {"name": "email", "value": " Maria@VoltGrid.ro "}],
        "pageUrl": "https://acme-eu.example/pricing",
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def test_a_submission_is_tied_to_its_email_and_named_after_its_form() -> None:
    got = submission_from_wire(submission(), "f-demo", "Demo request")
    assert (got.event_id, got.at_ms, got.email, got.form_id, got.form_name, got.page_url) == (
        "cv-1",
        1_793_275_200_000,
        "maria@voltgrid.ro",
        "f-demo",
        "Demo request",
        "https://acme-eu.example/pricing",
    )


@pytest.mark.parametrize(
    ("submitted_at", "expected"),
    [
        (1_793_275_200_000, 1_793_275_200_000),
        (1_793_275_200_000.0, 1_793_275_200_000),
        ("1793275200000", 1_793_275_200_000),
        ("2026-10-29T12:00:00Z", 1_793_275_200_000),
    ],
)
def test_submitted_at_as_number_or_text(submitted_at: Any, expected: int) -> None:
    assert submission_from_wire(submission(submittedAt=submitted_at), "f").at_ms == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"values": [{"name": "firstname", "value": "x"}]}, "has no email value"),
        ({"values": None}, "has no email value"),
        ({"values": [{"name": "email", "value": ""}]}, "has no email value"),
        ({"values": {"email": "a@b.c"}}, "values is not a list"),
        ({"submittedAt": "not-a-time"}, "submittedAt"),
        ({"submittedAt": None}, "submittedAt"),
        ({"submittedAt": True}, "submittedAt"),
    ],
)
def test_a_bad_submission_is_a_skippable_record(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SkippableRecordError, match=message):
        submission_from_wire(submission(**changes), "f")


@pytest.mark.parametrize("at", [0, -1, -5000, "0", "-86400000", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", 0.5])
def test_an_event_at_or_before_1970_is_a_skippable_record(at: Any) -> None:
    with pytest.raises(SkippableRecordError, match="at or before 1970-01-01: not a real time"):
        submission_from_wire(submission(submittedAt=at), "f")
    with pytest.raises(SkippableRecordError, match="at or before 1970-01-01: not a real time"):
        email_event_from_wire(email(created=at))


@pytest.mark.parametrize(
    ("at", "expected"),
    [(1, 1), (32_472_144_000_000, 32_472_144_000_000), ("2999-01-01T00:00:00Z", 32_472_144_000_000)],
)
def test_an_event_after_1970_is_kept_with_its_time_even_after_now(at: Any, expected: int) -> None:
    assert submission_from_wire(submission(submittedAt=at), "f").at_ms == expected
    got = email_event_from_wire(email(created=at))
    assert got is not None and got.at_ms == expected


def test_a_submission_that_is_not_an_object_is_a_skippable_record() -> None:
    with pytest.raises(SkippableRecordError, match="is not an object"):
        submission_from_wire(["cv-1"], "f")


# --- email events -----------------------------------------------------------------------------


def email(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": "e-1",
        "type": "OPEN",
        "recipient": " Maria@VoltGrid.ro",
        "created": 1_793_534_400_000,
        "emailCampaignId": 501,
        "filteredEvent": False,
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


@pytest.mark.parametrize(
    ("wire_type", "kind"),
    [
        ("SENT", EMAIL_SENT),
        ("DELIVERED", EMAIL_DELIVERED),
        ("OPEN", EMAIL_OPEN),
        ("open", EMAIL_OPEN),
        ("CLICK", EMAIL_CLICK),
        ("BOUNCE", EMAIL_BOUNCE),
        ("SPAMREPORT", EMAIL_SPAM_REPORT),
    ],
)
def test_email_event_types_map_to_core_kinds(wire_type: str, kind: str) -> None:
    got = email_event_from_wire(email(type=wire_type))
    assert got is not None
    assert (got.kind, got.event_id, got.email, got.at_ms, got.campaign_id) == (
        kind,
        "e-1:1793534400000",
        "maria@voltgrid.ro",
        1_793_534_400_000,
        "501",
    )


def test_a_click_keeps_its_url() -> None:
    got = email_event_from_wire(email(type="CLICK", url="https://acme-eu.example/pricing"))
    assert got is not None
    assert got.url == "https://acme-eu.example/pricing"


@pytest.mark.parametrize(
    "change",
    [
        {"portalSubscriptionStatus": "UNSUBSCRIBED"},
        {"portalSubscriptionStatus": "unsubscribed"},
        {"subscriptions": [{"id": 1, "status": "UNSUBSCRIBED"}]},
        {"subscriptions": [{"id": 1, "status": "SUBSCRIBED"}, {"id": 2, "status": "UNSUBSCRIBED"}]},
    ],
)
def test_a_statuschange_to_unsubscribed_is_an_unsubscribe(change: dict[str, Any]) -> None:
    got = email_event_from_wire(email(type="STATUSCHANGE", **change))
    assert got is not None
    assert got.kind == EMAIL_UNSUBSCRIBE


@pytest.mark.parametrize(
    "change",
    [
        {"portalSubscriptionStatus": "SUBSCRIBED"},
        {"subscriptions": [{"id": 1, "status": "SUBSCRIBED"}]},
        {"subscriptions": []},
        {},
    ],
)
def test_a_statuschange_to_subscribed_is_not_scored(change: dict[str, Any]) -> None:
    assert email_event_from_wire(email(type="STATUSCHANGE", **change)) is None


@pytest.mark.parametrize("wire_type", ["DROPPED", "PROCESSED", "DEFERRED", "PRINT", "FORWARD", "dropped"])
def test_unscored_types_are_ignored(wire_type: str) -> None:
    assert email_event_from_wire(email(type=wire_type)) is None


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (None, False)])
def test_filtered_event_marks_bot_traffic(value: bool | None, expected: bool) -> None:
    got = email_event_from_wire(email(filteredEvent=value))
    assert got is not None
    assert got.filtered is expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (email(type="TELEPORT"), "unknown event type 'TELEPORT'"),
        (email(type=None), "unknown event type"),
        (email(id=None), "has no id"),
        (email(recipient=None), "has no recipient"),
        (email(recipient="  "), "has no recipient"),
        (email(created=None), "created"),
        (email(created="yesterday"), "created"),
        (email(created=False), "created"),
        ("OPEN", "is not an object"),
    ],
)
def test_a_bad_email_event_is_a_skippable_record(raw: Any, message: str) -> None:
    with pytest.raises(SkippableRecordError, match=message):
        email_event_from_wire(raw)


@pytest.mark.parametrize("created", [float("inf"), float("nan")])
def test_a_non_finite_timestamp_is_a_skippable_record(created: float) -> None:
    with pytest.raises(SkippableRecordError):
        email_event_from_wire(email(created=created))


MIXED = [{"id": 1, "status": "UNSUBSCRIBED"}, {"id": 2, "status": "SUBSCRIBED"}]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        # From everything: portalSubscriptionStatus decides, whatever the subscriptions array says.
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "subscriptions": []}, EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "subscriptions": MIXED}, EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "subscriptions": [{"id": 7, "status": "SUBSCRIBED"}]},
         EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "subscriptions": "n/a"}, EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": " unsubscribed ", "source": "SOURCE_RECIPIENT"}, EMAIL_UNSUBSCRIBE),
        # From one subscription type: the array says so.
        ({"portalSubscriptionStatus": "SUBSCRIBED", "subscriptions": MIXED}, EMAIL_UNSUBSCRIBE),
        ({"subscriptions": [{"id": 7, "status": "UNSUBSCRIBED"}], "source": "SOURCE_RECIPIENT"}, EMAIL_UNSUBSCRIBE),
        # A resubscribe, or a change that unsubscribes from nothing, is not scored.
        ({"portalSubscriptionStatus": "SUBSCRIBED", "subscriptions": [{"id": 7, "status": "SUBSCRIBED"}]}, None),
        ({"portalSubscriptionStatus": "SUBSCRIBED", "subscriptions": []}, None),
        ({"subscriptions": [{"id": 7, "status": "SUBSCRIBED"}, "UNSUBSCRIBED"]}, None),
        ({}, None),
        # Who made the change: the recipient (or a portal user for them) counts; bounces, spam reports,
        # imports, migrations and HubSpot's clean-ups do not, however unsubscribed the change looks.
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_LIST_UNSUBSCRIBE"}, EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_HUBSPOT_CUSTOMER"}, EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_DIRECT_COMPLAINT"}, EMAIL_UNSUBSCRIBE),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_NON_DELIVERY_REPORT"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "source_non_delivery_report"}, None),
        ({"subscriptions": [{"id": 7, "status": "UNSUBSCRIBED"}], "source": "SOURCE_BOUNCE"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "subscriptions": MIXED, "source": "SOURCE_SPAM_REPORT"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_IMPORT"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_MIGRATION"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_HUBSPOT_CLEANUP"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "source": "SOURCE_KNOWN_SPAM_TRAP"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "changeType": "PORTAL_BOUNCE"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "changeType": "PORTAL_SPAM_REPORT"}, None),
        ({"portalSubscriptionStatus": "UNSUBSCRIBED", "bounced": True}, None),
    ],
)  # fmt: skip
def test_only_a_change_to_unsubscribed_by_the_recipient_is_an_unsubscribe(
    fields: dict[str, Any], kind: str | None
) -> None:
    event = email_event_from_wire({"id": "e1", "type": "STATUSCHANGE", "recipient": "a@b.com", "created": 1, **fields})
    assert (event.kind if event else None) == kind


@pytest.mark.parametrize(
    ("fields", "soft"),
    [
        ({"category": "UNKNOWN_USER"}, False),
        ({"category": "unknown_user"}, False),
        ({"category": "MAILBOX_MISCONFIGURATION"}, False),
        ({"category": "MAILBOX_FULL"}, True),
        ({"category": "THROTTLED"}, True),
        ({"category": "TIMEOUT"}, True),
        ({"category": "DNS_FAILURE"}, True),
        ({"category": "CONTENT"}, True),
        ({"category": "SPAM"}, True),
        ({"category": "POLICY"}, True),
        ({"category": "GREYLISTING"}, True),
        ({"category": "UNCATEGORIZED"}, True),
        ({"category": "UNKNOWN"}, True),
        ({"category": "HARD_BOUNCE"}, True),  # not a HubSpot category: nothing says the address is gone
        ({}, True),
        ({"category": None}, True),
    ],
)
def test_only_a_hard_category_makes_a_hard_bounce(fields: dict[str, Any], soft: bool) -> None:
    event = email_event_from_wire(email(type="BOUNCE", **fields))
    assert event is not None
    assert (event.kind, event.soft_bounce, event.category) == (
        EMAIL_BOUNCE,
        soft,
        (fields.get("category") or "").upper(),
    )


@pytest.mark.parametrize(
    ("obsoleted_by", "kept"),
    [
        ({"id": "e-9", "created": 1_793_534_500_000}, False),
        ("e-9", False),
        (None, True),
        ({}, True),
        ({"id": ""}, True),
        ("", True),
    ],
)
def test_a_bounce_obsoleted_by_a_later_event_is_not_scored(obsoleted_by: Any, kept: bool) -> None:
    event = email_event_from_wire(email(type="BOUNCE", category="UNKNOWN_USER", obsoletedBy=obsoleted_by))
    assert (event is not None) is kept


def test_an_unbounce_becomes_the_internal_unbounce_event() -> None:
    event = email_event_from_wire(email(type="UNBOUNCE", emailCampaignId=None, user="ops@acme-eu.example"))
    assert event is not None
    assert (event.kind, event.email, event.event_id) == (EMAIL_UNBOUNCE, "maria@voltgrid.ro", "e-1:1793534400000")


def test_a_dropped_email_is_not_scored_whatever_its_drop_reason() -> None:
    for reason in ("PREVIOUSLY_BOUNCED", "PREVIOUSLY_UNSUBSCRIBED_PORTAL", "BLOCKED_ADDRESS"):
        assert email_event_from_wire(email(type="DROPPED", dropReason=reason)) is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"created": 1_000}, {"created": 1_000}, True),
        ({"created": 1_000}, {"created": 2_000}, False),
        ({"id": "x", "created": 1_000}, {"id": "y", "created": 1_000}, False),
    ],
)
def test_an_email_event_is_identified_by_its_id_and_created_time(
    a: dict[str, Any], b: dict[str, Any], same: bool
) -> None:
    first, second = email_event_from_wire(email(**a)), email_event_from_wire(email(**b))
    assert first is not None and second is not None
    assert (first.event_id == second.event_id) is same


@pytest.mark.parametrize(
    "raw",
    [
        email(type="OPEN"),
        email(type="CLICK", url="https://acme-eu.example/pricing"),
        email(type="BOUNCE", category="UNKNOWN_USER"),
        email(type="BOUNCE", category="MAILBOX_FULL"),
        email(type="BOUNCE"),
        email(type="UNBOUNCE"),
        email(type="STATUSCHANGE", portalSubscriptionStatus="UNSUBSCRIBED", subscriptions=MIXED),
        email(type="STATUSCHANGE", subscriptions=[{"id": 3, "status": "UNSUBSCRIBED"}]),
    ],
)
def test_an_email_event_written_back_to_the_wire_reads_the_same(raw: dict[str, Any]) -> None:
    event = email_event_from_wire(raw)
    assert event is not None
    again = email_event_to_wire(event)
    assert again["id"] == raw["id"]
    assert email_event_from_wire(again) == event


@pytest.mark.parametrize(
    ("flag", "filtered"), [(True, True), ("true", True), (False, False), ("false", False), (None, False)]
)
def test_filtered_event_flags_are_read_strictly(flag: Any, filtered: bool) -> None:
    event = email_event_from_wire(
        {"id": "e1", "type": "OPEN", "recipient": "a@b.com", "created": 1, "filteredEvent": flag}
    )
    assert event is not None and event.filtered is filtered
