"""The poll for new form submissions on the in-memory fakes: which forms it reads, when it sweeps them all, and
where its cursor goes (tests/e2e/test_form_poll.py counts its calls through the real SDK)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from sync.config import build_portal
from sync.core.rules import compile_ruleset
from sync.errors import ConfigError
from sync.pipeline import (
    CONVERSIONS_CURSOR,
    POLL_OVERLAP_MS,
    UNREAD_CONVERSION,
    UNREAD_SUBMISSIONS,
    Cycle,
    Kind,
    Portal,
    read_properties,
)
from sync.pipeline.events import forms_named
from sync.sandbox import Portal as SandboxPortal
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from tests.factories import example_data
from tests.fakes import FakeCrm, ManualClock, MemoryStore

T0_MS = DEFAULT_NOW_MS + 3_600_000
MINUTE_S = 60


@dataclass
class World:
    hubspot: SandboxPortal
    crm: FakeCrm
    store: MemoryStore
    clock: ManualClock
    portal: Portal
    forms: dict[str, str]  # name -> id, of every type (the fake reads hubspot forms only)

    def run(self, kind: Kind = "incremental") -> Cycle:
        self.crm.calls.clear()
        cycle = Cycle(self.portal, kind)
        cycle.run()
        assert cycle.summary.status == "ok", cycle.summary.error
        return cycle

    def forms_read(self) -> list[str]:
        return sorted(str(args[0]) for args in self.crm.calls_to("form_submissions"))

    def submit(self, cid: str, form: str, at_ms: int) -> None:
        email = self.store.get_contacts(self.portal.id, [cid])[0].email
        sub = {"formId": self.forms[form], "submittedAt": at_ms, "values": [{"name": "email", "value": email}]}
        self.hubspot.add_submissions([sub], self.clock.ms, lambda: f"conv-{next(_ids)}")

    def polled(self) -> int:
        return int(self.store.get_cursor(self.portal.id, CONVERSIONS_CURSOR) or 0)


_ids = itertools.count()


@pytest.fixture
def world() -> World:
    clock = ManualClock.at_ms(T0_MS)
    hubspot = generate_portal(60, 7)
    loaded = build_portal(example_data(), Path("example.yaml"))
    rules = compile_ruleset(loaded.rules)
    crm = FakeCrm(hubspot, clock, read_properties(rules))
    store = MemoryStore(clock)
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=clock)
    every_type = ("hubspot", "flow", "captured", "blog_comment")  # the fake reads hubspot forms only
    forms = {str(f["name"]): str(f["id"]) for f in hubspot.forms(100, None, every_type)["results"]}
    world = World(hubspot, crm, store, clock, portal, forms)
    world.run("full")
    clock.advance(10 * MINUTE_S)
    return world


def read_forms(world: World) -> list[str]:
    return sorted(str(f["id"]) for f in world.hubspot.forms(100, None)["results"])


def a_contact(world: World) -> str:
    for ids in world.store.iter_contact_ids(world.portal.id):
        for contact in world.store.get_contacts(world.portal.id, ids):
            if contact.email:
                return contact.id
    raise AssertionError("no contact with an email")


def test_the_first_run_and_full_runs_sweep_every_form_and_start_the_poll(world: World) -> None:
    assert world.polled() == T0_MS  # the full run of the fixture swept and started the poll
    world.run("full")
    assert world.forms_read() == read_forms(world)
    assert world.polled() == world.clock.ms


def test_the_rescore_sweeps_every_form(world: World) -> None:
    world.run("rescore")
    assert world.forms_read() == read_forms(world)


def test_an_idle_poll_lists_no_form_and_reads_none(world: World) -> None:
    world.run()
    world.clock.advance(10 * MINUTE_S)
    polled = world.polled()
    world.run()
    assert world.crm.calls_to("contacts_converted_since") == [(polled - POLL_OVERLAP_MS,)]
    assert world.crm.calls_to("forms") == [] and world.forms_read() == []
    assert world.polled() == world.clock.ms


def test_a_poll_reads_only_the_form_submitted_since_the_overlap(world: World) -> None:
    cid = a_contact(world)
    polled = world.polled()
    world.submit(cid, "Energy ebook", world.clock.ms - 1000)
    cycle = world.run()
    assert world.forms_read() == [world.forms["Energy ebook"]]
    assert world.crm.calls_to("form_submissions")[0][2] == polled - POLL_OVERLAP_MS
    assert cycle.summary.counts["events_new"] == 1 and "form_sweeps" not in cycle.summary.counts


def test_two_forms_between_polls_show_only_the_latest_and_the_count_makes_the_poll_sweep_once(world: World) -> None:
    cid = a_contact(world)
    world.submit(cid, "Energy ebook", world.clock.ms - 2000)
    world.submit(cid, "Demo request", world.clock.ms - 1000)  # recent_conversion_event_name says only this one
    first = world.run()
    assert first.summary.counts["events_new"] == 2  # the ebook too: HubSpot counts one more than was read
    assert first.summary.counts["form_sweeps"] == 1 and world.forms_read() == read_forms(world)

    world.clock.advance(MINUTE_S)  # the same conversion is seen again within the overlap: explained now
    second = world.run()
    assert "form_sweeps" not in second.summary.counts
    assert world.forms_read() == [world.forms["Demo request"]]


def test_a_conversion_no_form_is_named_for_sweeps_once(world: World) -> None:
    cid = a_contact(world)
    world.hubspot.upsert_contacts(
        [
            {
                "id": cid,
                "properties": {"recent_conversion_date": str(world.clock.ms), "recent_conversion_event_name": "Chat"},
            }
        ],
        world.clock.ms,
    )
    first = world.run()
    assert first.summary.counts["form_sweeps"] == 1
    world.clock.advance(MINUTE_S)
    second = world.run()
    assert "form_sweeps" not in second.summary.counts and world.forms_read() == []


def test_what_no_read_finds_is_remembered_and_sweeps_no_more(world: World) -> None:
    """Blog comments are not read here: HubSpot counts them, the store never holds them."""
    cid = a_contact(world)
    world.submit(cid, "Blog comments", world.clock.ms - 1000)
    first = world.run()
    assert first.summary.counts["form_sweeps"] == 1
    assert world.store.get_cursor(world.portal.id, UNREAD_SUBMISSIONS + cid) == "1"
    assert world.store.get_cursor(world.portal.id, UNREAD_CONVERSION + "Blog comments") == "1"

    world.clock.advance(10 * MINUTE_S)
    world.submit(cid, "Blog comments", world.clock.ms - 1000)  # another comment: the one the store lacks
    second = world.run()
    assert "form_sweeps" not in second.summary.counts and world.forms_read() == []
    assert world.store.get_cursor(world.portal.id, UNREAD_SUBMISSIONS + cid) == "2"

    world.clock.advance(10 * MINUTE_S)
    world.submit(cid, "Energy ebook", world.clock.ms - 1000)  # a form that is read: its count is explained
    third = world.run()
    assert "form_sweeps" not in third.summary.counts and third.summary.counts["events_new"] == 1


def test_a_comment_after_a_read_form_between_polls_still_sweeps(world: World) -> None:
    cid = a_contact(world)
    world.submit(cid, "Blog comments", world.clock.ms - 5000)
    world.run()  # learns that blog comments are not read
    world.clock.advance(10 * MINUTE_S)
    world.submit(cid, "Energy ebook", world.clock.ms - 2000)
    world.submit(cid, "Blog comments", world.clock.ms - 1000)  # the latest: the ebook hides behind it
    cycle = world.run()
    assert cycle.summary.counts["form_sweeps"] == 1 and cycle.summary.counts["events_new"] == 1


def test_a_stopped_poll_keeps_its_cursor(world: World) -> None:
    polled = world.polled()
    cycle = Cycle(world.portal, "incremental")
    cycle.stop.set()
    cycle.run()
    assert world.polled() == polled


@pytest.mark.parametrize(
    ("conversion", "found"),
    [
        ("Demo request", {"demo"}),
        ("Pricing: Demo request", {"demo"}),  # HubSpot puts the page's title first
        ("Webinar: grid analytics", {"webinar"}),
        ("Demo request 2", set()),
        ("", set()),
    ],
)
def test_a_conversion_names_the_forms_whose_name_it_is_or_ends_with(conversion: str, found: set[str]) -> None:
    forms = {"demo": "Demo request", "webinar": "Webinar: grid analytics", "blank": ""}
    assert forms_named(conversion, forms) == found


@pytest.mark.parametrize("overlap", ["0s", "soon", "2 minutes"])
def test_a_poll_overlap_that_is_no_duration_is_a_config_error(overlap: str) -> None:
    data = example_data()
    data["forms"] = {"poll_overlap": overlap}
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("example.yaml"))
    assert [p.path for p in info.value.problems] == ["forms.poll_overlap"]
