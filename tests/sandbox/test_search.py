"""CRM search: operators, groups, limits, one sort with stable ties, the 10,000-result cap."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sync.sandbox import Portal, Sandbox
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import DAY, T0, Api


def f(prop: str, op: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    flt: dict[str, Any] = {"propertyName": prop, "operator": op, **extra}
    if value is not None:
        flt["value"] = value
    return flt


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ([f("industry", "EQ", "ENERGY")], ["101", "103"]),
        ([f("industry", "EQ", "energy")], ["101", "103"]),  # text compares case-insensitively
        ([f("industry", "NEQ", "ENERGY")], ["102", "107"]),  # no value: no match
        ([f("numberofemployees", "LT", "250")], ["104", "105"]),  # numbers compare as numbers: "90" < "250"
        ([f("numberofemployees", "LTE", "250")], ["102", "104", "105"]),
        ([f("numberofemployees", "GT", "250")], ["101", "107"]),
        ([f("numberofemployees", "GTE", "800")], ["101", "107"]),
        ([f("numberofemployees", "BETWEEN", "90", highValue="800")], ["101", "102", "104"]),
        ([f("industry", "IN", values=["finance", "logistics"])], ["102", "107"]),
        ([f("industry", "NOT_IN", values=["ENERGY"])], ["102", "107"]),
        ([f("numberofemployees", "IN", values=["5", "90.0"])], ["104", "105"]),
        ([f("industry", "HAS_PROPERTY")], ["101", "102", "103", "107"]),
        ([f("industry", "NOT_HAS_PROPERTY")], ["104", "105"]),
        ([f("jobtitle", "CONTAINS_TOKEN", "manager")], ["102"]),
        ([f("email", "CONTAINS_TOKEN", "*@gmail.com")], ["105"]),
        ([f("email", "CONTAINS_TOKEN", "rival")], ["103"]),
        ([f("jobtitle", "NOT_CONTAINS_TOKEN", "student")], ["101", "102", "103", "104"]),
        ([f("hs_email_optout", "EQ", "true")], ["105"]),
        ([f("lastmodifieddate", "GTE", str(T0 + 6 * DAY))], ["104", "107"]),
        ([f("lastmodifieddate", "LT", str(T0 + 5 * DAY))], ["103"]),
        ([f("createdate", "BETWEEN", str(T0 + DAY), highValue=str(T0 + 3 * DAY))], ["102", "103", "104"]),
        ([f("hs_object_id", "GT", "104")], ["105", "107"]),
        ([f("hs_object_id", "IN", values=["101", "107", "999"])], ["101", "107"]),
        ([f("industry", "EQ", "ENERGY"), f("numberofemployees", "GT", "100")], ["101"]),  # AND inside a group
    ],
)
def test_search_operators_match_like_hubspot(api: Api, filters: list[dict[str, Any]], expected: list[str]) -> None:
    assert ids(api.search(filters, limit=200)) == expected


def test_filter_groups_are_ored(api: Api) -> None:
    groups = [{"filters": [f("industry", "EQ", "FINANCE")]}, {"filters": [f("hs_object_id", "EQ", "107")]}]
    body = {"filterGroups": groups}
    assert ids(api.post("/crm/v3/objects/contacts/search", body)) == ["102", "107"]


def test_no_filter_matches_every_contact_and_reports_the_total(api: Api) -> None:
    body = api.search(None, limit=2).json()
    assert body["total"] == 6
    assert body["paging"] == {"next": {"after": "2"}}


def test_the_last_page_has_no_next(api: Api) -> None:
    assert "paging" not in api.search(None, limit=2, after="4").json()


def test_iso_dates_are_accepted_as_well_as_epoch_ms(api: Api) -> None:
    assert ids(api.search([f("lastmodifieddate", "GTE", "2026-09-27T14:13:20Z")])) == ["104", "107"]


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({"filterGroups": [{"filters": [f("industry", "HAS_PROPERTY")]}] * 6}, "Too many filters"),
        ({"filterGroups": [{"filters": [f("industry", "HAS_PROPERTY")] * 7}]}, "Too many filters"),
        ({"filterGroups": [{"filters": [f("industry", "HAS_PROPERTY")] * 5}] * 4}, "Too many filters"),
        ({"sorts": [{"propertyName": "createdate"}, {"propertyName": "email"}]}, "one sort"),
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"after": "abc"}, "after"),
        ({"after": "10000"}, "10000"),
        ({"filterGroups": [{"filters": [f("no_such", "EQ", "x")]}]}, "does not exist"),
        ({"filterGroups": [{"filters": [f("industry", "LIKE", "x")]}]}, "operator"),
        ({"filterGroups": [{"filters": [f("industry", "EQ")]}]}, "value"),
        ({"filterGroups": [{"filters": [f("industry", "IN", values=[])]}]}, "values"),
        ({"filterGroups": [{"filters": [f("numberofemployees", "GT", "many")]}]}, "number"),
        ({"filterGroups": [{"filters": [f("numberofemployees", "CONTAINS_TOKEN", "5")]}]}, "text property"),
        ({"sorts": [{"propertyName": "no_such"}]}, "unknown property"),
    ],
    ids=[
        "6-groups", "7-filters-in-a-group", "20-filters", "two-sorts", "limit-201", "limit-0", "after-text",
        "after-10000", "unknown-property", "unknown-operator", "missing-value", "empty-values", "non-numeric",
        "token-on-number", "sort-unknown",
    ],
)  # fmt: skip
def test_an_invalid_search_is_a_400_validation_error(api: Api, body: dict[str, Any], message_part: str) -> None:
    response = api.post("/crm/v3/objects/contacts/search", body)
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert message_part.lower() in response.json()["message"].lower()


def test_eighteen_filters_in_three_groups_are_allowed(api: Api) -> None:
    group = {"filters": [f("industry", "HAS_PROPERTY")] * 6}
    assert api.post("/crm/v3/objects/contacts/search", {"filterGroups": [group] * 3}).status_code == 200


@pytest.mark.parametrize(
    ("direction", "expected"),
    [
        # 101, 102 and 105 share lastmodifieddate T0+5d: ties go by hs_object_id ascending in both directions.
        ("ASCENDING", ["103", "101", "102", "105", "104", "107"]),
        ("DESCENDING", ["107", "104", "101", "102", "105", "103"]),
    ],
)
def test_one_sort_with_ties_broken_by_id_ascending(api: Api, direction: str, expected: list[str]) -> None:
    sorts = [{"propertyName": "lastmodifieddate", "direction": direction}]
    assert ids(api.search(None, sorts=sorts, limit=10)) == expected


def test_the_sdk_string_sort_form_is_understood(api: Api) -> None:
    assert ids(api.search(None, sorts=["-hs_object_id"], limit=2)) == ["107", "105"]


def test_contacts_without_the_sort_value_come_last(api: Api) -> None:
    sorts = [{"propertyName": "numberofemployees", "direction": "DESCENDING"}]
    assert ids(api.search(None, sorts=sorts, limit=10)) == ["107", "101", "102", "104", "105", "103"]


def test_paging_with_ties_is_stable_and_complete(api: Api) -> None:
    sorts = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    paged = [cid for after in (0, 2, 4) for cid in ids(api.search(None, sorts=sorts, limit=2, after=str(after)))]
    assert paged == ["103", "101", "102", "105", "104", "107"]


def test_search_answers_carry_no_rate_limit_headers(make_sandbox: MakeSandbox) -> None:
    api = Api(make_sandbox(rate_limit="professional"))
    response = api.search(None)
    assert response.status_code == 200
    assert not [h for h in response.headers if h.lower().startswith("x-hubspot-ratelimit")]


def test_a_write_is_searchable_at_once(api: Api) -> None:
    assert ids(api.search([f("ls_grade", "EQ", "A1")])) == []
    api.update([{"id": "103", "properties": {"ls_grade": "A1"}}])
    assert ids(api.search([f("ls_grade", "EQ", "A1")])) == ["103"]


# --- the 10,000 cap ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_portal() -> Portal:
    """10,050 contacts sharing one lastmodifieddate, as a bulk import leaves them."""
    portal = Portal()
    portal.bulk_load((1000 + i, {"email": f"c{i}@bulk.example"}, T0, T0 + DAY) for i in range(10_050))
    return portal


@pytest.fixture
def big(make_sandbox: MakeSandbox, big_portal: Portal) -> Api:
    return Api(make_sandbox(big_portal))


def shared_window(after: int, limit: int = 200) -> dict[str, Any]:
    return {
        "filterGroups": [{"filters": [f("lastmodifieddate", "GTE", str(T0))]}],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "limit": limit,
        "after": str(after),
        "properties": ["email"],
    }


def test_the_page_reaching_the_cap_is_cut_at_10000_and_points_past_it(big: Api) -> None:
    body = big.post("/crm/v3/objects/contacts/search", shared_window(9_900)).json()
    assert body["total"] == 10_050
    assert len(body["results"]) == 100
    assert body["results"][-1]["id"] == str(1000 + 9_999)
    # HubSpot hands out after=10000; following it is the 400 below.
    assert body["paging"]["next"]["after"] == "10000"


def test_paging_past_10000_results_is_a_400(big: Api) -> None:
    response = big.post("/crm/v3/objects/contacts/search", shared_window(10_000))
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_the_shared_timestamp_is_paged_by_hs_object_id_past_the_cap(big: Api) -> None:
    body = {
        "filterGroups": [
            {"filters": [f("lastmodifieddate", "EQ", str(T0 + DAY)), f("hs_object_id", "GT", str(1000 + 9_999))]}
        ],
        "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        "limit": 200,
    }
    found = ids(big.post("/crm/v3/objects/contacts/search", body))
    assert found == [str(1000 + i) for i in range(10_000, 10_050)]


def test_search_pages_a_100k_portal_quickly() -> None:
    """Guards the indexes: a window query over 100,000 contacts and its pages take milliseconds, not seconds."""
    portal = Portal()
    portal.bulk_load((i, {"email": f"c{i}@x.example"}, T0, T0 + i) for i in range(1, 100_001))
    with Sandbox(portal, port=0, rate_limit="off") as sb:
        api = Api(sb)
        started = time.perf_counter()
        for after in range(0, 2_000, 200):
            window = shared_window(after)
            window["filterGroups"][0]["filters"][0]["value"] = "0"
            assert len(ids(api.post("/crm/v3/objects/contacts/search", window))) == 200
        assert time.perf_counter() - started < 2.0
        api.close()
