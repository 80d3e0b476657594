"""Portal snapshots: bad records are reported and skipped, events are tied to contacts by email."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.core.model import EMAIL_OPEN, EMAIL_UNSUBSCRIBE, FORM_SUBMISSION
from sync.errors import ConfigError
from sync.sandbox import Portal
from sync.snapshot import parse_snapshot, read_records, read_snapshot

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "examples" / "acme-eu.snapshot.json"
AT = 1_793_275_200_000


def contact(cid: Any, email: str, **props: Any) -> dict[str, Any]:
    return {"id": cid, "properties": {"email": email, **props}}


def submission(conversion: str, email: str, form_id: str = "f-demo", at: Any = AT) -> dict[str, Any]:
    return {
        "formId": form_id,
        "conversionId": conversion,
        "submittedAt": at,
        "values": [{"name": "email", "value": email}],
    }


def open_event(eid: str, recipient: str, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "type": "OPEN", "recipient": recipient, "created": AT, **extra}


def test_bad_records_are_reported_and_skipped_while_the_rest_load() -> None:
    snap = parse_snapshot(
        {
            "contacts": [
                contact("1", "a@x.com"),
                {"properties": {"email": "orphan@x.com"}},
                contact("3", "c@x.com", createdate="last tuesday"),
                "not a contact",
                contact("5", "e@x.com"),
            ],
            "form_submissions": [
                submission("cv-1", "a@x.com"),
                submission("cv-2", "a@x.com", at="not-a-time"),
                {"conversionId": "cv-3", "submittedAt": AT, "values": [{"name": "email", "value": "a@x.com"}]},
            ],
            "email_events": [
                open_event("e-1", "e@x.com"),
                open_event("e-2", "e@x.com", type="TELEPORT"),
                open_event("e-3", "e@x.com", type="PROCESSED"),
            ],
        }
    )
    assert [c.id for c in snap.contacts] == ["1", "5"]
    assert [p.split(":")[0] for p in snap.problems] == [
        "contacts[1]",
        "contacts[2]",
        "contacts[3]",
        "form_submissions[1]",
        "form_submissions[2]",
        "email_events[1]",
    ]
    assert all(p.endswith("skipped") for p in snap.problems)
    assert [e.event_id for e in snap.events_by_email["a@x.com"]] == ["cv-1"]
    assert [e.event_id for e in snap.events_by_email["e@x.com"]] == ["e-1:1793275200000"]
    assert snap.ignored_events == 1


def test_a_problem_names_the_record_and_why() -> None:
    snap = parse_snapshot({"contacts": [contact("114", "b@x.com", createdate="last tuesday")]})
    assert snap.problems == ["contacts[0]: contact 114: createdate is not a date: 'last tuesday'; skipped"]


def test_a_contact_listed_twice_keeps_the_first() -> None:
    snap = parse_snapshot({"contacts": [contact("1", "a@x.com"), contact(1, "b@x.com")]})
    assert [(c.id, c.email) for c in snap.contacts] == [("1", "a@x.com")]
    assert snap.problems == ["contacts[1]: contact 1 appears twice; the later one skipped"]


def test_events_are_tied_to_contacts_by_email_case_insensitively() -> None:
    snap = parse_snapshot(
        {
            "contacts": [contact("1", "Maria.Ionescu@VoltGrid.ro"), contact("2", "")],
            "forms": [{"id": "f-demo", "name": "Demo request"}],
            "form_submissions": [submission("cv-1", "MARIA.ionescu@voltgrid.RO")],
            "email_events": [
                open_event("e-1", "maria.ionescu@VOLTGRID.ro"),
                open_event("e-2", "stranger@elsewhere.com"),
                open_event("e-3", "x@y.z", type="STATUSCHANGE", portalSubscriptionStatus="SUBSCRIBED"),
            ],
        }
    )
    inputs = {c.id: events for c, events in snap.scoring_inputs()}
    assert [(e.kind, e.event_id) for e in inputs["1"]] == [(FORM_SUBMISSION, "cv-1"), (EMAIL_OPEN, "e-1:1793275200000")]
    assert inputs["2"] == []
    assert inputs["1"][0].form_name == "Demo request"  # type: ignore[union-attr]
    assert (snap.unattached_events, snap.ignored_events) == (1, 1)


def test_a_submission_of_an_unknown_form_has_no_form_name() -> None:
    snap = parse_snapshot({"contacts": [contact("1", "a@x.com")], "form_submissions": [submission("cv-1", "a@x.com")]})
    assert snap.events_by_email["a@x.com"][0].form_name == ""  # type: ignore[union-attr]


def test_list_memberships_are_attached_to_their_contacts() -> None:
    snap = parse_snapshot(
        {
            "contacts": [contact("1", "a@x.com"), contact(2, "b@x.com"), contact("3", "c@x.com")],
            "lists": [
                {"listId": 42, "contactIds": ["1", 2]},
                {"listId": "43", "contactIds": ["1"]},
                {"listId": "not a number", "contactIds": ["3"]},
                {"contactIds": ["3"]},
            ],
        }
    )
    assert {c.id: c.list_ids for c in snap.contacts} == {
        "1": frozenset({42, 43}),
        "2": frozenset({42}),
        "3": frozenset(),
    }
    assert snap.problems == [
        "lists[2]: needs a numeric listId and contactIds; skipped",
        "lists[3]: needs a numeric listId and contactIds; skipped",
    ]


@pytest.mark.parametrize("key", ["contacts", "form_submissions", "email_events", "lists"])
def test_a_section_that_is_not_a_list_is_reported_and_ignored(key: str) -> None:
    snap = parse_snapshot({key: {"oops": 1}})
    assert snap.problems == [f"{key}: is not a list; ignored"]


@pytest.mark.parametrize(("portal", "expected"), [(12345678, 12345678), ("12345678", 12345678), ("acme", None)])
def test_portal_id(portal: Any, expected: int | None) -> None:
    assert parse_snapshot({"portal_id": portal}).portal_id == expected


def test_the_example_snapshot_loads_with_its_deliberate_defects_reported() -> None:
    snap = read_snapshot(EXAMPLE)
    assert len(snap.contacts) == 12
    assert "114" not in {c.id for c in snap.contacts}
    assert len(snap.problems) == 4  # a contact without id, a bad createdate, a bad submittedAt, an unknown type
    assert {c.id: c.list_ids for c in snap.contacts}["111"] == frozenset({42})
    gone = {e.kind for e in snap.events_by_email["gone@retail.fr"]}
    assert EMAIL_UNSUBSCRIBE in gone
    assert snap.unattached_events == 1  # the open of stranger@elsewhere.com


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_a_file_that_is_not_a_snapshot_is_a_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "snap.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        read_snapshot(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_snapshot(tmp_path / "missing.json")


def test_read_snapshot_equals_parse_snapshot_of_the_same_json(tmp_path: Path) -> None:
    raw = {"contacts": [contact("1", "a@x.com")], "email_events": [open_event("e-1", "a@x.com")]}
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    assert read_snapshot(path) == parse_snapshot(raw)


HOSTILE: dict[str, Any] = {
    "portal_id": "777",
    "contacts": [
        contact("1", "a@x.com", createdate="2026-01-01T00:00:00Z", lastmodifieddate=AT),
        {"properties": {"email": "no.id@x.com"}},
        contact("abc", "letters@x.com"),
        contact("¹2", "superscript@x.com"),
        contact(1, "again@x.com"),
        contact("3", "A@X.com"),  # a@x.com's address again
        contact("4", "d@x.com", createdate="last tuesday"),
        contact("5", "e@x.com", lastmodifieddate="soon"),
        {"id": "6", "properties": ["not", "an", "object"]},
        "not a contact",
        contact("7", "g@x.com"),  # no dates at all
        contact("8", "h@x.com", createdate="-5000"),  # before 1970: kept, without a create date
    ],
    "forms": [
        {"id": "f-demo", "name": "Demo"},
        {"name": "no id"},
        {"id": "f-odd", "name": "Odd", "formType": "telepathy"},
        {"id": "f-arch", "name": "Archived?", "archived": "yes"},
        {"id": "f-old", "name": "Old", "archived": True},
    ],
    "form_submissions": [
        submission("cv-1", "a@x.com"),
        submission("cv-1", "a@x.com"),  # delivered twice
        submission("cv-2", "a@x.com", form_id="f-odd"),
        submission("cv-3", "a@x.com", at="not-a-time"),
        submission("cv-4", "a@x.com", at=0),
        {
            "formId": "f-demo",
            "conversionId": "cv-5",
            "submittedAt": AT,
            "values": [{"name": "firstname", "value": "x"}],
        },
        {"formId": "f-demo", "conversionId": "cv-6", "submittedAt": AT, "values": "email=a@x.com"},
        {"conversionId": "cv-7", "submittedAt": AT, "values": [{"name": "email", "value": "a@x.com"}]},
        submission("cv-8", "g@x.com", form_id="f-gone"),  # a deleted form's: kept, without a form name
        submission("cv-9", "h@x.com", form_id="f-old"),
        {
            "formId": "f-demo",
            "conversionId": None,
            "submittedAt": AT,
            "values": [{"name": "email", "value": "h@x.com"}],
        },
        "not a submission",
    ],
    "email_events": [
        open_event("e-1", "a@x.com"),
        open_event("e-1", "a@x.com"),  # delivered twice
        open_event("e-1", "a@x.com", created=AT + 1),  # the same id at another time is another event
        open_event("e-2", "a@x.com", type="TELEPORT"),
        open_event("e-3", ""),
        open_event("e-4", "a@x.com", created=0),
        open_event("e-5", "a@x.com", created="yesterday"),
        open_event("e-6", "a@x.com", type="PROCESSED"),  # served, not scored
        {"type": "OPEN", "recipient": "a@x.com", "created": AT},
        ["not", "an", "event"],
    ],
    "lists": [
        {"listId": 42, "contactIds": ["1", 7]},
        {"listId": "x", "contactIds": ["1"]},
        {"listId": 43, "contactIds": ["one"]},
        {"listId": 44, "contactIds": ["1"], "membershipTimestamps": ["1", AT]},
    ],
}


def test_score_and_the_sandbox_accept_and_skip_the_same_records_of_a_hostile_snapshot() -> None:
    snap = parse_snapshot(HOSTILE)
    portal, problems = Portal.from_snapshot(HOSTILE, now_ms=AT)
    served = portal.snapshot()
    assert problems == snap.problems
    where = [p.split(":")[0] for p in problems]
    assert where == [
        *(f"contacts[{i}]" for i in range(1, 10)),
        *(f"forms[{i}]" for i in range(1, 4)),
        *(f"form_submissions[{i}]" for i in (2, 3, 4, 5, 6, 7, 11)),
        *(f"email_events[{i}]" for i in (3, 4, 5, 6, 8, 9)),
        "lists[1]",
        "lists[2]",
        "lists[3]",
    ]
    assert (portal.portal_id, snap.portal_id) == (777, 777)
    assert [c["id"] for c in served["contacts"]] == [c.id for c in snap.contacts] == ["1", "7", "8"]
    assert [f["id"] for f in served["forms"]] == ["f-demo", "f-old"]
    conversions = {s.get("conversionId") for s in served["form_submissions"]}
    assert conversions == {"cv-1", "cv-8", "cv-9", None}
    scored = [e.event_id for events in snap.events_by_email.values() for e in events]
    assert sorted(e for e in scored if e.startswith("cv-")) == ["cv-1", "cv-8"]  # cv-9's form is archived
    assert sorted((e["id"], e["created"]) for e in served["email_events"]) == [
        ("e-1", AT),
        ("e-1", AT + 1),
        ("e-6", AT),
    ]
    assert sorted(e for e in scored if e.startswith("e-")) == [f"e-1:{AT}", f"e-1:{AT + 1}"]
    assert [(m["listId"], m["contactIds"]) for m in served["lists"]] == [(42, ["1", "7"])]
    assert {c.id: c.list_ids for c in snap.contacts} == {"1": frozenset({42}), "7": frozenset({42}), "8": frozenset()}


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"properties": {}}, "contacts[0]: contact: has no id; skipped"),
        (contact("abc", "a@x.com"), "contacts[0]: contact abc: id is not numeric; skipped"),
        (
            contact("5", "a@x.com", lastmodifieddate="soon"),
            "contacts[0]: contact 5: lastmodifieddate is not a date: 'soon'; skipped",
        ),
    ],
)
def test_each_skipped_contact_is_named_with_why(record: Any, problem: str) -> None:
    assert parse_snapshot({"contacts": [record]}).problems == [problem]


def test_a_second_contact_with_an_earlier_contacts_email_is_skipped() -> None:
    snap = parse_snapshot({"contacts": [contact("1", "a@x.com"), contact("2", "A@x.com ")]})
    assert [c.id for c in snap.contacts] == ["1"]
    assert snap.problems == ["contacts[1]: contact 2: email a@x.com is on an earlier contact; skipped"]


def test_a_record_delivered_twice_counts_once_and_is_not_a_problem() -> None:
    raw = {
        "contacts": [contact("1", "a@x.com")],
        "form_submissions": [submission("cv-1", "a@x.com"), submission("cv-1", "a@x.com")],
        "email_events": [open_event("e-1", "a@x.com"), open_event("e-1", "a@x.com")],
    }
    records = read_records(raw)
    assert (len(records.submissions), len(records.email_events), records.repeats, records.problems) == (1, 1, 2, [])
    assert len(parse_snapshot(raw).events_by_email["a@x.com"]) == 2


def test_companies_and_associations_are_read_and_bad_ones_skipped_with_a_reason() -> None:
    from sync.core.model import Company, CompanyAssociation
    from sync.snapshot import parse_snapshot

    raw = {
        "contacts": [
            {"id": "1", "properties": {"email": "a@x.com"}},
            {"id": "2", "properties": {"email": "b@x.com"}},
        ],
        "companies": [
            {"id": "10", "properties": {"industry": "ENERGY", "numberofemployees": 1500, "domain": None}},
            {"id": "11", "properties": {}},
            {"id": "10", "properties": {"industry": "RETAIL"}},
            {"id": "abc", "properties": {}},
            {"properties": {}},
            "not an object",
        ],
        "associations": [
            {"contactId": "1", "companyId": "10", "primary": True},
            {"contactId": 1, "companyId": 11},
            {"contactId": "2", "companyId": "11"},
            {"contactId": "2", "companyId": "11", "primary": True},
            {"contactId": "3", "companyId": "10"},
            {"contactId": "1", "companyId": "99"},
            {"contactId": "1", "companyId": "10", "primary": "yes"},
            {"contactId": "x", "companyId": "10"},
        ],
    }
    snap = parse_snapshot(raw)
    assert snap.companies == [Company("10", {"industry": "ENERGY", "numberofemployees": "1500"}), Company("11", {})]
    assert snap.associations == [
        CompanyAssociation("1", "10", True),
        CompanyAssociation("1", "11", False),
        CompanyAssociation("2", "11", True),
    ]
    assert snap.problems == [
        "companies[2]: company 10 appears twice; the later one skipped",
        "companies[3]: company abc: id is not numeric; skipped",
        "companies[4]: company: has no id; skipped",
        "companies[5]: company: is not an object; skipped",
        "associations[4]: contact 3 is not in the snapshot; skipped",
        "associations[5]: company 99 is not in the snapshot; skipped",
        "associations[6]: primary must be true or false; skipped",
        "associations[7]: needs a numeric contactId and companyId; skipped",
    ]


def test_a_snapshot_without_companies_still_loads() -> None:
    from sync.snapshot import parse_snapshot

    snap = parse_snapshot({"contacts": [{"id": "1", "properties": {"email": "a@x.com"}}]})
    assert snap.companies == [] and snap.associations == [] and snap.problems == []
