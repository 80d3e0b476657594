"""The cycle's account pass on the in-memory fakes: companies pulled and rescored when they or their contacts
change, diff-only company writes through the outbox, and the company write gate (tests/e2e checks the same over
HTTP against the offline `score`). The portal is docs/SCORING.md section 6's cases A1-A5 (tests/data/accounts)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from sync.config import load_portal
from sync.core.accounts import compile_accounts
from sync.core.model import CompanyAssociation, PropertyUpdate
from sync.core.rules import compile_ruleset
from sync.errors import UnownedWriteError
from sync.pipeline import BATCH, Cycle, Kind, Portal, RunSummary, check_company_writes, read_properties
from sync.ports import PendingWrite
from sync.sandbox import Portal as SandboxPortal
from tests.fakes import FakeCrm, ManualClock, MemoryStore

DATA = Path(__file__).parent / "data" / "accounts"
T0_MS = 1_790_000_000_000
MINUTE_MS = 60_000
SCORE, GRADE, REASONS = "ls_account_score", "ls_account_grade", "ls_account_reasons"


@dataclass
class World:
    hubspot: SandboxPortal
    crm: FakeCrm
    store: MemoryStore
    clock: ManualClock
    portal: Portal

    def run(self, kind: Kind = "incremental") -> RunSummary:
        self.clock.advance(600)
        summary = Cycle(self.portal, kind).run()
        assert summary.status == "ok", summary.error
        return summary

    def company(self, company_id: str) -> dict[str, str]:
        props = self.hubspot.contact_properties(company_id, "companies")
        assert props is not None
        return props

    def contact(self, contact_id: str) -> dict[str, str]:
        props = self.hubspot.contact_properties(contact_id)
        assert props is not None
        return props

    def edit(self, object_type: str, object_id: str, **properties: str) -> None:
        """Someone edits the record in HubSpot now (its last modified date)."""
        self.hubspot.upsert_contacts([{"id": object_id, "properties": properties}], self.clock.ms, object_type)

    def company_writes(self) -> list[list[PropertyUpdate]]:
        return [list(args[0]) for args in self.crm.calls_to("update_companies")]  # type: ignore[call-overload]


@pytest.fixture
def world() -> World:
    clock = ManualClock.at_ms(T0_MS)
    hubspot, problems = SandboxPortal.from_snapshot(json.loads((DATA / "snapshot.json").read_text()), T0_MS)
    assert problems  # the association to company 999, which the snapshot lacks
    loaded = load_portal(DATA / "accounts.yaml")
    rules = compile_ruleset(loaded.rules)
    assert loaded.accounts is not None
    crm = FakeCrm(hubspot, clock, read_properties(rules))
    store = MemoryStore(clock)
    portal = Portal(
        config=loaded.config,
        rules=rules,
        source=crm,
        writer=crm,
        store=store,
        clock=clock,
        accounts=compile_accounts(loaded.accounts, rules),
        companies=crm,
        company_writer=crm,
    )
    return World(hubspot, crm, store, clock, portal)


def test_a_full_sync_writes_every_companys_account_score_as_the_cases_say(world: World) -> None:
    summary = world.run("full")
    assert (world.company("101")[SCORE], world.company("101")[GRADE]) == ("100", "A1")  # A1
    assert (world.company("102")[SCORE], world.company("102")[GRADE]) == ("78", "B1")  # A2
    assert (world.company("103")[SCORE], world.company("103")[GRADE]) == ("10", "C3")  # A3: excluded contact
    assert summary.counts["companies_scored"] == 5 and summary.counts["companies_written"] == 5
    assert all(len(batch) <= BATCH for batch in world.company_writes())
    assert "+55 contacts' interest (sum)" in world.company("101")[REASONS]
    history = world.store.company_history(world.portal.id, "101")
    assert [(h.old_score, h.new_score, h.grade) for h in history] == [(None, 100, "A1")]


def test_contact_rules_read_the_primary_companys_properties(world: World) -> None:
    world.run("full")
    # Contact 1: 1,500 employees (> 500: 10) and ENERGY (10), from its primary company 101.
    assert world.contact("1")["ls_fit"] == "20"
    world.edit("companies", "101", industry="FINANCE")
    world.run()
    assert world.contact("1")["ls_fit"] == "13"  # the company changed: its contacts were rescored


def test_a_second_run_writes_nothing(world: World) -> None:
    world.run("full")
    before = len(world.company_writes())
    again = world.run()
    assert len(world.company_writes()) == before
    assert again.counts.get("companies_written", 0) == 0


def test_a_company_is_rescored_when_one_of_its_contacts_changes(world: World) -> None:
    world.run("full")
    world.run()  # reads back what the full run wrote (our own writes bump the modified dates), writes nothing
    world.edit("contacts", "4", planted_interest="30")
    summary = world.run()
    assert summary.counts["companies_scored"] == 1 and summary.counts["companies_written"] == 1
    # A2 with one contact at 30: engagement 30 + 16 + 16 + 15 = 77, fit 15.
    assert (world.company("102")[SCORE], world.company("102")[GRADE]) == ("92", "B1")
    assert [u.contact_id for u in world.company_writes()[-1]] == ["102"]


def test_a_company_is_rescored_when_it_changes(world: World) -> None:
    world.run("full")
    world.run()
    world.edit("companies", "103", industry="ENERGY")
    summary = world.run()
    assert summary.counts["companies_scored"] == 1 and summary.counts["companies_written"] == 1
    assert (world.company("103")[SCORE], world.company("103")[GRADE]) == ("20", "B3")


def test_an_association_to_a_company_that_no_longer_exists_is_logged_and_skipped(world: World) -> None:
    read = world.crm.company_associations

    def with_a_deleted_company(contact_ids: object) -> tuple[list[CompanyAssociation], list[str]]:
        found, problems = read(contact_ids)  # type: ignore[arg-type]
        return [*found, CompanyAssociation("1", "999", primary=True)], problems

    world.crm.company_associations = with_a_deleted_company  # type: ignore[method-assign]
    with capture_logs() as logs:
        summary = world.run("full")
    skipped = [e for e in logs if e["event"] == "association_skipped"]
    assert [(e["contact_id"], e["company_id"]) for e in skipped] == [("1", "999")]
    assert summary.counts["company_problems"] == 2  # and company 104's size, which does not parse
    assert world.contact("1")["ls_fit"] == "20"  # its primary is still 101: the deleted one was never stored
    assert world.company("101")[SCORE] == "100"


def test_company_writes_recorded_but_never_completed_are_finished_by_the_next_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = world.store
    complete = store.complete_company_writes

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(store, "complete_company_writes", crash)
    with pytest.raises(RuntimeError):
        Cycle(world.portal, "full").run()
    pending = store.pending_company_writes(world.portal.id)
    assert sorted(p.contact_id for p in pending) == ["101", "102", "103", "104", "105"]
    monkeypatch.setattr(store, "complete_company_writes", complete)
    sent_before = len(world.company_writes())
    summary = world.run()
    resent = world.company_writes()[sent_before]
    assert sorted(u.contact_id for u in resent) == sorted(p.contact_id for p in pending)
    assert store.pending_company_writes(world.portal.id) == []
    assert summary.counts["companies_written"] == 5  # the resent ones; the rescore found nothing more to write
    assert len(world.company_writes()) == sent_before + 1
    for company_id in ("101", "102", "103"):
        assert len(store.company_history(world.portal.id, company_id)) == 1


def test_the_gate_refuses_a_company_property_leadsync_does_not_own(world: World) -> None:
    world.run("full")
    for foreign in ({"name": "Acme"}, {"lifecyclestage": "customer"}, {SCORE: "5", "industry": "ENERGY"}):
        with pytest.raises(UnownedWriteError):
            check_company_writes(world.portal, [PropertyUpdate("101", foreign)])
    check_company_writes(world.portal, [PropertyUpdate("101", {SCORE: "5"})])


def test_the_gate_refuses_before_the_portals_identity_was_checked(world: World) -> None:
    with pytest.raises(UnownedWriteError, match="before the token's own portal was checked"):
        check_company_writes(world.portal, [PropertyUpdate("101", {SCORE: "5"})])


def test_a_pending_company_write_of_a_property_no_longer_owned_is_not_sent(world: World) -> None:
    world.store.record_company_pending(world.portal.id, "old", [PendingWrite("101", {"ls_old_score": "5"}, None, None)])
    summary = world.run("full")
    assert all("ls_old_score" not in u.properties for batch in world.company_writes() for u in batch)
    assert world.store.pending_company_writes(world.portal.id) == []
    assert [d.contact_id for d in world.store.company_dead_letters(world.portal.id)] == ["101"]
    assert summary.counts["company_problems"] == 2  # and company 104's size, which does not parse


def test_associations_are_read_a_hundred_contacts_a_call(world: World) -> None:
    world.run("full")
    calls = world.crm.calls_to("company_associations")
    assert calls and all(len(args[0]) <= BATCH for args in calls)  # type: ignore[arg-type]
    assert not world.crm.calls_to("company_contacts")  # never one call per company either


def test_a_company_with_more_contacts_than_a_batch_is_rolled_up_whole(world: World) -> None:
    rows = [(1000 + i, {"email": f"p{i}@big.example", "planted_interest": "5"}, T0_MS, T0_MS) for i in range(250)]
    world.hubspot.bulk_load(rows)
    world.hubspot.bulk_load_companies([(900, {"name": "Big", "industry": "ENERGY"}, T0_MS, T0_MS)], [])
    world.hubspot.associate([{"contactId": str(1000 + i), "companyId": "900"} for i in range(250)])
    world.run("full")
    history = world.store.company_history(world.portal.id, "900")
    # Every contact counted, streamed 100 at a time: 250 x 5 = 1,250 rolled up (capped at 100, clamped to 100).
    assert (history[-1].breakdown["contacts"], history[-1].breakdown["rollup"]) == (250, 1250)
    assert world.company("900")[SCORE] == "100"


def test_a_company_number_that_does_not_parse_is_logged_and_read_as_missing(world: World) -> None:
    with capture_logs() as logs:
        summary = world.run("full")
    unreadable = [e["problem"] for e in logs if e["event"] == "company_value_unreadable"]
    assert unreadable == ["company 104: numberofemployees 'about 2k' is not a number; rules read it as missing"]
    assert summary.counts["company_problems"] == 1
    assert world.company("104")[SCORE] == "20"  # ENERGY's 20, no size band; the rest of the portal goes on
    assert summary.counts["companies_written"] == 5
