"""Forms, form submissions (newest first), marketing email events (offset/hasMore) and list memberships."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.fakes import ManualClock
from tests.sandbox.support import DAY, FORM_DEMO, FORM_EBOOK, FORM_EMPTY, MARIA, T0, Api

SUBMISSIONS = "/form-integrations/v1/submissions/forms"
EVENTS = "/email/public/v1/events"


def page_all(api: Api, path: str, cursor: str = "after", **params: Any) -> list[dict[str, Any]]:
    """Follow paging.next.after (or the email events' offset/hasMore) to the end."""
    found: list[dict[str, Any]] = []
    while True:
        body = api.get(path, **params).json()
        if "events" in body:
            found += body["events"]
            if not body["hasMore"]:
                return found
            params["offset"] = body["offset"]
            continue
        found += body["results"]
        if "paging" not in body:
            return found
        params[cursor] = body["paging"]["next"]["after"]


# --- forms -------------------------------------------------------------------------------


def test_forms_are_listed_with_id_and_name_and_paged(api: Api) -> None:
    forms = page_all(api, "/marketing/v3/forms", limit=2)
    assert [(f["id"], f["name"]) for f in forms] == [
        (FORM_DEMO, "Demo request"),
        (FORM_EBOOK, "Energy ebook"),
        (FORM_EMPTY, "Careers"),
    ]
    assert forms[0]["formType"] == "hubspot"


def test_one_form_can_be_read_and_an_unknown_one_is_a_404(api: Api) -> None:
    assert api.get(f"/marketing/v3/forms/{FORM_DEMO}").json()["name"] == "Demo request"
    assert api.get("/marketing/v3/forms/nope").status_code == 404


# --- submissions ---------------------------------------------------------------------------


def test_submissions_come_newest_first_across_pages(api: Api) -> None:
    found = page_all(api, f"{SUBMISSIONS}/{FORM_DEMO}", limit=2)
    assert [s["conversionId"] for s in found] == ["cv-7", "cv-5", "cv-3", "cv-1"]
    assert [s["submittedAt"] for s in found] == sorted((s["submittedAt"] for s in found), reverse=True)
    assert found[0] == {
        "conversionId": "cv-7",
        "submittedAt": T0 + 7000,
        "values": [{"name": "email", "value": MARIA}],
        "pageUrl": "https://acme.example/pricing",
    }


def test_a_submission_arriving_while_paging_neither_repeats_nor_hides_older_ones(api: Api) -> None:
    first = api.get(f"{SUBMISSIONS}/{FORM_DEMO}", limit=2).json()
    api.admin("form_submissions", {"form_submissions": [{"formId": FORM_DEMO, "values": [], "submittedAt": T0 + 9999}]})
    rest = page_all(api, f"{SUBMISSIONS}/{FORM_DEMO}", limit=2, after=first["paging"]["next"]["after"])
    assert [s["conversionId"] for s in first["results"] + rest] == ["cv-7", "cv-5", "cv-3", "cv-1"]


def test_the_submissions_limit_is_capped_at_50(api: Api) -> None:
    api.admin(
        "form_submissions",
        {"form_submissions": [{"formId": FORM_EMPTY, "submittedAt": T0 + i, "values": []} for i in range(60)]},
    )
    assert len(api.get(f"{SUBMISSIONS}/{FORM_EMPTY}", limit=500).json()["results"]) == 50


def test_submissions_of_a_form_without_any_are_empty(api: Api) -> None:
    assert api.get(f"{SUBMISSIONS}/{FORM_EMPTY}").json() == {"results": []}


def test_submissions_of_an_unknown_form_are_a_404(api: Api) -> None:
    assert api.get(f"{SUBMISSIONS}/no-such-form").status_code == 404


# --- email events ------------------------------------------------------------------------


def test_email_events_come_newest_first_paged_by_offset_while_has_more(api: Api) -> None:
    found = page_all(api, EVENTS, limit=2)
    # Newest first, as HubSpot lists them; e-3a and e-3b share a millisecond (then by id, descending).
    assert [e["id"] for e in found] == ["e-6", "e-5", "e-4", "e-3b", "e-3a", "e-2", "e-1"]


def test_an_email_event_carries_its_type_specific_fields(api: Api) -> None:
    by_id = {e["id"]: e for e in page_all(api, EVENTS, limit=100)}
    assert by_id["e-4"]["url"] == "https://acme.example/pricing"
    assert by_id["e-5"]["category"] == "HARD_BOUNCE"
    assert by_id["e-6"]["subscriptions"] == [{"id": 1, "status": "UNSUBSCRIBED"}]
    assert by_id["e-6"]["source"] == "SOURCE_RECIPIENT"
    assert set(by_id["e-1"]) == {"id", "created", "type", "recipient", "emailCampaignId", "portalId", "filteredEvent"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"startTimestamp": T0 + 3000, "endTimestamp": T0 + 5000}, ["e-5", "e-4", "e-3b", "e-3a"]),  # inclusive
        ({"startTimestamp": T0 + 6000}, ["e-6"]),
        ({"endTimestamp": T0 + 1000}, ["e-1"]),
        ({"eventType": "OPEN"}, ["e-3b", "e-3a"]),
        ({"eventType": "open", "excludeFilteredEvents": "true"}, ["e-3a"]),
        ({"excludeFilteredEvents": "true", "startTimestamp": T0 + 3000, "endTimestamp": T0 + 3000}, ["e-3a"]),
        ({"eventType": "SPAMREPORT"}, []),
    ],
)
def test_email_event_filters(api: Api, params: dict[str, Any], expected: list[str]) -> None:
    assert [e["id"] for e in page_all(api, EVENTS, limit=1, **params)] == expected


