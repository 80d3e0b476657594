"""Companies and contact-company associations in the sandbox: HubSpot's endpoints and shapes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

import pytest

from sync.sandbox import Portal
from sync.sandbox.generator import generate_portal
from sync.snapshot import parse_snapshot
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import T0, Api, build_portal

# (id, properties, createdate, hs_lastmodifieddate)
COMPANIES: list[tuple[int, dict[str, str], int, int]] = [
    (501, {"name": "Voltgrid", "domain": "voltgrid.ro", "industry": "ENERGY", "numberofemployees": "1500"},
     T0, T0 + 10),
    (502, {"name": "Finbank", "domain": "finbank.eu", "industry": "FINANCE", "numberofemployees": "250"}, T0, T0 + 20),
    (503, {"name": "Acme", "domain": "acme.com", "industry": "RETAIL"}, T0, T0 + 20),
]  # fmt: skip
# Maria (101) works for two companies, Voltgrid Primary; Andrei (102) for Finbank; the others for none.
ASSOCIATIONS = [(101, 501, True), (101, 503, False), (102, 502, True)]


def company_portal() -> Portal:
    portal = build_portal()
    portal.bulk_load_companies(COMPANIES, ASSOCIATIONS)
    return portal


@pytest.fixture
def capi(make_sandbox: MakeSandbox) -> Any:
    client = Api(make_sandbox(company_portal()))
    yield client
    client.close()


def read_associations(api: Api, ids: list[Any], direction: str = "contacts/companies") -> Any:
    return api.post(f"/crm/v4/associations/{direction}/batch/read", {"inputs": [{"id": str(i)} for i in ids]})


def test_companies_list_with_hubspot_default_properties_and_their_own_modified_date(capi: Api) -> None:
    body = capi.get("/crm/v3/objects/companies", limit=2).json()
    assert [c["id"] for c in body["results"]] == ["501", "502"]
    props = body["results"][0]["properties"]
    assert props["name"] == "Voltgrid" and props["domain"] == "voltgrid.ro"
    assert props["hs_lastmodifieddate"].startswith("2026-09-21T14:13:20.010") and "lastmodifieddate" not in props
    assert body["paging"]["next"]["after"] == "503"


def test_company_search_keysets_on_hs_lastmodifieddate_with_the_contact_operators(capi: Api) -> None:
    body = capi.post(
        "/crm/v3/objects/companies/search",
        {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": str(T0 + 20)},
                        {"propertyName": "industry", "operator": "IN", "values": ["FINANCE", "RETAIL"]},
                    ]
                }
            ],
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": ["industry", "numberofemployees"],
        },
    ).json()
    assert body["total"] == 2
    assert [(c["id"], c["properties"]["industry"]) for c in body["results"]] == [("502", "FINANCE"), ("503", "RETAIL")]


def test_company_search_stops_at_the_10k_cap(make_sandbox: MakeSandbox) -> None:
    portal = build_portal()
    portal.bulk_load_companies([(i, {"name": f"c{i}"}, T0, T0 + i) for i in range(1, 10_102)], [])
    api = Api(make_sandbox(portal))
    page = api.post("/crm/v3/objects/companies/search", {"limit": 200, "after": "9800"}).json()
    assert page["total"] == 10_101 and page["paging"]["next"]["after"] == "10000"
    past = api.post("/crm/v3/objects/companies/search", {"limit": 200, "after": "10000"})
    assert past.status_code == 400


def test_company_batch_update_207_for_an_unknown_id_and_400_for_a_foreign_property(capi: Api) -> None:
    capi.post("/crm/v3/properties/companies/groups", {"name": "lead_scoring_sync", "label": "Lead scoring"})
    created = capi.post(
        "/crm/v3/properties/companies",
        {"name": "ls_account_score", "label": "Account score", "type": "number", "fieldType": "number",
         "groupName": "lead_scoring_sync"},
    )  # fmt: skip
    assert created.status_code == 201
    partial = capi.post(
        "/crm/v3/objects/companies/batch/update",
        {"inputs": [{"id": "501", "properties": {"ls_account_score": "80"}}, {"id": "999", "properties": {}}]},
    )
    assert partial.status_code == 207
    assert partial.json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert "COMPANY" in partial.json()["errors"][0]["message"]
    assert capi.sandbox.portal.contact_properties("501", "companies")["ls_account_score"] == "80"  # type: ignore[index]
    # hs_object_id is read-only, ls_score is a contact property: the whole batch fails, nothing applied.
    for props in ({"hs_object_id": "1"}, {"ls_score": "5"}):
        rejected = capi.post(
            "/crm/v3/objects/companies/batch/update",
            {"inputs": [{"id": "502", "properties": {"ls_account_score": "10"}}, {"id": "503", "properties": props}]},
        )
        assert rejected.status_code == 400
    assert "ls_account_score" not in (capi.sandbox.portal.contact_properties("502", "companies") or {})
    assert [w.contact_id for w in capi.sandbox.portal.write_log(0, "companies")] == ["501"]
    assert capi.sandbox.portal.write_log() == []  # contacts untouched


def test_company_batch_update_bumps_hs_lastmodifieddate(capi: Api, clock: Any) -> None:
    capi.post(
        "/crm/v3/properties/companies",
        {"name": "ls_account_grade", "label": "Grade", "type": "string", "fieldType": "text",
         "groupName": "companyinformation"},
    )  # fmt: skip
    capi.post(
        "/crm/v3/objects/companies/batch/update", {"inputs": [{"id": "503", "properties": {"ls_account_grade": "A1"}}]}
    )
    found = capi.post("/crm/v3/objects/companies/batch/read", {"inputs": [{"id": "503"}], "properties": ["name"]})
    assert found.json()["results"][0]["properties"]["hs_lastmodifieddate"] == clock_iso(clock)


def clock_iso(clock: Any) -> str:
    from sync.sandbox.wire import iso_ms

    return iso_ms(clock.ms)


def test_associations_batch_read_gives_labels_types_and_an_error_per_contact_without_company(capi: Api) -> None:
    reply = read_associations(capi, [101, 102, 105])
    assert reply.status_code == 207
    body = reply.json()
    maria = next(r for r in body["results"] if r["from"]["id"] == "101")
    assert [t["toObjectId"] for t in maria["to"]] == [501, 503]
    assert {(t["category"], t["typeId"], t["label"]) for t in maria["to"][0]["associationTypes"]} == {
        ("HUBSPOT_DEFINED", 1, "Primary"),
        ("HUBSPOT_DEFINED", 279, None),
    }
    assert maria["to"][1]["associationTypes"] == [{"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}]
    assert [e["context"]["fromObjectId"] for e in body["errors"]] == [["105"]]
    assert body["errors"][0]["subCategory"].endswith("NO_ASSOCIATIONS_FOUND")


def test_the_reverse_read_lists_a_company_s_contacts(capi: Api) -> None:
    body = read_associations(capi, [501, 502], "companies/contacts").json()
    assert {r["from"]["id"]: [t["toObjectId"] for t in r["to"]] for r in body["results"]} == {
        "501": [101],
        "502": [102],
    }
    assert {t["typeId"] for t in body["results"][0]["to"][0]["associationTypes"]} == {2, 280}


def test_a_contact_with_many_companies_pages_within_its_result(capi: Api) -> None:
    capi.admin("companies", {"companies": [{"id": str(600 + i), "properties": {"name": f"c{i}"}} for i in range(5)]})
    capi.admin("associations", [{"contactId": "104", "companyId": str(600 + i)} for i in range(5)])
    capi.admin("association_settings", {"page_size": 2})
    seen: list[int] = []
    after = None
    for _ in range(5):
        item = {"id": "104", **({"after": after} if after else {})}
        reply = capi.post("/crm/v4/associations/contacts/companies/batch/read", {"inputs": [item]})
        result = reply.json()["results"][0]
        seen += [t["toObjectId"] for t in result["to"]]
        after = (result.get("paging") or {}).get("next", {}).get("after")
        if after is None:
            break
    assert seen == [600, 601, 602, 603, 604]


def test_a_new_primary_takes_the_flag_and_a_renamed_label_keeps_type_1(capi: Api) -> None:
    assert capi.admin("associations", [{"contactId": "101", "companyId": "503", "primary": True}]).status_code == 200
    capi.admin("association_settings", {"primary_label": "Contact with Primary Company"})
    maria = read_associations(capi, [101]).json()["results"][0]
    primary = [t["toObjectId"] for t in maria["to"] if any(a["typeId"] == 1 for a in t["associationTypes"])]
    assert primary == [503]
    labels = {a["label"] for t in maria["to"] for a in t["associationTypes"] if a["typeId"] == 1}
    assert labels == {"Contact with Primary Company"}


def test_association_admin_checks_both_ends_and_more_than_100_ids_is_a_400(capi: Api) -> None:
    assert capi.admin("associations", [{"contactId": "101", "companyId": "9999"}]).status_code == 404
    assert read_associations(capi, list(range(1, 102))).status_code == 400


def test_the_snapshot_round_trips_companies_and_associations(capi: Api, clock: Any) -> None:
    dump = capi.admin("snapshot").json()
    assert [c["id"] for c in dump["companies"]] == ["501", "502", "503"]
    assert dump["associations"] == [
        {"contactId": "101", "companyId": "501", "primary": True},
        {"contactId": "101", "companyId": "503", "primary": False},
        {"contactId": "102", "companyId": "502", "primary": True},
    ]
    portal, problems = Portal.from_snapshot(dump, clock.ms)
    assert problems == []
    again = portal.snapshot()
    assert again["companies"] == dump["companies"] and again["associations"] == dump["associations"]
    parsed = parse_snapshot(dump)
    assert {c.id: c.properties["industry"] for c in parsed.companies} == {
        "501": "ENERGY",
        "502": "FINANCE",
        "503": "RETAIL",
    }


def test_a_deleted_company_keeps_its_associations_for_readers_to_skip(capi: Api) -> None:
    assert capi.sandbox.portal.snapshot()["companies"][0]["id"] == "501"
    gone = capi.session.delete(f"{capi.url}/__sandbox/companies", params={"id": "501"}, timeout=10)
    assert gone.status_code == 200
    maria = read_associations(capi, [101]).json()["results"][0]
    assert [t["toObjectId"] for t in maria["to"]] == [501, 503]
    read = capi.post("/crm/v3/objects/companies/batch/read", {"inputs": [{"id": "501"}, {"id": "503"}]}).json()
    assert [c["id"] for c in read["results"]] == ["503"]


def _digest(dump: dict[str, Any], keys: list[str]) -> str:
    return hashlib.sha256(json.dumps({k: dump[k] for k in keys}, sort_keys=True).encode()).hexdigest()


def test_generated_companies_leave_every_contact_and_event_byte_identical() -> None:
    plain, with_companies = generate_portal(1500, 4).snapshot(), generate_portal(1500, 4, companies=190).snapshot()
    keys = ["portal_id", "contacts", "forms", "form_submissions", "email_events", "lists", "properties"]
    assert _digest(plain, keys) == _digest(with_companies, keys)
    assert plain["companies"] == [] and len(with_companies["companies"]) == 190
    assert with_companies == generate_portal(1500, 4, companies=190).snapshot()  # deterministic


def test_generated_companies_carry_the_planted_account_signal() -> None:
    dump = generate_portal(4000, 2, companies=500).snapshot()
    companies = {c["id"]: c["properties"] for c in dump["companies"]}
    stages = {c["id"]: c["properties"].get("lifecyclestage") for c in dump["contacts"]}
    associated = {a["contactId"] for a in dump["associations"]}
    assert 0.8 < len(associated) / len(stages) < 0.9
    per_contact: dict[str, int] = {}
    for a in dump["associations"]:
        per_contact[a["contactId"]] = per_contact.get(a["contactId"], 0) + 1
    primaries = Counter(a["contactId"] for a in dump["associations"] if a["primary"])
    assert max(per_contact.values()) >= 3 and max(primaries.values()) == 1
    assert len(primaries) < len(per_contact)  # a few have no Primary label: the lowest id stands in

    def high_fit(props: dict[str, str]) -> bool:
        return props.get("industry") in ("ENERGY", "FINANCE") and int(props.get("numberofemployees") or 0) >= 1000

    rates = {True: [0, 0], False: [0, 0]}
    for a in dump["associations"]:
        if a["primary"]:
            bucket = rates[high_fit(companies[a["companyId"]])]
            bucket[0] += stages[a["contactId"]] in ("opportunity", "customer")
            bucket[1] += 1
    converted_high, converted_other = (rates[k][0] / rates[k][1] for k in (True, False))
    assert converted_high > 3 * converted_other


def test_the_fake_crm_serves_companies_as_the_adapter_does() -> None:
    from sync.core.model import PropertyUpdate
    from sync.errors import UnownedWriteError
    from sync.ports import CompanySource, CompanyWriter, PropertySpec
    from tests.fakes import FakeCrm, ManualClock

    crm = FakeCrm(company_portal(), ManualClock.at_ms(T0 + 1000))
    source: CompanySource = crm
    writer: CompanyWriter = crm
    assert [c.id for page in source.company_pages() for c in page.companies] == ["501", "502", "503"]
    assert [c.id for page in source.companies_changed_since(T0 + 20) for c in page.companies] == ["502", "503"]
    found, _ = source.company_associations(["101", "105"])
    assert sorted((a.company_id, a.primary) for a in found) == [("501", True), ("503", False)]
    with pytest.raises(UnownedWriteError):
        writer.update_companies([PropertyUpdate("501", {"ls_account_score": "1"})])
    writer.ensure_company_properties(
        "lead_scoring_sync", "Lead scoring", [PropertySpec("ls_account_score", "S", "number")]
    )
    outcome = writer.update_companies([PropertyUpdate("501", {"ls_account_score": "9"}), PropertyUpdate("9", {})])
    assert outcome.applied == ["501"] and [d.contact_id for d in outcome.dead] == ["9"]
    with pytest.raises(UnownedWriteError):
        writer.update_companies([PropertyUpdate("501", {"lifecyclestage": "customer"})])
