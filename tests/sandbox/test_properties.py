"""Contact properties and property groups: list, read, create (201), conflicts (409), validation (400)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.support import Api

PROPERTIES = "/crm/v3/properties/contacts"


def test_the_standard_properties_are_seeded_with_their_types(api: Api) -> None:
    by_name = {p["name"]: p for p in api.get(PROPERTIES).json()["results"]}
    expected = {
        "email": "string",
        "numberofemployees": "number",
        "hs_analytics_num_visits": "number",
        "lifecyclestage": "enumeration",
        "industry": "enumeration",
        "createdate": "datetime",
        "lastmodifieddate": "datetime",
        "hubspotscore": "number",
        "hs_email_optout": "bool",
    }
    assert {name: by_name[name]["type"] for name in expected} == expected


@pytest.mark.parametrize(
    ("name", "read_only"), [("hubspotscore", True), ("createdate", True), ("hs_object_id", True), ("email", False)]
)
def test_read_only_properties_say_so_in_their_metadata(api: Api, name: str, read_only: bool) -> None:
    assert api.get(f"{PROPERTIES}/{name}").json()["modificationMetadata"]["readOnlyValue"] is read_only


def test_lifecyclestage_offers_the_internal_stage_values(api: Api) -> None:
    options = [o["value"] for o in api.get(f"{PROPERTIES}/lifecyclestage").json()["options"]]
    assert options == [
        "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
        "opportunity", "customer", "evangelist", "other",
    ]  # fmt: skip


def test_an_unknown_property_is_a_404(api: Api) -> None:
    response = api.get(f"{PROPERTIES}/no_such_property")
    assert response.status_code == 404
    assert response.json()["category"] == "OBJECT_NOT_FOUND"


def number(name: str, group: str = "contactinformation") -> dict[str, Any]:
    return {"name": name, "label": name.title(), "type": "number", "fieldType": "number", "groupName": group}


def test_creating_a_property_is_a_201_and_it_can_be_read_and_written(api: Api) -> None:
    response = api.post(PROPERTIES, number("ls_fit"))
    assert response.status_code == 201
    assert response.json()["name"] == "ls_fit"
    assert api.get(f"{PROPERTIES}/ls_fit").json()["type"] == "number"
    assert api.update([{"id": "101", "properties": {"ls_fit": "40"}}]).status_code == 200


def test_creating_an_existing_property_is_a_409_conflict(api: Api) -> None:
    assert api.post(PROPERTIES, number("ls_fit")).status_code == 201
    response = api.post(PROPERTIES, number("ls_fit"))
    assert response.status_code == 409
    assert response.json()["category"] == "CONFLICT"


def test_an_enumeration_property_takes_its_options(api: Api) -> None:
    body = {
        "name": "ls_grade_band",
        "label": "Grade band",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "contactinformation",
        "options": [{"label": "A", "value": "a", "displayOrder": 0, "hidden": False}, {"label": "B", "value": "b"}],
    }
    assert api.post(PROPERTIES, body).status_code == 201
    assert api.update([{"id": "101", "properties": {"ls_grade_band": "a"}}]).status_code == 200
    assert api.update([{"id": "101", "properties": {"ls_grade_band": "c"}}]).status_code == 400


@pytest.mark.parametrize(
    ("change", "message_part"),
    [
        ({"type": "money"}, "type"),
        ({"fieldType": "select"}, "fieldType"),
        ({"groupName": "no_such_group"}, "group"),
        ({"name": "Bad Name"}, "name"),
        ({"label": ""}, "missing"),
        ({"type": "enumeration", "fieldType": "select"}, "options"),
    ],
)
def test_an_invalid_property_definition_is_a_400(api: Api, change: dict[str, Any], message_part: str) -> None:
    response = api.post(PROPERTIES, {**number("ls_new"), **change})
    assert response.status_code == 400
    assert message_part.lower() in response.json()["message"].lower()


def test_creating_a_group_is_a_201_then_a_409(api: Api) -> None:
    body = {"name": "lead_scoring_sync", "label": "Lead scoring"}
    created = api.post(f"{PROPERTIES}/groups", body)
    assert created.status_code == 201
    assert created.json() == {
        "name": "lead_scoring_sync",
        "label": "Lead scoring",
        "displayOrder": -1,
        "archived": False,
    }
    assert api.post(f"{PROPERTIES}/groups", body).status_code == 409
    assert api.get(f"{PROPERTIES}/groups/lead_scoring_sync").status_code == 200
    assert "lead_scoring_sync" in {g["name"] for g in api.get(f"{PROPERTIES}/groups").json()["results"]}


def test_a_property_can_be_created_in_a_new_group(api: Api) -> None:
    api.post(f"{PROPERTIES}/groups", {"name": "lead_scoring_sync", "label": "Lead scoring"})
    assert api.post(PROPERTIES, number("ls_score2", "lead_scoring_sync")).status_code == 201


def test_patching_a_property_replaces_its_options(api: Api) -> None:
    options = [{"label": "A", "value": "a"}]
    body = {"name": "ls_band", "label": "Band", "type": "enumeration", "fieldType": "select",
            "groupName": "contactinformation", "options": options}  # fmt: skip
    api.post(PROPERTIES, body)
    patched = api.session.patch(
        f"{api.url}{PROPERTIES}/ls_band", json={"options": [*options, {"label": "B", "value": "b"}]}, timeout=5
    )
    assert patched.status_code == 200
    assert [o["value"] for o in patched.json()["options"]] == ["a", "b"]
    assert api.update([{"id": "101", "properties": {"ls_band": "b"}}]).status_code == 200


@pytest.mark.parametrize(
    ("name", "body", "status"),
    [
        ("lifecyclestage", {"options": []}, 400),  # HubSpot's own definitions stay as they are
        ("ls_score", {"name": "ls_points"}, 400),
        ("ls_score", {"type": "enumeration"}, 400),
        ("no_such_property", {"label": "x"}, 404),
    ],
)
def test_an_invalid_property_patch_is_refused(api: Api, name: str, body: dict[str, Any], status: int) -> None:
    assert api.session.patch(f"{api.url}{PROPERTIES}/{name}", json=body, timeout=5).status_code == status
