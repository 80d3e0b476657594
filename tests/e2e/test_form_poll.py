"""The poll for new form submissions, through the real SDK against a sandbox portal of 25 forms over loopback:
an idle incremental cycle costs at most 3 calls whatever the number of forms; a new submission costs one
conversions search and one read of its form; `--full` still sweeps every form; and a submission search shows
late (the sandbox's search lag) is found by the next poll's overlap, never skipped by the cursor."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from sync.app import open_portal
from sync.core.conditions import DAY_MS
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import CONVERSIONS_CURSOR, Cycle, Kind, Portal, RunSummary
from sync.sandbox import Portal as SandboxPortal
from sync.sandbox import Sandbox
from sync.sandbox.records import FormRecord
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config
from tests.fakes import ManualClock

TOKEN_ENV = "LEADSYNC_POLL_TOKEN"
PORTAL_ID = 12345678
FORMS = 25
CONTACTS = 20
T0_MS = 1_790_000_000_000
MINUTE_S = 60
DEMO = "f-00"  # "Demo request": 70 points in the reference config
SEARCH = "POST /crm/v3/objects/contacts/search"
SUBMISSIONS = "GET /form-integrations/v1/submissions/forms/{formId}"


@dataclass
class World:
    sb: Sandbox
    portal: Portal
    clock: ManualClock

    def run(self, kind: Kind = "incremental") -> tuple[RunSummary, dict[str, int]]:
        """One cycle now: its summary and the API requests the sandbox answered, by route."""
        before = self._requests()
        summary = Cycle(self.portal, kind).run()
        assert summary.status == "ok", summary.error
        after = self._requests()
        return summary, {route: n - before.get(route, 0) for route, n in after.items() if n - before.get(route, 0)}

    def _requests(self) -> dict[str, int]:
        stats = requests.get(f"{self.sb.url}/__sandbox/stats", timeout=30).json()["requests"]
        return {route: sum(by_status.values()) for route, by_status in stats.items()}

    def submit(self, cid: int, form: str = DEMO, at_ms: int | None = None) -> None:
        """Contact `cid` submits `form` (at `at_ms`, else now): HubSpot stores it and updates the contact."""
        submission = {
            "formId": form,
            "submittedAt": self.clock.ms if at_ms is None else at_ms,
            "values": [{"name": "email", "value": email(cid)}],
            "pageUrl": "https://acme.example/demo",
        }
        reply = requests.post(f"{self.sb.url}/__sandbox/form_submissions", json=[submission], timeout=30)
        reply.raise_for_status()

    def score(self, cid: int) -> int:
        props = self.sb.portal.contact_properties(str(cid))
        assert props is not None
        return int(props.get("ls_score") or 0)

    def idle(self) -> None:
        """A full run, then incremental runs until the full run's own writes are behind the lookback."""
        self.run("full")
        for _ in range(2):
            self.clock.advance(10 * MINUTE_S)
            self.run()
        self.clock.advance(MINUTE_S)


def email(cid: int) -> str:
    return f"buyer{cid}@buyer-corp.com"


def build_portal() -> SandboxPortal:
    created = T0_MS - 400 * DAY_MS
    portal = SandboxPortal(PORTAL_ID, created_ms=created)
    portal.add_form(FormRecord(DEMO, "Demo request", created))
    for i in range(1, FORMS):
        portal.add_form(FormRecord(f"f-{i:02}", f"Newsletter {i}", created))
    portal.set_list(42, "Employees", {})
    rows = [(cid, {"email": email(cid), "lifecyclestage": "lead"}, created, created) for cid in range(1, CONTACTS + 1)]
    portal.bulk_load(rows)
    return portal


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clock = ManualClock.at_ms(T0_MS)
    with Sandbox(build_portal(), rate_limit="off", clock=clock.seconds) as sb:
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(sandbox_config(sb.url, TOKEN_ENV)))
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
        portal.clock = clock
        yield World(sb, portal, clock)
        store.close()


def test_an_idle_incremental_cycle_costs_at_most_3_calls_whatever_the_number_of_forms(world: World) -> None:
    world.idle()
    summary, calls = world.run()
    assert summary.counts.get("pulled", 0) == 0 and summary.counts.get("scored", 0) == 0
    assert summary.counts["api_calls"] == sum(calls.values()) <= 3
    # The contacts changed, the contacts converted, the email events: no form listed, none read, no list read.
    assert calls == {SEARCH: 2, "GET /email/public/v1/events": 1}


def test_a_new_submission_costs_one_conversions_search_and_one_read_of_its_form(world: World) -> None:
    world.idle()
    before = world.score(3)
    world.submit(3)
    world.clock.advance(MINUTE_S)
    summary, calls = world.run()
    assert calls[SUBMISSIONS] == 1 and summary.counts["forms_read"] == 1
    assert calls[SEARCH] == 2  # the contacts changed (the submission changed contact 3) and the contacts converted
    assert summary.counts["events_new"] == 1
    assert world.score(3) == before + 70  # the demo request counted
    # The poll moves its cursor to this run's start.
    assert world.portal.store.get_cursor(PORTAL_ID, CONVERSIONS_CURSOR) == str(world.clock.ms)


def test_full_still_sweeps_every_form(world: World) -> None:
    world.idle()
    summary, calls = world.run("full")
    assert calls[SUBMISSIONS] == FORMS == summary.counts["forms_read"]


def test_a_submission_search_shows_late_is_found_by_the_next_polls_overlap(world: World) -> None:
    world.idle()
    world.sb.portal.search_lag_seconds = 30
    before = world.score(5)
    world.submit(5)
    world.clock.advance(5)  # search does not show it yet
    first, calls = world.run()
    assert first.counts.get("events_new", 0) == 0 and SUBMISSIONS not in calls
    assert world.portal.store.get_cursor(PORTAL_ID, CONVERSIONS_CURSOR) == str(world.clock.ms)  # past the submission

    world.clock.advance(MINUTE_S)  # now search shows it: the overlap reaches back before the cursor
    second, calls = world.run()
    assert second.counts["events_new"] == 1 and calls[SUBMISSIONS] == 1
    assert world.score(5) == before + 70


def test_without_the_overlap_a_submission_search_shows_late_would_wait_for_a_sweep(world: World) -> None:
    """The control: the overlap is what finds it (a poll overlapping less than the lag skips it)."""
    world.idle()
    world.sb.portal.search_lag_seconds = 30
    world.portal.poll_overlap_ms = 1_000
    world.submit(5)
    world.clock.advance(5)
    world.run()
    world.clock.advance(MINUTE_S)
    second, _ = world.run()
    assert second.counts.get("events_new", 0) == 0
    swept, _ = world.run("full")  # the sweep still finds it
    assert swept.counts["events_new"] == 1


def test_the_portal_files_poll_overlap_is_the_polls(tmp_path: Path, world: World) -> None:
    assert world.portal.poll_overlap_ms == 120_000  # the default, 2m
    config = sandbox_config(world.sb.url, TOKEN_ENV)
    config["forms"] = {"poll_overlap": "90s"}
    file = tmp_path / "overlap.yaml"
    file.write_text(yaml.safe_dump(config))
    assert open_portal(file, world.portal.store).poll_overlap_ms == 90_000
