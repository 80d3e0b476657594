"""A run under a lease is fenced: it starts only on a current lease, sends no batch once the lease moved on (or
its local bound passed), and records nothing under a stale fence; it ends as lease_lost. On the in-memory fakes."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from structlog.testing import capture_logs

from sync.config import build_portal
from sync.core.model import PropertyUpdate
from sync.core.rules import compile_ruleset
from sync.pipeline import Cycle, Lease, Portal, read_properties
from sync.ports import Fence, WriteOutcome
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from tests.factories import example_data
from tests.fakes import FakeCrm, ManualClock, MemoryStore

CONTACTS = 250  # three batches
TTL = 30.0


@dataclass
class World:
    crm: FakeCrm
    store: MemoryStore
    clock: ManualClock  # the store's clock: when leases expire
    local: ManualClock  # this process's monotonic clock: the lease's local bound
    portal: Portal

    def lease(self, holder: str = "worker-a") -> Lease:
        fence = self.store.acquire_fence(self.portal.id, holder, TTL)
        assert fence is not None
        return Lease.taken(fence, TTL, self.local.monotonic(), self.local.monotonic)

    def take_over(self) -> Fence:
        """worker-b takes the portal once worker-a's lease has expired (in the store; the local bound is apart)."""
        self.clock.advance(TTL + 1)
        fence = self.store.acquire_fence(self.portal.id, "worker-b", TTL)
        assert fence is not None
        return fence

    def run(self, lease: Lease, after_batch: int | None = None, then: object = None) -> Cycle:
        def progress(done: int, total: int | None) -> None:
            if after_batch is not None and done == after_batch and callable(then):
                then()

        cycle = Cycle(self.portal, "full", stop=threading.Event(), progress=progress, lease=lease)
        cycle.run()
        return cycle

    def contacts_sent(self) -> int:
        return sum(len(cast(Sequence[PropertyUpdate], args[0])) for args in self.crm.calls_to("update_contacts"))

    def history_rows(self) -> int:
        pid = self.portal.id
        return sum(len(self.store.history(pid, cid)) for ids in self.store.iter_contact_ids(pid) for cid in ids)


@pytest.fixture
def world() -> World:
    clock = ManualClock.at_ms(DEFAULT_NOW_MS + 3_600_000)
    hubspot = generate_portal(CONTACTS, 7)
    loaded = build_portal(example_data(), Path("example.yaml"))
    rules = compile_ruleset(loaded.rules)
    crm = FakeCrm(hubspot, clock, read_properties(rules))
    store = MemoryStore(clock)
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=clock)
    return World(crm, store, clock, ManualClock(0.0), portal)


def test_a_run_on_a_current_lease_writes_and_ends_ok(world: World) -> None:
    summary = world.run(world.lease()).summary
    assert summary.status == "ok", summary.error
    assert world.contacts_sent() == summary.counts["written"] > 0


def test_a_run_whose_lease_moved_on_before_it_started_sends_nothing(world: World) -> None:
    lease = world.lease()
    world.take_over()
    with capture_logs() as logs:
        summary = world.run(lease).summary
    assert summary.status == "lease_lost" and "lease lost" in (summary.error or "")
    assert world.crm.calls == []  # not even the identity check
    assert world.store.last_runs(world.portal.id, 1)[0].status == "lease_lost"
    assert [e["event"] for e in logs if e["event"] == "lease_lost"] == ["lease_lost"]


def test_a_lease_taken_over_mid_run_stops_the_next_batch_before_it_is_sent(world: World) -> None:
    summary = world.run(world.lease(), after_batch=100, then=world.take_over).summary
    assert summary.status == "lease_lost"
    first_batch = summary.counts["written"]
    assert 0 < first_batch <= 100
    assert world.contacts_sent() == first_batch  # the second batch was never sent
    assert world.history_rows() == first_batch  # nor recorded
    assert world.store.pending_writes(world.portal.id) == []  # nor planned: its record was fenced too


def test_a_pause_past_the_local_bound_sends_nothing_though_the_store_has_not_moved_on(world: World) -> None:
    """A replica frozen past its lease does not wait to be told: its own clock says the lease cannot be trusted."""
    summary = world.run(world.lease(), after_batch=100, then=lambda: world.local.advance(TTL)).summary
    assert summary.status == "lease_lost"
    assert world.contacts_sent() == summary.counts["written"] <= 100


class TakenOverWhileSending:
    """The CRM writer, with another replica taking the lease while the second batch is on the wire."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.batches = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.world.crm, name)

    def update_contacts(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        self.batches += 1
        outcome = self.world.crm.update_contacts(updates)
        if self.batches == 2:
            self.world.take_over()
        return outcome


def test_a_batch_sent_as_the_lease_moved_on_is_left_pending_for_the_new_holder(world: World) -> None:
    writer = TakenOverWhileSending(world)
    world.portal.writer = writer  # type: ignore[assignment]
    summary = world.run(world.lease()).summary
    assert summary.status == "lease_lost" and writer.batches == 2
    # The second batch reached HubSpot, but its completion was fenced: no history, still in the outbox, where
    # the new holder finds it and sends it again (values are absolute, so that is harmless).
    assert world.history_rows() == summary.counts["written"] - len(world.store.pending_writes(world.portal.id))
    assert world.store.pending_writes(world.portal.id)
