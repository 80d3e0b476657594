"""Batch update: 200, 207 and 400 paths, clearing, lastmodifieddate, the forward-only lifecycle, the write log."""

from __future__ import annotations

from typing import Any

import pytest

from sync.sandbox import Sandbox
from tests.fakes import ManualClock
from tests.sandbox.support import Api


def test_a_valid_batch_is_a_200_and_is_applied(api: Api) -> None:
    response = api.update(
        [
            {"id": "101", "properties": {"ls_score": "87", "ls_grade": "A1"}},
            {"id": "102", "properties": {"ls_score": 12}},
        ]
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert {r["id"]: r["properties"]["ls_score"] for r in body["results"]} == {"101": "87", "102": "12"}
    assert api.props("101")["ls_grade"] == "A1"


def test_unknown_ids_are_a_207_and_the_rest_is_applied(api: Api) -> None:
    response = api.update(
        [{"id": "101", "properties": {"ls_score": "5"}}, {"id": "999", "properties": {"ls_score": "5"}}]
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["id"] for r in body["results"]] == ["101"]
    assert body["numErrors"] == 1
    (error,) = body["errors"]
    assert error["status"] == "error"
    assert error["category"] == "OBJECT_NOT_FOUND"
    assert error["context"] == {"ids": ["999"]}
    assert api.props("101")["ls_score"] == "5"


@pytest.mark.parametrize(
    ("properties", "bad"),
    [
        ({"no_such_property": "1"}, "no_such_property"),
        ({"hubspotscore": "50"}, "hubspotscore"),
        ({"hs_object_id": "5"}, "hs_object_id"),
        ({"createdate": "1790000000000"}, "createdate"),
        ({"lastmodifieddate": "1790000000000"}, "lastmodifieddate"),
        ({"ls_score": "eighty"}, "ls_score"),
        ({"numberofemployees": "NaN"}, "numberofemployees"),
        ({"lifecyclestage": "hot_lead"}, "lifecyclestage"),
        ({"industry": "AEROSPACE"}, "industry"),
        ({"hs_email_optout": "maybe"}, "hs_email_optout"),
        ({"decision_role": "Owner"}, "decision_role"),  # options are case-sensitive internal values
    ],
)
def test_an_invalid_property_or_value_rejects_the_whole_batch(api: Api, properties: dict[str, str], bad: str) -> None:
    before = api.props("101")
    response = api.update([{"id": "101", "properties": {"ls_grade": "B2"}}, {"id": "102", "properties": properties}])
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "VALIDATION_ERROR"
    assert [e["context"]["propertyName"] for e in body["errors"]] == [[bad]]
    assert api.props("101") == before
    assert api.sandbox.portal.write_log() == []


@pytest.mark.parametrize(
    "inputs",
    [
        [{"id": str(100 + i), "properties": {"ls_score": "1"}} for i in range(101)],
        [],
        [{"id": "101", "properties": {"ls_score": "1"}}, {"id": "101", "properties": {"ls_score": "2"}}],
        [{"id": "101"}],
    ],
    ids=["101-inputs", "empty", "duplicate-ids", "no-properties"],
)
def test_a_malformed_batch_is_a_400(api: Api, inputs: list[dict[str, Any]]) -> None:
    response = api.update(inputs)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_an_empty_string_clears_a_value(api: Api) -> None:
    api.update([{"id": "101", "properties": {"industry": ""}}])
    assert "industry" not in api.props("101")
    assert api.get("/crm/v3/objects/contacts/101", properties="industry").json()["properties"]["industry"] is None


def test_every_applied_write_bumps_lastmodifieddate_to_now(api: Api, clock: ManualClock) -> None:
    clock.advance(3.5)
    result = api.update([{"id": "103", "properties": {"ls_score": "1"}}]).json()["results"][0]
    expected = "2027-01-15T08:00:03.500Z"  # the fake clock: 1,800,000,003.5 s
    assert result["updatedAt"] == result["properties"]["lastmodifieddate"] == expected
    assert api.props("103")["lastmodifieddate"] == expected


def test_rewriting_the_same_value_still_bumps_lastmodifieddate(api: Api, clock: ManualClock) -> None:
    api.update([{"id": "103", "properties": {"ls_score": "1"}}])
    first = api.props("103")["lastmodifieddate"]
    clock.advance(1)
    api.update([{"id": "103", "properties": {"ls_score": "1"}}])
    assert api.props("103")["lastmodifieddate"] > first


def test_a_written_contact_moves_to_the_end_of_an_incremental_search(api: Api) -> None:
    api.update([{"id": "103", "properties": {"ls_score": "1"}}])
    sorts = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert [r["id"] for r in api.search(None, sorts=sorts).json()["results"]][-1] == "103"


@pytest.mark.parametrize(
    ("current", "written", "stored"),
    [
        ("lead", "customer", "customer"),  # forward: applied
        ("customer", "lead", "customer"),  # backward: success, nothing changes
        ("marketingqualifiedlead", "subscriber", "marketingqualifiedlead"),
        ("lead", "lead", "lead"),
        ("lead", "other", "other"),  # other is outside the order
        ("other", "lead", "lead"),
    ],
)
def test_lifecyclestage_only_moves_forward(api: Api, current: str, written: str, stored: str) -> None:
    api.admin("contacts", {"contacts": [{"id": "101", "properties": {"lifecyclestage": current}}]})
    response = api.update([{"id": "101", "properties": {"lifecyclestage": written}}])
    assert response.status_code == 200
    assert response.json()["results"][0]["properties"]["lifecyclestage"] == stored
    assert api.props("101")["lifecyclestage"] == stored


def test_a_backward_lifecycle_write_alone_changes_nothing_not_even_lastmodifieddate(
    api: Api, clock: ManualClock
) -> None:
    before = api.props("104")
    clock.advance(5)
    assert api.update([{"id": "104", "properties": {"lifecyclestage": "lead"}}]).status_code == 200
    assert api.props("104") == before
    assert api.sandbox.portal.write_log() == []


def test_clearing_then_setting_moves_lifecyclestage_backward(api: Api) -> None:
    api.update([{"id": "104", "properties": {"lifecyclestage": ""}}])
    api.update([{"id": "104", "properties": {"lifecyclestage": "salesqualifiedlead"}}])
    assert api.props("104")["lifecyclestage"] == "salesqualifiedlead"


def test_the_write_log_and_counters_record_applied_writes_only(api: Api, sandbox: Sandbox, clock: ManualClock) -> None:
    api.update([{"id": "101", "properties": {"ls_score": "1"}}, {"id": "102", "properties": {"ls_score": "2"}}])
    api.update([{"id": "101", "properties": {"ls_score": "3", "lifecyclestage": "subscriber"}}])  # stage ignored
    api.update([{"id": "999", "properties": {"ls_score": "3"}}])
    log = sandbox.portal.write_log()
    assert [(w.contact_id, w.properties) for w in log] == [
        ("101", {"ls_score": "1"}),
        ("102", {"ls_score": "2"}),
        ("101", {"ls_score": "3"}),
    ]
    assert {w.at_ms for w in log} == {clock.ms}
    assert sandbox.portal.write_counts() == {"101": 2, "102": 1}
    assert api.admin("write_log?since=2").json()["writes"] == [
        {"contactId": "101", "properties": {"ls_score": "3"}, "at": clock.ms}
    ]


@pytest.mark.parametrize(
    ("prop", "written", "stored"),
    [
        ("ls_score", 42, "42"),
        ("hs_email_optout", True, "true"),
        ("hs_email_optout", "FALSE", "false"),
        ("industry", None, None),
    ],
)
def test_json_numbers_booleans_and_null_are_accepted(api: Api, prop: str, written: Any, stored: str | None) -> None:
    assert api.update([{"id": "105", "properties": {prop: written}}]).status_code == 200
    assert api.props("105").get(prop) == stored


def test_updating_by_email_uses_id_property(api: Api) -> None:
    body = {"id": "OPS@acme.com", "idProperty": "email", "properties": {"ls_grade": "C3"}}
    assert api.update([body]).status_code == 200
    assert api.props("104")["ls_grade"] == "C3"


def test_taking_another_contacts_email_is_a_409(api: Api) -> None:
    response = api.update([{"id": "101", "properties": {"email": "ops@acme.com"}}])
    assert response.status_code == 409
    assert response.json()["category"] == "CONFLICT"
