"""The company and association adapters against the sandbox, over loopback HTTP with the real SDK."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests

from sync.core.model import PropertyUpdate
from sync.errors import UnownedWriteError
from sync.hubspot.associations import Associations
from sync.hubspot.client import HubSpotClient, Response
from sync.hubspot.companies import Companies
from sync.hubspot.portal import HubSpotPortal
from sync.ports import PropertySpec
from sync.sandbox import Portal
from sync.sandbox.generator import generate_portal
from tests.hubspot.test_adapter_sandbox import connected, stats

T0 = 1_790_000_000_000
OWNED = [
    PropertySpec("ls_account_score", "Account score", "number"),
    PropertySpec("ls_account_grade", "Account grade", "enumeration", ("A1", "B2", "C3")),
]


def portal_with(companies: int, contacts: int = 0, associations: list[tuple[int, int, bool]] | None = None) -> Portal:
    portal = Portal(12345678, created_ms=T0)
    portal.bulk_load([(c, {"email": f"c{c}@x.example"}, T0, T0) for c in range(1, contacts + 1)])
    rows = [(1000 + i, {"name": f"co{i}", "industry": "ENERGY"}, T0, T0 + i) for i in range(companies)]
    portal.bulk_load_companies(rows, associations or [])
    return portal


def calls(client: HubSpotClient, endpoint: str) -> int:
    return sum(n for (name, _), n in client.calls.items() if name == endpoint)


def test_company_pages_read_every_company_once_100_a_call() -> None:
    with connected(portal_with(250)) as (_, client):
        seen = Counter(c.id for page in Companies(client, ["industry"]).pages() for c in page.companies)
        assert calls(client, "companies.list") == 3
    assert len(seen) == 250 and set(seen.values()) == {1}


def test_companies_changed_since_passes_the_10k_cap_and_a_timestamp_shared_by_thousands() -> None:
    portal = Portal(12345678, created_ms=T0)
    rows = [(1000 + i, {"name": f"co{i}"}, T0, T0 + (5_000 if i < 10_300 else i)) for i in range(12_000)]
    portal.bulk_load_companies(rows, [])
    with connected(portal) as (_, client):
        pages = list(Companies(client, []).changed_since(T0))
    seen = Counter(c.id for page in pages for c in page.companies)
    assert len(seen) == 12_000 and set(seen.values()) == {1}
    assert max(p.max_modified_ms or 0 for p in pages) == T0 + 11_999


def test_a_207_dead_letters_the_unknown_company_and_applies_the_rest() -> None:
    with connected(portal_with(3)) as (sb, client):
        hub = HubSpotPortal(client, [])
        hub.ensure_company_properties("lead_scoring_sync", "Lead scoring", OWNED)
        outcome = hub.update_companies(
            [PropertyUpdate("1000", {"ls_account_score": "70"}), PropertyUpdate("4242", {"ls_account_score": "5"})]
        )
        assert sb.portal.contact_properties("1000", "companies")["ls_account_score"] == "70"  # type: ignore[index]
    assert outcome.applied == ["1000"]
    assert [(d.contact_id, d.status) for d in outcome.dead] == [("4242", 404)]


def test_a_whole_batch_400_is_split_until_the_bad_company_stands_alone() -> None:
    with connected(portal_with(8)) as (sb, client):
        hub = HubSpotPortal(client, [])
        hub.ensure_company_properties("lead_scoring_sync", "Lead scoring", OWNED)
        updates = [PropertyUpdate(str(1000 + i), {"ls_account_grade": "A1"}) for i in range(8)]
        updates[5] = PropertyUpdate("1005", {"ls_account_grade": "Z9"})  # not an option: the batch fails whole
        outcome = hub.update_companies(updates)
        written = {w.contact_id for w in sb.portal.write_log(0, "companies")}
    assert sorted(outcome.applied) == [str(1000 + i) for i in range(8) if i != 5] and written == set(outcome.applied)
    assert [d.contact_id for d in outcome.dead] == ["1005"] and "Z9" in outcome.dead[0].reason
    assert calls(client, "companies.batch_update") > 2  # the first 400, then the halves


def test_company_writes_outside_the_owned_set_are_refused_before_anything_is_sent() -> None:
    with connected(portal_with(2)) as (sb, client):
        hub = HubSpotPortal(client, [])
        with pytest.raises(UnownedWriteError, match="none ensured yet"):
            hub.update_companies([PropertyUpdate("1000", {"ls_account_score": "1"})])
        hub.ensure_company_properties("lead_scoring_sync", "Lead scoring", OWNED)
        for foreign in ({"name": "Renamed"}, {"lifecyclestage": "customer"}):
            with pytest.raises(UnownedWriteError):
                hub.update_companies([PropertyUpdate("1000", {"ls_account_score": "1", **foreign})])
        assert calls(client, "companies.batch_update") == 0 and sb.portal.write_log(0, "companies") == []


def test_ensure_company_properties_creates_them_on_companies_only_and_is_idempotent() -> None:
    with connected(portal_with(1)) as (sb, client):
        hub = HubSpotPortal(client, [])
        hub.ensure_company_properties("lead_scoring_sync", "Lead scoring", OWNED)
        hub.ensure_company_properties("lead_scoring_sync", "Lead scoring", OWNED)
        defs = hub.company_property_definitions()
        assert defs["ls_account_grade"].options == ("A1", "B2", "C3")
        assert defs["ls_account_score"].group == "lead_scoring_sync"
        assert sb.portal.property_def("ls_account_score") is None  # not a contact property


def test_rate_limited_company_calls_are_retried_to_the_same_result() -> None:
    with connected(portal_with(1000), faults="429=0.5") as (sb, client):
        seen = Counter(c.id for page in Companies(client, []).pages() for c in page.companies)
        limited = stats(sb)["faults"].get("429", 0)
    assert len(seen) == 1000 and set(seen.values()) == {1}
    assert limited > 0 and client.calls[("companies.list", 429)] == limited
    assert client.calls[("companies.list", 200)] == 10


def test_250_contacts_associations_take_3_calls() -> None:
    links = [(c, 1000 + c % 20, True) for c in range(1, 251)] + [(c, 1000 + (c + 1) % 20, False) for c in range(1, 40)]
    with connected(portal_with(20, 260, links)) as (_, client):
        found, problems = Associations(client).of_contacts([str(c) for c in range(1, 251)])
        assert calls(client, "associations.contacts_companies") == 3
    assert problems == []
    assert len(found) == 250 + 39
    assert sum(a.primary for a in found) == 250


def test_a_contact_with_many_companies_is_followed_page_by_page() -> None:
    links = [(1, 1000 + i, i == 7) for i in range(12)] + [(2, 1000, True)]
    with connected(portal_with(12, 3, links)) as (sb, client):
        requests.post(f"{sb.url}/__sandbox/association_settings", json={"page_size": 5}, timeout=10)
        found, _ = Associations(client).of_contacts(["1", "2", "3"])
        assert calls(client, "associations.contacts_companies") == 3  # then 2 more pages for contact 1
    mine = sorted((a.company_id, a.primary) for a in found if a.contact_id == "1")
    assert [c for c, _ in mine] == [str(1000 + i) for i in range(12)]
    assert [c for c, p in mine if p] == ["1007"]


def test_primary_is_type_1_whatever_the_label_and_a_contact_without_companies_has_none() -> None:
    links = [(1, 1000, False), (1, 1001, True), (2, 1002, True)]
    with connected(portal_with(3, 3, links)) as (sb, client):
        requests.post(f"{sb.url}/__sandbox/association_settings", json={"primary_label": "Primary Company"}, timeout=10)
        hub = HubSpotPortal(client, [])
        found, problems = hub.company_associations(["1", "2", "3"])
        reverse, _ = hub.company_contacts(["1001", "1002"])
    assert sorted((a.contact_id, a.company_id, a.primary) for a in found) == [
        ("1", "1000", False),
        ("1", "1001", True),
        ("2", "1002", True),
    ]
    assert problems == []  # contact 3 has no company: no association, no problem
    assert sorted((a.contact_id, a.company_id, a.primary) for a in reverse) == [
        ("1", "1001", True),
        ("2", "1002", True),
    ]


def test_an_association_to_a_deleted_company_is_kept_and_the_company_read_skips_it() -> None:
    with connected(portal_with(2, 1, [(1, 1000, True), (1, 1001, False)])) as (sb, client):
        requests.delete(f"{sb.url}/__sandbox/companies", params={"id": "1000"}, timeout=10)
        hub = HubSpotPortal(client, [], company_properties=["industry"])
        found, _ = hub.company_associations(["1"])
        companies = hub.read_companies([a.company_id for a in found])
    assert sorted(a.company_id for a in found) == ["1000", "1001"]
    assert [(c.id, c.properties["industry"]) for c in companies] == [("1001", "ENERGY")]


def test_a_generated_portal_with_companies_reads_back_as_its_snapshot_says() -> None:
    portal = generate_portal(600, 9, companies=75)
    dump = portal.snapshot()
    with connected(portal) as (_, client):
        hub = HubSpotPortal(client, [], company_properties=["industry", "numberofemployees"])
        companies = [c for page in hub.company_pages() for c in page.companies]
        found, _ = hub.company_associations([c["id"] for c in dump["contacts"]])
        assert calls(client, "associations.contacts_companies") == 6
    assert len(companies) == 75
    assert sorted((a.contact_id, a.company_id, a.primary) for a in found) == sorted(
        (a["contactId"], a["companyId"], a["primary"]) for a in dump["associations"]
    )


# --- the association reader on answers the sandbox does not give -----------------------------------


class CannedClient:
    """Hands the association reader one canned body per call."""

    def __init__(self, *bodies: Any) -> None:
        self.bodies = list(bodies)
        self.sent: list[Any] = []
        self.associations_batch = self

    def get_page(self, *_: Any, **__: Any) -> None:  # the method object handed to sdk(); never called directly
        raise AssertionError

    def sdk(self, endpoint: str, method: Any, *args: Any, **kwargs: Any) -> Response:
        self.sent.append(kwargs["batch_input_public_fetch_associations_batch_request"].inputs)
        return Response(207, {}, self.bodies.pop(0))


def test_odd_answers_primary_only_by_hubspot_type_1_and_real_errors_reported() -> None:
    body = {
        "results": [
            {
                "from": {"id": "1"},
                "to": [
                    {"toObjectId": "10", "associationTypes": [{"category": "USER_DEFINED", "typeId": 1, "label": "x"}]},
                    {"toObjectId": 11, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": "1"}]},
                    {"associationTypes": []},
                ],
            },
            {"from": {}, "to": [{"toObjectId": 12, "associationTypes": []}]},
        ],
        "errors": [
            {"subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND", "context": {"fromObjectId": ["2"]}},
            {"category": "INTERNAL_ERROR", "message": "boom", "context": {"fromObjectId": ["3"]}},
        ],
    }
    client = CannedClient(body)
    found, problems = Associations(client).of_contacts(["1", "2", "3", "1"])  # type: ignore[arg-type]
    assert client.sent == [[{"id": "1"}, {"id": "2"}, {"id": "3"}]]  # each id once
    assert sorted((a.company_id, a.primary) for a in found) == [("10", False), ("11", True)]
    assert problems == ["contacts associations: a result without from.id; skipped", "associations of 3: boom"]
