"""Portal snapshots: bad records are reported and skipped, events are tied to contacts by email."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.core.model import EMAIL_OPEN, EMAIL_UNSUBSCRIBE, FORM_SUBMISSION
from sync.errors import ConfigError
from sync.snapshot import parse_snapshot, read_snapshot

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
