"""The admin side: snapshot dump and reload, simulated arrivals, stats."""

from __future__ import annotations

import json
from pathlib import Path

from sync.sandbox import Portal, generate_portal
from sync.snapshot import read_snapshot
from tests.fakes import ManualClock
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import MARIA, T0, Api

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "examples" / "acme-eu.snapshot.json"


def test_the_dumped_snapshot_is_readable_by_read_snapshot(api: Api, tmp_path: Path) -> None:
    file = tmp_path / "dump.json"
    file.write_text(json.dumps(api.admin("snapshot").json()))
    snapshot = read_snapshot(file)
    assert snapshot.problems == []
    assert snapshot.portal_id == 12345678
    assert [c.id for c in snapshot.contacts] == ["101", "102", "103", "104", "105", "107"]
    assert {c.id for c in snapshot.contacts if 42 in c.list_ids} == {"103", "104", "107"}
    assert len(snapshot.events_by_email[MARIA]) == 7 + 4  # seven submissions, four email events


def test_a_dumped_snapshot_reloads_into_the_same_state(make_sandbox: MakeSandbox, clock: ManualClock) -> None:
    first = Api(make_sandbox(generate_portal(120, seed=3)))
    first.post("/crm/v3/properties/contacts/groups", {"name": "lead_scoring_sync", "label": "Lead scoring"})
    first.post(
        "/crm/v3/properties/contacts",
        {
            "name": "ls_score",
            "label": "Score",
            "type": "number",
            "fieldType": "number",
            "groupName": "lead_scoring_sync",
        },
    )
    first.update([{"id": "1003", "properties": {"ls_score": "64", "lifecyclestage": "evangelist"}}])
    dumped = first.admin("snapshot").json()
    reloaded, problems = Portal.from_snapshot(dumped, now_ms=0)
    assert problems == []
    assert reloaded.snapshot() == dumped
    second = Api(make_sandbox(reloaded))
    assert second.get("/crm/v3/properties/contacts/ls_score").json()["groupName"] == "lead_scoring_sync"


def test_the_example_snapshot_loads_and_reports_the_records_it_skips() -> None:
    portal, problems = Portal.from_snapshot(json.loads(EXAMPLE.read_text()), now_ms=T0)
    assert portal.contact_count() == 12
    assert any("contact: has no id" in p for p in problems)  # the contact without an id
    assert any("createdate" in p for p in problems)  # "last tuesday"
    assert any("not-a-time" in p for p in problems)
    assert portal.property_def("decision_role") is not None  # custom properties arrive as text


def test_admin_upserts_contacts_and_bumps_lastmodifieddate(api: Api, clock: ManualClock) -> None:
    clock.advance(60)
    result = api.admin(
        "contacts",
        {"contacts": [{"id": "102", "properties": {"jobtitle": "CFO"}}, {"properties": {"email": "new@lead.example"}}]},
    ).json()["results"]
    assert result[0]["properties"]["jobtitle"] == "CFO"
    assert result[0]["properties"]["lastmodifieddate"] == "2027-01-15T08:01:00.000Z"
    assert result[1]["id"] == "108"  # the next id
    found = api.post(
        "/crm/v3/objects/contacts/batch/read", {"idProperty": "email", "inputs": [{"id": "new@lead.example"}]}
    )
    assert found.json()["results"][0]["id"] == "108"
    assert api.sandbox.portal.write_log() == []  # admin edits are not the worker's writes


def test_admin_upsert_matches_an_existing_email(api: Api) -> None:
    api.admin("contacts", [{"properties": {"email": "SPY@rival.com", "jobtitle": "Spy"}}])
    assert api.props("103")["jobtitle"] == "Spy"


def test_admin_upsert_can_set_lastmodifieddate_for_bulk_import_scenarios(api: Api) -> None:
    api.admin("contacts", [{"id": "101", "properties": {"lastmodifieddate": "1790000000000"}}])
    assert api.props("101")["lastmodifieddate"] == "2026-09-21T14:13:20.000Z"


def test_admin_refuses_an_unknown_property(api: Api) -> None:
    assert api.admin("contacts", [{"id": "101", "properties": {"no_such": "x"}}]).status_code == 400


def test_stats_count_requests_by_route_template_and_status(api: Api) -> None:
    api.get("/crm/v3/objects/contacts/101")
    api.get("/crm/v3/objects/contacts/999")
    api.update([{"id": "101", "properties": {"ls_score": "1"}}, {"id": "102", "properties": {"ls_score": "1"}}])
    api.update([{"id": "101", "properties": {"ls_score": "2"}}])
    api.session.get(api.url + "/crm/v3/objects/contacts", headers={"Authorization": "Bearer nope"})
    stats = api.admin("stats").json()
    assert stats["requests"] == {
        "GET /crm/v3/objects/contacts": {"401": 1},
        "GET /crm/v3/objects/contacts/{contactId}": {"200": 1, "404": 1},
        "POST /crm/v3/objects/contacts/batch/update": {"200": 2},
    }
    assert stats["total_requests"] == 5
    assert stats["writes_applied"] == 3
    assert stats["contact_writes"] == {"101": 2, "102": 1}


def test_stats_count_429s_by_policy(make_sandbox: MakeSandbox) -> None:
    api = Api(make_sandbox(rate_limit="per10s=1,search=1"))
    for _ in range(3):
        api.get("/crm/v3/objects/contacts")
        api.search(None)
    assert api.admin("stats").json()["rate_limited"] == {"TEN_SECONDLY_ROLLING": 2, "SECONDLY": 2, "DAILY": 0}


def test_reset_stats_starts_a_fresh_count(api: Api) -> None:
    api.update([{"id": "101", "properties": {"ls_score": "1"}}])
    api.admin("reset_stats", {})
    stats = api.admin("stats").json()
    assert (stats["total_requests"], stats["writes_applied"], stats["contact_writes"]) == (0, 0, {})
    assert api.sandbox.portal.write_log() == []