def test_the_email_events_limit_defaults_to_100_and_is_capped_at_1000(api: Api) -> None:
    events = [{"type": "OPEN", "recipient": MARIA, "created": T0 + DAY + i} for i in range(1_100)]
    api.admin("email_events", {"email_events": events})
    assert len(api.get(EVENTS).json()["events"]) == 100
    body = api.get(EVENTS, limit=5000).json()
    assert len(body["events"]) == 1000
    assert body["hasMore"] is True


def test_an_event_arriving_while_paging_neither_repeats_nor_hides_older_ones(api: Api) -> None:
    first = api.get(EVENTS, limit=3).json()
    api.admin("email_events", [{"id": "e-late", "type": "CLICK", "recipient": MARIA, "created": T0 + DAY}])
    rest = page_all(api, EVENTS, limit=3, offset=first["offset"])
    assert [e["id"] for e in first["events"] + rest] == ["e-6", "e-5", "e-4", "e-3b", "e-3a", "e-2", "e-1"]
    assert page_all(api, EVENTS, limit=3)[0]["id"] == "e-late"  # a new query sees it first


def test_the_last_page_has_no_offset(api: Api) -> None:
    body = api.get(EVENTS, limit=100).json()
    assert (len(body["events"]), body["hasMore"], body["offset"]) == (7, False, "")


def _expired(response: requests.Response) -> None:
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert "offset" in body["message"]
    assert "start the query again" in body["message"]


@pytest.mark.parametrize(
    "other",
    [
        {"startTimestamp": T0 + 1000},
        {"endTimestamp": T0 + 9000},
        {"eventType": "OPEN"},
        {"excludeFilteredEvents": "true"},
    ],
)
def test_an_offset_is_valid_only_for_the_query_that_returned_it(api: Api, other: dict[str, Any]) -> None:
    query: dict[str, Any] = {"startTimestamp": T0, "endTimestamp": T0 + 8000}
    first = api.get(EVENTS, limit=2, **query).json()
    assert first["hasMore"] is True
    _expired(api.get(EVENTS, limit=2, offset=first["offset"], **{**query, **other}))
    # The same query with it still pages on, whatever the limit.
    assert [e["id"] for e in api.get(EVENTS, limit=5, offset=first["offset"], **query).json()["events"]] == [
        "e-4", "e-3b", "e-3a", "e-2", "e-1",
    ]  # fmt: skip


def test_an_offset_expires_after_the_configured_time(make_sandbox: Any, clock: ManualClock) -> None:
    api = Api(make_sandbox(offset_ttl_seconds=60))
    try:
        first = api.get(EVENTS, limit=2).json()
        clock.advance(59)
        second = api.get(EVENTS, limit=2, offset=first["offset"])
        assert [e["id"] for e in second.json()["events"]] == ["e-4", "e-3b"]
        clock.advance(2)  # each offset lives 60 s from when it was handed out: the first one is now too old
        _expired(api.get(EVENTS, limit=2, offset=first["offset"]))
        assert api.get(EVENTS, limit=2, offset=second.json()["offset"]).status_code == 200
        clock.advance(61)
        _expired(api.get(EVENTS, limit=2, offset=second.json()["offset"]))
        # Starting the query again without an offset works.
        assert [e["id"] for e in page_all(api, EVENTS, limit=2)][:2] == ["e-6", "e-5"]
    finally:
        api.close()


def test_an_unknown_offset_is_refused(api: Api) -> None:
    _expired(api.get(EVENTS, limit=2, offset="bm90LWFuLW9mZnNldA"))


def test_the_offset_fault_expires_offsets_and_only_on_requests_carrying_one(make_sandbox: Any) -> None:
    sandbox = make_sandbox(faults="offset=1")
    api = Api(sandbox)
    try:
        first = api.get(EVENTS, limit=2)
        assert first.status_code == 200  # no offset: the fault does not apply
        assert api.get("/crm/v3/objects/contacts", limit=2).status_code == 200
        _expired(api.get(EVENTS, limit=2, offset=first.json()["offset"]))
        assert sandbox.stats_json()["faults"] == {"offset": 1}
        assert api.admin("faults", {"spec": "off", "offset_ttl_seconds": 5}).json()["offset_ttl_seconds"] == 5
        assert sandbox.portal.offset_ttl_seconds == 5
    finally:
        api.close()


# --- lists ---------------------------------------------------------------------------------


def test_list_memberships_are_paged_in_record_id_order(api: Api) -> None:
    found = page_all(api, "/crm/v3/lists/42/memberships", limit=2)
    assert [m["recordId"] for m in found] == ["103", "104", "107"]
    assert found[0]["membershipTimestamp"] == "2026-09-21T14:13:20.000Z"


@pytest.mark.parametrize("list_id", ["9999", "abc"])
def test_memberships_of_an_unknown_list_are_a_404(api: Api, list_id: str) -> None:
    assert api.get(f"/crm/v3/lists/{list_id}/memberships").status_code == 404


def test_admin_can_change_a_lists_members(api: Api) -> None:
    api.admin("lists", {"lists": [{"listId": 42, "contactIds": ["101"]}]})
    assert [m["recordId"] for m in page_all(api, "/crm/v3/lists/42/memberships")] == ["101"]
