"""The synthetic portal: deterministic per seed, realistic, and with the bulk-import and planted-signal shapes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from sync.sandbox import generate_portal
from sync.sandbox.generator import EXCLUSION_LIST_ID, FREE_MAIL

JsonObject = dict[str, Any]


@pytest.fixture(scope="module")
def snapshot() -> JsonObject:
    return generate_portal(2_000, seed=5).snapshot()


def test_the_same_seed_builds_the_same_portal() -> None:
    assert generate_portal(150, seed=9).snapshot() == generate_portal(150, seed=9).snapshot()


def test_another_seed_builds_another_portal() -> None:
    assert generate_portal(150, seed=9).snapshot()["contacts"] != generate_portal(150, seed=10).snapshot()["contacts"]


@pytest.mark.parametrize("shared", [0, 1, 120])
def test_shared_timestamp_gives_that_many_contacts_one_lastmodifieddate(shared: int) -> None:
    contacts = generate_portal(300, seed=2, shared_timestamp=shared).snapshot()["contacts"]
    counts = Counter(c["properties"]["lastmodifieddate"] for c in contacts)
    assert counts.most_common(1)[0][1] == max(shared, 1)
    assert all(c["properties"]["createdate"] <= c["properties"]["lastmodifieddate"] for c in contacts)


def test_shared_timestamp_cannot_exceed_the_contacts() -> None:
    with pytest.raises(ValueError, match="shared_timestamp"):
        generate_portal(10, seed=1, shared_timestamp=11)


def test_contacts_have_the_properties_the_rules_read(snapshot: JsonObject) -> None:
    seen = Counter(name for c in snapshot["contacts"] for name in c["properties"])
    for name in (
        "email", "firstname", "lastname", "jobtitle", "industry", "numberofemployees", "decision_role", "need_level",
        "purchase_timeline", "budget_fit", "hs_analytics_source", "hs_analytics_first_referrer",
        "hs_analytics_num_visits", "hs_email_optout", "lifecyclestage", "createdate", "lastmodifieddate",
        "ls_sales_feedback",
    ):  # fmt: skip
        assert seen[name] > 0, name
    assert seen["email"] == len(snapshot["contacts"])


def test_every_generated_value_is_valid_for_its_property() -> None:
    portal = generate_portal(300, seed=4)
    for contact in portal.snapshot()["contacts"]:
        for name, value in contact["properties"].items():
            prop = portal.property_def(name)
            assert prop is not None, name
            assert prop.normalize(value) == value, (name, value)


def test_emails_are_unique_and_mix_company_and_free_mail_domains(snapshot: JsonObject) -> None:
    emails = [c["properties"]["email"] for c in snapshot["contacts"]]
    assert len(set(emails)) == len(emails)
    free = sum(e.split("@")[1] in FREE_MAIL for e in emails) / len(emails)
    assert 0.2 < free < 0.4


def test_forms_cover_the_kinds_the_rules_look_for(snapshot: JsonObject) -> None:
    hubspot = [f for f in snapshot["forms"] if f["formType"] == "hubspot" and not f["archived"]]
    names = " ".join(f["name"].lower() for f in hubspot)
    assert 10 <= len(hubspot) <= 14
    for kind in ("demo", "webinar", "ebook", "checklist", "contact sales", "newsletter"):
        assert kind in names


def test_forms_of_every_type_have_submissions_and_one_form_is_archived(snapshot: JsonObject) -> None:
    forms = {f["id"]: f for f in snapshot["forms"]}
    submitted = Counter(s["formId"] for s in snapshot["form_submissions"])
    kinds = Counter(f["formType"] for f in forms.values() if submitted[f["id"]] > 0)
    assert set(kinds) == {"hubspot", "captured", "flow", "blog_comment"}
    archived = [f for f in forms.values() if f["archived"]]
    assert len(archived) == 1 and submitted[archived[0]["id"]] > 0
    popup_demo = [f for f in forms.values() if f["formType"] == "flow" and "demo" in f["name"].lower()]
    assert len(popup_demo) == 1 and submitted[popup_demo[0]["id"]] > 0


def test_submissions_carry_an_email_value_of_a_contact(snapshot: JsonObject) -> None:
    """Under `email`, or (non-HubSpot forms) under another name with objectTypeId 0-1, the contact object."""
    emails = {c["properties"]["email"] for c in snapshot["contacts"]}
    assert snapshot["form_submissions"]
    other_name = 0
    for submission in snapshot["form_submissions"]:
        values = {v["name"]: v for v in submission["values"]}
        if "email" in values:
            assert values["email"]["value"] in emails
        else:
            assert values["work_email"]["value"] in emails and values["work_email"]["objectTypeId"] == "0-1"
            other_name += 1
    assert other_name > 10


def test_some_submissions_come_without_conversion_id(snapshot: JsonObject) -> None:
    subs = snapshot["form_submissions"]
    without = [s for s in subs if "conversionId" not in s]
    assert 0.05 < len(without) / len(subs) < 0.2
    forms = {f["id"]: f["formType"] for f in snapshot["forms"]}
    assert {forms[s["formId"]] for s in without} == {"captured", "flow"}


def test_email_events_include_every_type_and_about_5_percent_bot_traffic() -> None:
    events = generate_portal(6_000, seed=5).snapshot()["email_events"]
    types = Counter(e["type"] for e in events)
    assert set(types) == {
        "SENT", "DROPPED", "PROCESSED", "DELIVERED", "DEFERRED", "BOUNCE", "OPEN", "CLICK",
        "PRINT", "FORWARD", "STATUSCHANGE", "SPAMREPORT", "UNBOUNCE",
    }  # fmt: skip
    engagement = [e for e in events if e["type"] in ("OPEN", "CLICK")]
    assert 0.02 < sum(e["filteredEvent"] for e in engagement) / len(engagement) < 0.08
    assert all(e["category"] for e in events if e["type"] == "BOUNCE")
    assert all(e["url"].startswith("https://") for e in events if e["type"] == "CLICK")


def test_email_events_come_in_hubspots_real_shapes() -> None:
    events = generate_portal(6_000, seed=5).snapshot()["email_events"]
    changes = [e for e in events if e["type"] == "STATUSCHANGE"]
    assert all(e["portalSubscriptionStatus"] in ("SUBSCRIBED", "UNSUBSCRIBED") and e["source"] for e in changes)
    everything = [e for e in changes if e["portalSubscriptionStatus"] == "UNSUBSCRIBED"]
    assert any(not e["subscriptions"] for e in everything)  # unsubscribed from all, the array empty
    assert any({s["status"] for s in e["subscriptions"]} == {"SUBSCRIBED", "UNSUBSCRIBED"} for e in everything)
    assert {e["source"] for e in changes} >= {
        "SOURCE_RECIPIENT", "SOURCE_LIST_UNSUBSCRIBE", "SOURCE_NON_DELIVERY_REPORT", "SOURCE_IMPORT",
    }  # fmt: skip
    resubscribes = [e for e in changes if {s["status"] for s in e["subscriptions"]} == {"SUBSCRIBED"}]
    assert resubscribes and all(e["portalSubscriptionStatus"] == "SUBSCRIBED" for e in resubscribes)
    bounces = [e for e in events if e["type"] == "BOUNCE"]
    categories = {e["category"] for e in bounces}
    assert {"UNKNOWN_USER", "MAILBOX_FULL", "THROTTLED"} <= categories <= HUBSPOT_BOUNCE_CATEGORIES
    assert any(e.get("obsoletedBy") for e in bounces)
    assert all(e["dropReason"] for e in events if e["type"] == "DROPPED")
    ids = Counter(e["id"] for e in events)
    repeated = {e["created"] for e in events if ids[e["id"]] > 1}
    assert repeated and len(repeated) == sum(n for n in ids.values() if n > 1)  # same id, another created time


HUBSPOT_BOUNCE_CATEGORIES = {
    "UNKNOWN_USER", "MAILBOX_FULL", "CONTENT", "SPAM", "POLICY", "GREYLISTING", "MAILBOX_MISCONFIGURATION",
    "ISP_MISCONFIGURATION", "DOMAIN_REPUTATION", "DMARC", "SENDING_DOMAIN_MISCONFIGURATION", "TIMEOUT", "THROTTLED",
    "UNCATEGORIZED", "IP_REPUTATION", "DNS_FAILURE", "TEMPORARY_PROBLEM",
}  # fmt: skip


def test_opted_out_contacts_have_an_unsubscribe_event(snapshot: JsonObject) -> None:
    opted_out = {c["properties"]["email"] for c in snapshot["contacts"] if c["properties"]["hs_email_optout"] == "true"}
    unsubscribed = {e["recipient"] for e in snapshot["email_events"] if e["type"] == "STATUSCHANGE"}
    assert opted_out
    sent_to = {e["recipient"] for e in snapshot["email_events"]}
    assert opted_out & sent_to <= unsubscribed


def test_there_is_an_exclusion_list_and_others(snapshot: JsonObject) -> None:
    lists = {item["listId"]: item for item in snapshot["lists"]}
    assert EXCLUSION_LIST_ID in lists
    assert len(lists) >= 3
    assert lists[EXCLUSION_LIST_ID]["contactIds"]


def test_the_planted_signal_reaches_the_pop_up_demo_form(snapshot: JsonObject) -> None:
    popup = next(f["id"] for f in snapshot["forms"] if f["formType"] == "flow" and "demo" in f["name"].lower())
    requesters = {v["value"] for s in snapshot["form_submissions"] if s["formId"] == popup for v in s["values"]}
    contacts = snapshot["contacts"]
    asked = [c for c in contacts if c["properties"]["email"] in requesters]
    rest = [c for c in contacts if c["properties"]["email"] not in requesters]

    def won(group: list[JsonObject]) -> float:
        return sum(c["properties"]["lifecyclestage"] in ("customer", "opportunity") for c in group) / len(group)

    assert len(asked) >= 10 and won(asked) > 3 * won(rest)


def test_the_planted_signal_makes_demo_requesters_convert_more(snapshot: JsonObject) -> None:
    demo_forms = {f["id"] for f in snapshot["forms"] if "demo" in f["name"].lower()}
    demo_emails = {
        v["value"]
        for s in snapshot["form_submissions"]
        if s["formId"] in demo_forms
        for v in s["values"]
        if v["name"] == "email"
    }

    def won(contacts: list[JsonObject]) -> float:
        return sum(c["properties"]["lifecyclestage"] in ("customer", "opportunity") for c in contacts) / len(contacts)

    demo = [c for c in snapshot["contacts"] if c["properties"]["email"] in demo_emails]
    rest = [c for c in snapshot["contacts"] if c["properties"]["email"] not in demo_emails]
    assert won(demo) > 3 * won(rest)


def test_the_generated_portal_defines_its_qualification_properties_as_enumerations() -> None:
    portal = generate_portal(10, seed=1)
    prop = portal.property_def("decision_role")
    assert prop is not None
    assert (prop.type, sorted(prop.option_values)) == ("enumeration", ["limited", "none", "owner"])
