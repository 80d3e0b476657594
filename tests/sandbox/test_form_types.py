"""The forms list as HubSpot's Forms v3 API answers it: only `hubspot` forms unless `formTypes` asks for more,
archived forms only when `archived=true` asks for them, paged by `after`; submissions without conversionId."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sync.sandbox import Portal, Sandbox
from sync.sandbox.records import FormRecord, Submission
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import MARIA, T0, Api

FORMS = "/marketing/v3/forms"
# (id, formType, archived)
KINDS = [
    ("h-1", "hubspot", False),
    ("c-1", "captured", False),
    ("p-1", "flow", False),
    ("b-1", "blog_comment", False),
    ("h-2", "hubspot", True),
    ("p-2", "flow", False),
    ("p-3", "flow", True),
]


def kinds_portal() -> Portal:
    portal = Portal(12345678, created_ms=T0)
    for form_id, kind, archived in KINDS:
        portal.add_form(FormRecord(form_id, f"Form {form_id}", T0, form_type=kind, archived=archived))
    return portal


@pytest.fixture
def api(make_sandbox: MakeSandbox) -> Iterator[Api]:
    client = Api(make_sandbox(kinds_portal()))
    yield client
    client.close()


def listed(api: Api, **params: Any) -> list[str]:
    ids: list[str] = []
    while True:
        response = api.get(FORMS, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [f["id"] for f in body["results"]]
        if "paging" not in body:
            return ids
        params["after"] = body["paging"]["next"]["after"]


def test_without_form_types_only_hubspot_forms_are_listed(api: Api) -> None:
    assert listed(api) == ["h-1"]


@pytest.mark.parametrize(
    ("form_types", "expected"),
    [
        (["flow"], ["p-1", "p-2"]),
        (["captured", "flow"], ["c-1", "p-1", "p-2"]),  # repeated, as the SDK sends a list
        ("captured,flow", ["c-1", "p-1", "p-2"]),  # one comma-separated value
        (["hubspot", "captured", "flow", "blog_comment"], ["h-1", "c-1", "p-1", "b-1", "p-2"]),
        (["all"], ["h-1", "c-1", "p-1", "b-1", "p-2"]),
    ],
)
def test_form_types_lists_the_types_asked_for(api: Api, form_types: Any, expected: list[str]) -> None:
    assert listed(api, formTypes=form_types) == expected


def test_each_form_says_its_type_and_that_it_is_not_archived(api: Api) -> None:
    forms = api.get(FORMS, formTypes="all").json()["results"]
    assert [(f["id"], f["formType"], f["archived"]) for f in forms] == [k for k in KINDS if not k[2]]


def test_archived_true_lists_only_archived_forms(api: Api) -> None:
    assert listed(api, formTypes="all", archived="true") == ["h-2", "p-3"]
    assert listed(api, archived="true") == ["h-2"]
    assert listed(api, formTypes="all", archived="false") == ["h-1", "c-1", "p-1", "b-1", "p-2"]
    forms = api.get(FORMS, formTypes="flow", archived="true").json()["results"]
    assert [(f["id"], f["archived"]) for f in forms] == [("p-3", True)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"formTypes": "popup"}, "formTypes: popup is not one of hubspot, captured, flow, blog_comment, all"),
        ({"archived": "maybe"}, "archived must be true or false"),
    ],
)
def test_an_unknown_form_type_or_archived_value_is_a_400(api: Api, params: dict[str, str], message: str) -> None:
    response = api.get(FORMS, **params)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_the_filtered_list_pages_with_after_and_each_form_comes_once(make_sandbox: MakeSandbox) -> None:
    portal = Portal(12345678, created_ms=T0)
    kinds = ("hubspot", "flow", "captured", "blog_comment")
    for i in range(230):
        portal.add_form(FormRecord(f"f-{i:03}", f"Form {i}", T0, form_type=kinds[i % 4], archived=i % 7 == 0))
    api = Api(make_sandbox(portal))
    pages = 0
    params: dict[str, Any] = {"formTypes": ["flow", "captured"], "limit": 50}
    ids: list[str] = []
    while True:
        body = api.get(FORMS, **params).json()
        pages += 1
        ids += [f["id"] for f in body["results"]]
        if "paging" not in body:
            break
        params["after"] = body["paging"]["next"]["after"]
    expected = [f"f-{i:03}" for i in range(230) if i % 4 in (1, 2) and i % 7 != 0]
    assert ids == expected and pages == -(-len(expected) // 50)
    api.close()


def test_admin_forms_take_a_type_and_archived_and_refuse_an_unknown_type(make_sandbox: MakeSandbox) -> None:
    sb: Sandbox = make_sandbox(kinds_portal())
    api = Api(sb)
    ok = api.admin("forms", {"forms": [{"id": "p-9", "name": "Pop-up", "formType": "flow"},
                                       {"id": "h-1", "name": "Form h-1", "archived": True}]})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert listed(api) == []
    assert listed(api, formTypes="flow") == ["p-1", "p-2", "p-9"]
    bad = api.admin("forms", {"forms": [{"id": "x", "name": "X", "formType": "popup"}]})
    assert bad.status_code == 400 and "formType 'popup'" in bad.json()["message"]
    api.close()


def test_a_submission_without_conversion_id_is_served_and_dumped_without_one(make_sandbox: MakeSandbox) -> None:
    portal = kinds_portal()
    values = [("work_email", MARIA, "0-1"), ("full_name", "Maria Ionescu", "0-1")]
    portal.bulk_load([], [Submission("c-1", "internal-1", T0 + 5, values, "https://acme.example/c",
                                     sends_conversion_id=False)])  # fmt: skip
    api = Api(make_sandbox(portal))
    posted = api.admin(
        "form_submissions",
        {"form_submissions": [{"formId": "c-1", "conversionId": None, "submittedAt": T0 + 9,
                               "values": [{"name": "work_email", "value": MARIA, "objectTypeId": "0-1"}]}]},
    )  # fmt: skip
    assert posted.status_code == 200, posted.text
    served = api.get("/form-integrations/v1/submissions/forms/c-1", limit=1)
    first = served.json()
    assert first["results"] == [
        {"submittedAt": T0 + 9, "values": [{"objectTypeId": "0-1", "name": "work_email", "value": MARIA}],
         "pageUrl": ""},
    ]  # fmt: skip
    second = api.get("/form-integrations/v1/submissions/forms/c-1", limit=1, after=first["paging"]["next"]["after"])
    assert second.json()["results"][0]["submittedAt"] == T0 + 5 and "conversionId" not in second.json()["results"][0]
    dumped = api.admin("snapshot").json()
    assert dumped["forms"][1] == {"id": "c-1", "name": "Form c-1", "formType": "captured", "archived": False}
    assert all("conversionId" not in s for s in dumped["form_submissions"])
    reloaded, problems = Portal.from_snapshot(dumped, T0)
    assert problems == [] and reloaded.snapshot()["form_submissions"] == dumped["form_submissions"]
    assert reloaded.snapshot()["forms"] == dumped["forms"]
    api.close()
