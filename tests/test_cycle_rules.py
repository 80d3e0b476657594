"""The cycle's rules on the in-memory fakes, in milliseconds: backfill resume, the lookback of incremental pulls,
event-only rescoring, the outbox and diff-only writes (tests/e2e runs the same rules over HTTP and SQLite)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sync.config import build_portal
from sync.core.model import PropertyUpdate
from sync.core.rules import compile_ruleset
from sync.pipeline import (
    BACKFILL_CURSOR,
    BACKFILL_DONE,
    CONTACTS_CURSOR,
    EVENTS_CURSOR,
    EVENTS_LOOKBACK_MS,
    LOOKBACK_MS,
    Cycle,
    Kind,
    Portal,
    read_properties,
)
from sync.sandbox import Portal as SandboxPortal
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from tests.factories import example_data
from tests.fakes import FakeCrm, ManualClock, MemoryStore

CONTACTS = 250  # three pages of the list endpoint
T0_MS = DEFAULT_NOW_MS + 3_600_000  # an hour after the generator's "now": every generated event is in the past
MINUTE_S = 60


@dataclass
class World:
    hubspot: SandboxPortal
    crm: FakeCrm
    store: MemoryStore
    clock: ManualClock
    portal: Portal

    @property
    def pid(self) -> int:
        return self.portal.id

    def run(self, kind: Kind = "incremental", stop_after: int | None = None) -> Cycle:
        stop = threading.Event()

        def progress(done: int, total: int | None) -> None:
            if stop_after is not None and done >= stop_after:
                stop.set()

        cycle = Cycle(self.portal, kind, stop=stop, progress=progress)
        cycle.run()
        return cycle

    def score_of(self, contact_id: str) -> str:
        props = self.hubspot.contact_properties(contact_id)
        assert props is not None
        return props.get("ls_score", "")

    def touch(self, contact_id: str, at_ms: int, **properties: str) -> None:
        """Someone edits the contact in HubSpot at `at_ms` (its lastmodifieddate)."""
        self.hubspot.upsert_contacts([{"id": contact_id, "properties": properties}], at_ms)


@pytest.fixture
def world() -> World:
    clock = ManualClock.at_ms(T0_MS)
    hubspot = generate_portal(CONTACTS, 7)
    loaded = build_portal(example_data(), Path("example.yaml"))
    rules = compile_ruleset(loaded.rules)
    crm = FakeCrm(hubspot, clock, read_properties(rules))
    store = MemoryStore(clock)
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=clock)
    return World(hubspot, crm, store, clock, portal)


# -- backfill --


def test_an_interrupted_backfill_resumes_from_its_cursor(world: World) -> None:
    first = world.run("full", stop_after=200).summary
    assert (first.status, first.counts["pulled"]) == ("interrupted", 200)
    cursor = world.store.get_cursor(world.pid, BACKFILL_CURSOR)
    assert cursor not in (None, BACKFILL_DONE)

    world.clock.advance(10 * MINUTE_S)
    second = world.run().summary  # the first incremental run finishes the backfill
    assert second.status == "ok", second.error
    assert world.crm.calls_to("contact_pages") == [(None,), (cursor,)]
    assert second.counts["pulled"] == CONTACTS - 200
    assert world.store.get_cursor(world.pid, BACKFILL_CURSOR) == BACKFILL_DONE
    # Increments start from when the backfill began, not from when it ended.
    assert world.store.get_cursor(world.pid, CONTACTS_CURSOR) == str(T0_MS - LOOKBACK_MS)


# -- incremental pulls --


def test_an_incremental_pull_rereads_the_lookback_before_its_cursor(world: World) -> None:
    world.run("full")
    cursor = int(world.store.get_cursor(world.pid, CONTACTS_CURSOR) or 0)
    events_cursor = int(world.store.get_cursor(world.pid, EVENTS_CURSOR) or 0)
    late, old = _scored(world, 2)
    # Both edits were made before the cursor but indexed late: the one within the lookback is read again.
    world.touch(late, cursor - LOOKBACK_MS + 1_000, jobtitle="Edited within the lookback")
    world.touch(old, cursor - LOOKBACK_MS - 1_000, jobtitle="Edited before the lookback")
    world.clock.advance(10 * MINUTE_S)

    summary = world.run().summary
    assert summary.status == "ok", summary.error
    assert world.crm.calls_to("contacts_changed_since")[-1] == (cursor - LOOKBACK_MS, world.clock.ms)
    assert world.crm.calls_to("email_events")[-1] == (events_cursor - EVENTS_LOOKBACK_MS, world.clock.ms)
    titles = {c.id: c.properties.get("jobtitle") for c in world.store.get_contacts(world.pid, [late, old])}
    assert titles[late] == "Edited within the lookback"
    assert titles[old] != "Edited before the lookback"
    # Everything modified before this run's start, less the lookback, has been read: the cursor moves to the
    # start, so the next run re-reads one lookback before it and no more.
    assert world.store.get_cursor(world.pid, CONTACTS_CURSOR) == str(world.clock.ms)


def test_an_idle_portal_stops_rereading_its_own_writes_after_one_lookback(world: World) -> None:
    world.run("full")  # writes every scored contact now: HubSpot marks them modified
    pulled = []
    for _ in range(3):
        world.clock.advance(LOOKBACK_MS // 2000 + 1)
        summary = world.run().summary
        assert summary.status == "ok", summary.error
        pulled.append(summary.counts.get("pulled", 0))
    # The write-back churn is read again while it is within one lookback of a run's start, then no more.
    assert pulled[0] > 0
    assert pulled[-1] == 0


def test_a_contact_with_a_new_event_and_no_property_change_is_rescored(world: World) -> None:
    world.run("full")
    world.clock.advance(10 * MINUTE_S)
    world.run()  # past the overlap with the full run's own writes
    (quiet,) = _scored(world, 1, low_score=True)
    before = world.score_of(quiet)
    world.clock.advance(10 * MINUTE_S)
    email = world.store.get_contacts(world.pid, [quiet])[0].email
    # An email click changes no contact property (a form submission would: HubSpot's conversion properties).
    click = {"id": "click-1", "type": "CLICK", "recipient": email, "created": world.clock.ms - 60_000,
             "emailCampaignId": 1, "url": "https://acme.example/pricing"}  # fmt: skip
    world.hubspot.add_email_events([click], world.clock.ms, _ids())

    cycle = world.run()
    assert cycle.summary.status == "ok", cycle.summary.error
    assert cycle.summary.counts.get("pulled", 0) == 0  # not one contact changed in HubSpot
    assert int(world.score_of(quiet)) > int(before)
    assert world.store.history(world.pid, quiet)[-1].run_id == cycle.run_id


# -- the outbox and diff-only writes --


def test_a_crashed_runs_pending_writes_are_sent_before_new_work_and_never_again(world: World) -> None:
    world.crm.fail["update_contacts"] = RuntimeError("the process died while sending")
    with pytest.raises(RuntimeError):
        world.run("full")
    pending = world.store.pending_writes(world.pid)
    assert pending  # the first batch was recorded, then never sent
    del world.crm.fail["update_contacts"]
    world.crm.calls.clear()
    world.crm.sent.clear()
    world.clock.advance(MINUTE_S)

    resumed = world.run("full").summary
    assert resumed.status == "ok", resumed.error
    names = [name for name, _ in world.crm.calls]
    assert names.index("update_contacts") < names.index("contact_pages")
    assert world.crm.sent[0] == [PropertyUpdate(w.contact_id, w.properties) for w in pending if w.properties]
    later = {item.contact_id for batch in world.crm.sent[1:] for item in batch}
    assert later.isdisjoint(w.contact_id for w in pending)  # recorded as written: not planned again
    assert world.store.pending_writes(world.pid) == []


def test_a_second_run_writes_only_what_differs(world: World) -> None:
    first = world.run("full").summary
    assert first.counts["written"] > 0
    world.crm.sent.clear()
    world.clock.advance(MINUTE_S)
    second = world.run().summary
    assert second.status == "ok", second.error
    assert second.counts["pulled"] > 0  # the contacts the first run wrote, read back (their lastmodifieddate moved)
    assert second.counts.get("written", 0) == 0
    assert not any(world.crm.sent)


def _scored(world: World, n: int, low_score: bool = False) -> list[str]:
    """Scored contacts with an email (with a low score, when asked, so that an event can raise it)."""
    found = []
    for ids in world.store.iter_contact_ids(world.pid):
        for contact in world.store.get_contacts(world.pid, ids):
            score = world.score_of(contact.id)
            if contact.email and score and (not low_score or 0 < int(score) < 20):
                found.append(contact.id)
    assert len(found) >= n
    return found[:n]


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"added-{next(counter)}"
