"""Form submissions as HubSpot sends them: without conversionId, and with the email under another name."""

from __future__ import annotations

from typing import Any

import pytest

from sync.errors import SkippableRecordError
from sync.hubspot.shapes import submission_email, submission_from_wire

AT = 1_793_275_200_000


def without_conversion(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "submittedAt": AT,
        "values": [{"name": "email", "value": "Maria@VoltGrid.ro", "objectTypeId": "0-1"}],
        "pageUrl": "https://acme-eu.example/contact-us",
    }
    raw.update(changes)
    return raw


@pytest.mark.parametrize("conversion", [None, "", "  "])
def test_a_submission_without_conversion_id_is_kept_under_a_key_of_form_time_and_email(conversion: Any) -> None:
    raw = without_conversion() if conversion is None else without_conversion(conversionId=conversion)
    got = submission_from_wire(raw, "f-contact", "Website contact form")
    assert got.event_id.startswith("nocid:") and len(got.event_id) == len("nocid:") + 40
    assert (got.at_ms, got.email, got.form_id) == (AT, "maria@voltgrid.ro", "f-contact")


def test_the_key_is_the_same_on_every_read_whatever_the_shape_of_time_and_email() -> None:
    first = submission_from_wire(without_conversion(), "f")
    again = submission_from_wire(
        without_conversion(
            submittedAt=str(AT), values=[{"name": "email", "value": " maria@voltgrid.ro ", "objectTypeId": "0-1"}]
        ),
        "f",
    )
    assert first.event_id == again.event_id


@pytest.mark.parametrize(
    "changes",
    [
        {"submittedAt": AT + 1},
        {"values": [{"name": "email", "value": "ana@voltgrid.ro"}]},
    ],
)
def test_another_time_or_email_is_another_key(changes: dict[str, Any]) -> None:
    assert submission_from_wire(without_conversion(**changes), "f").event_id != (
        submission_from_wire(without_conversion(), "f").event_id
    )
    assert submission_from_wire(without_conversion(), "f2").event_id != (
        submission_from_wire(without_conversion(), "f").event_id
    )


def test_a_conversion_id_is_still_the_event_id_when_there_is_one() -> None:
    assert submission_from_wire(without_conversion(conversionId="cv-9"), "f").event_id == "cv-9"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # The field named email wins, wherever it is.
        ([{"name": "work_email", "value": "w@x.io", "objectTypeId": "0-1"}, {"name": "email", "value": "E@x.io"}],
         "e@x.io"),
        # Another name: a contact field (0-1) whose value looks like an address.
        ([{"name": "full_name", "value": "Ana Pop", "objectTypeId": "0-1"},
          {"name": "work_email", "value": " Ana@Pop.ro ", "objectTypeId": "0-1"}], "ana@pop.ro"),
        # Not a contact's field (a company's, or no object): not the contact's email.
        ([{"name": "company_email", "value": "info@pop.ro", "objectTypeId": "0-2"}], ""),
        ([{"name": "work_email", "value": "ana@pop.ro"}], ""),
        # A field named email of another object is not the contact's.
        ([{"name": "email", "value": "info@pop.ro", "objectTypeId": "0-2"}], ""),
        # A contact field that is no address: no @, two @, no dot in the domain, a space.
        ([{"name": "work_email", "value": "ana.pop.ro", "objectTypeId": "0-1"},
          {"name": "alt", "value": "a@b@pop.ro", "objectTypeId": "0-1"},
          {"name": "alt2", "value": "ana@localhost", "objectTypeId": "0-1"},
          {"name": "alt3", "value": "ana pop@pop.ro", "objectTypeId": "0-1"}], ""),
        # An empty email field gives way to another contact field.
        ([{"name": "email", "value": " "}, {"name": "work_email", "value": "a@pop.ro", "objectTypeId": "0-1"}],
         "a@pop.ro"),
        (["not an object", {"name": "email", "value": "a@pop.ro"}], "a@pop.ro"),
    ],
)  # fmt: skip
def test_the_email_a_submission_gives(values: list[Any], expected: str) -> None:
    assert submission_email(values) == expected


def test_a_submission_whose_values_give_no_email_is_a_skippable_record_named_by_its_form() -> None:
    raw = without_conversion(values=[{"name": "company_email", "value": "info@pop.ro", "objectTypeId": "0-2"}])
    with pytest.raises(SkippableRecordError, match="submission of form f without conversionId: has no email value"):
        submission_from_wire(raw, "f")
