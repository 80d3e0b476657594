"""The search lag (HubSpot's indexing delay) and the conversion properties a form submission sets on its contact."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from sync.sandbox import Portal
from sync.sandbox.records import FormRecord
from sync.sandbox.wire import iso_ms
from tests.fakes import ManualClock
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import Api
from tests.sandbox.test_cli import LAUNCH, ROOT

LAG_S = 30
NEW_EMAIL = "lena@buyer-corp.com"


def lagged(make_sandbox: MakeSandbox) -> Api:
    portal = Portal()
    portal.add_form(FormRecord("f-demo", "Demo request", 0))
    portal.add_form(FormRecord("f-ebook", "Energy ebook", 0))
    portal.upsert_contacts([{"id": "1", "properties": {"email": "ana@buyer-corp.com", "jobtitle": "CTO"}}], 0)
    portal.search_lag_seconds = LAG_S
    return Api(make_sandbox(portal))


def found(api: Api, filters: list[dict[str, Any]] | None = None, **body: Any) -> list[dict[str, Any]]:
    response = api.search(filters, properties=["email", "jobtitle"], **body)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def eq(prop: str, value: str) -> list[dict[str, Any]]:
    return [{"propertyName": prop, "operator": "EQ", "value": value}]


def test_a_change_shows_in_search_only_after_the_lag_and_at_once_when_read_by_id(
    make_sandbox: MakeSandbox, clock: ManualClock
) -> None:
    api = lagged(make_sandbox)
    api.admin("contacts", {"contacts": [{"id": "1", "properties": {"jobtitle": "CEO"}}]}).raise_for_status()
    clock.advance(LAG_S - 1)
    assert found(api, eq("jobtitle", "CEO")) == []
    (old,) = found(api, eq("jobtitle", "CTO"))  # search still has the record as it was
    assert old["properties"]["jobtitle"] == "CTO"
    read = api.post("/crm/v3/objects/contacts/batch/read", {"inputs": [{"id": "1"}], "properties": ["jobtitle"]})
    assert read.json()["results"][0]["properties"]["jobtitle"] == "CEO"
    clock.advance(1)
    assert [r["properties"]["jobtitle"] for r in found(api, eq("jobtitle", "CEO"))] == ["CEO"]
    assert found(api, eq("jobtitle", "CTO")) == []


def test_a_contact_created_within_the_lag_is_not_found_by_search(make_sandbox: MakeSandbox, clock: ManualClock) -> None:
    api = lagged(make_sandbox)
    api.admin("contacts", {"contacts": [{"id": "2", "properties": {"email": NEW_EMAIL}}]}).raise_for_status()
    assert [r["id"] for r in found(api)] == ["1"]
    assert api.search(None).json()["total"] == 1
    assert api.get("/crm/v3/objects/contacts").json()["results"][-1]["id"] == "2"  # the list endpoint has it
    clock.advance(LAG_S + 1)
    assert [r["id"] for r in found(api)] == ["1", "2"]


def test_without_a_lag_search_shows_every_change_at_once(make_sandbox: MakeSandbox) -> None:
    api = lagged(make_sandbox)
    api.sandbox.portal.search_lag_seconds = 0
    api.admin("contacts", {"contacts": [{"id": "1", "properties": {"jobtitle": "CEO"}}]}).raise_for_status()
    assert len(found(api, eq("jobtitle", "CEO"))) == 1


def submit(api: Api, form: str, at_ms: int, email: str = "ana@buyer-corp.com") -> None:
    sub = {"formId": form, "submittedAt": at_ms, "values": [{"name": "email", "value": email}]}
    api.admin("form_submissions", {"form_submissions": [sub]}).raise_for_status()


def test_a_form_submission_sets_the_contacts_conversion_properties_as_hubspot_does(
    make_sandbox: MakeSandbox, clock: ManualClock
) -> None:
    api = lagged(make_sandbox)
    api.sandbox.portal.search_lag_seconds = 0
    submit(api, "f-ebook", clock.ms - 60_000)
    submit(api, "f-demo", clock.ms - 1_000)
    submit(api, "f-ebook", clock.ms - 120_000)  # an older one arriving late changes the first, not the recent
    props = api.props("1")
    assert props["recent_conversion_event_name"] == "Demo request"
    assert props["recent_conversion_date"] == iso_ms(clock.ms - 1_000)
    assert props["first_conversion_event_name"] == "Energy ebook"
    assert props["first_conversion_date"] == iso_ms(clock.ms - 120_000)
    assert props["num_conversion_events"] == "3"
    assert props["lastmodifieddate"] == iso_ms(clock.ms)  # a property change: the contact was modified now
    since = [{"propertyName": "recent_conversion_date", "operator": "GTE", "value": str(clock.ms - 5_000)}]
    assert [r["id"] for r in found(api, since)] == ["1"]


def test_a_form_submission_searchable_only_after_the_lag(make_sandbox: MakeSandbox, clock: ManualClock) -> None:
    api = lagged(make_sandbox)
    submit(api, "f-demo", clock.ms)
    since = [{"propertyName": "recent_conversion_date", "operator": "GTE", "value": str(clock.ms - 5_000)}]
    assert found(api, since) == []
    clock.advance(LAG_S + 1)
    assert [r["id"] for r in found(api, since)] == ["1"]


def test_a_submission_without_a_contact_changes_no_contact(make_sandbox: MakeSandbox, clock: ManualClock) -> None:
    api = lagged(make_sandbox)
    submit(api, "f-demo", clock.ms, email=NEW_EMAIL)
    assert api.sandbox.portal.contact_count() == 1
    assert "recent_conversion_date" not in api.props("1")


@pytest.mark.parametrize("lag", ["-1", "soon", "inf"])
def test_a_bad_search_lag_exits_2(lag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH, "sandbox", "--search-lag", lag],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--search-lag" in done.stderr
