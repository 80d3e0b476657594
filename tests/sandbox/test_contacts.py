"""Auth, the contacts list endpoint, single reads and batch reads, over raw HTTP."""

from __future__ import annotations

import json
import re
import socket
import uuid

import pytest
import requests

from sync.sandbox import Sandbox
from tests.sandbox.support import MARIA, Api

CONTACTS = "/crm/v3/objects/contacts"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", "Basic c2FuZGJveC10b2tlbg==", "Bearer ", "sandbox-token"],
    ids=["missing", "wrong-token", "basic-scheme", "empty-bearer", "no-scheme"],
)
def test_an_api_request_without_the_right_bearer_token_is_a_401(sandbox: Sandbox, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = requests.get(f"{sandbox.url}{CONTACTS}", headers=headers, timeout=5)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    uuid.UUID(body["correlationId"])


@pytest.mark.parametrize("path", ["stats", "snapshot", "write_log"])
def test_admin_endpoints_need_no_token(sandbox: Sandbox, path: str) -> None:
    assert requests.get(f"{sandbox.url}/__sandbox/{path}", timeout=5).status_code == 200


def test_an_unknown_api_path_is_a_json_404_after_auth(api: Api) -> None:
    response = api.get("/crm/v3/objects/widgets")
    assert response.status_code == 404
    assert response.json()["status"] == "error"


def test_a_known_path_with_the_wrong_method_is_a_405(api: Api) -> None:
    assert api.session.delete(api.url + CONTACTS + "/search", timeout=5).status_code == 405


# --- list --------------------------------------------------------------------------------


def test_paging_the_list_returns_every_contact_once_in_id_order(api: Api) -> None:
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 4} if after is None else {"limit": 4, "after": after}
        body = api.get(CONTACTS, **params).json()
        seen += [c["id"] for c in body["results"]]
        if "paging" not in body:
            break
        after = body["paging"]["next"]["after"]
    assert seen == ["101", "102", "103", "104", "105", "107"]


def test_the_list_limit_defaults_to_10_and_is_at_most_100(api: Api) -> None:
    assert len(api.get(CONTACTS).json()["results"]) == 6
    assert api.get(CONTACTS, limit=101).status_code == 400
    assert api.get(CONTACTS, limit=100).status_code == 200


@pytest.mark.parametrize("after", ["abc", "-5"])
def test_a_malformed_after_cursor_is_a_400(api: Api, after: str) -> None:
    assert api.get(CONTACTS, after=after).status_code == 400


def test_a_result_has_the_requested_properties_plus_the_three_hubspot_always_sends(api: Api) -> None:
    first = api.get(CONTACTS, limit=1, properties="email,industry,no_such_property").json()["results"][0]
    assert set(first) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert first["archived"] is False
    assert first["properties"] == {
        "email": MARIA,
        "industry": "ENERGY",
        "hs_object_id": "101",
        "createdate": first["createdAt"],
        "lastmodifieddate": first["updatedAt"],
    }
    assert ISO_MS.match(first["createdAt"]) and ISO_MS.match(first["updatedAt"])


def test_a_requested_property_without_a_value_is_null(api: Api) -> None:
    spy = api.get(CONTACTS, limit=1, after="103", properties="firstname").json()["results"][0]
    assert spy["properties"]["firstname"] is None


def test_repeated_properties_parameters_work_like_a_comma_list(api: Api) -> None:
    first = api.session.get(f"{api.url}{CONTACTS}?limit=1&properties=email&properties=jobtitle", timeout=5).json()
    assert {"email", "jobtitle"} <= set(first["results"][0]["properties"])


def test_without_properties_the_default_set_is_returned(api: Api) -> None:
    props = api.get(CONTACTS, limit=1).json()["results"][0]["properties"]
    assert set(props) == {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}


def test_get_by_id_and_by_email(api: Api) -> None:
    assert api.get(CONTACTS + "/102").json()["id"] == "102"
    assert api.get(CONTACTS + "/student.sam@gmail.com", idProperty="email").json()["id"] == "105"
    assert api.get(CONTACTS + "/999").status_code == 404


# --- batch read --------------------------------------------------------------------------


def test_batch_read_by_id_returns_200_complete(api: Api) -> None:
    response = api.post(CONTACTS + "/batch/read", {"properties": ["email"], "inputs": [{"id": "101"}, {"id": "104"}]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETE"
    assert [r["id"] for r in body["results"]] == ["101", "104"]
    assert body["results"][1]["properties"]["email"] == "ops@acme.com"


def test_batch_read_by_email_ignores_case(api: Api) -> None:
    body = api.post(
        CONTACTS + "/batch/read",
        {"properties": ["firstname"], "idProperty": "email", "inputs": [{"id": "MARIA.Ionescu@voltgrid.ro"}]},
    ).json()
    assert [r["id"] for r in body["results"]] == ["101"]


@pytest.mark.parametrize(
    ("id_property", "missing"), [(None, "999"), ("email", "nobody@nowhere.com")], ids=["by-id", "by-email"]
)
def test_batch_read_with_missing_records_is_a_207_naming_them(api: Api, id_property: str | None, missing: str) -> None:
    present = "101" if id_property is None else MARIA
    body: dict[str, object] = {"properties": ["email"], "inputs": [{"id": present}, {"id": missing}]}
    if id_property:
        body["idProperty"] = id_property
    response = api.post(CONTACTS + "/batch/read", body)
    assert response.status_code == 207
    payload = response.json()
    assert [r["id"] for r in payload["results"]] == ["101"]
    assert payload["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert payload["errors"][0]["context"] == {"ids": [missing]}


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"id": str(i)} for i in range(101)]},
        {"inputs": []},
        {"inputs": [{}]},
        {"inputs": [{"id": "101"}], "idProperty": "firstname"},
    ],
    ids=["101-inputs", "no-inputs", "input-without-id", "non-unique-id-property"],
)
def test_a_malformed_batch_read_is_a_400(api: Api, body: dict[str, object]) -> None:
    response = api.post(CONTACTS + "/batch/read", body)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_invalid_json_is_a_400(api: Api) -> None:
    response = api.session.post(
        api.url + CONTACTS + "/batch/read", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_keep_alive_serves_many_requests_on_one_connection(api: Api) -> None:
    for _ in range(20):
        assert api.get(CONTACTS, limit=1).status_code == 200
    assert api.get(CONTACTS).headers.get("Connection", "").lower() != "close"


@pytest.mark.parametrize(
    "raw",
    [
        b"NONSENSE\r\n\r\n",
        b"GET /crm/v3/objects/contacts HTTP/1.1\r\nContent-Length: many\r\n\r\n",
        b"BREW / HTTP/1.1\r\n\r\n",
    ],
    ids=["bad-request-line", "bad-content-length", "unknown-method"],
)
def test_a_malformed_request_still_gets_a_json_error(sandbox: Sandbox, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as conn:
        conn.sendall(raw)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] in (b"400", b"501")
    assert json.loads(body)["status"] == "error"


def test_admin_upsert_refuses_to_give_an_email_to_a_second_contact(api: Api) -> None:
    response = api.admin("contacts", [{"id": "102", "properties": {"email": "ops@acme.com"}}])
    assert response.status_code == 409
