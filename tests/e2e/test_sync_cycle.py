"""End to end: the sync worker against a 5,000-contact sandbox portal, state in SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from structlog.testing import capture_logs

from sync.app import open_portal
from sync.core.decision import decide
from sync.core.model import Contact
from sync.core.planning import plan_contact
from sync.core.rules import compile_ruleset
from sync.core.scoring import score
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, Portal
from sync.pipeline import cycle as cycle_module
from sync.ports import ContactPage
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config
from tests.fakes import ManualClock

T0_MS = DEFAULT_NOW_MS + 3_600_000  # an hour after the generator's "now": every generated event is in the past


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Portal, ManualClock]]:
    clock = ManualClock.at_ms(T0_MS)
    with Sandbox(generate_portal(5000, 21), rate_limit="off", clock=clock.seconds) as sb:
        config = sandbox_config(sb.url, "LEADSYNC_E2E_TOKEN")
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("LEADSYNC_E2E_TOKEN", sb.token)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
        portal.clock = clock
        yield sb, portal, clock
        store.close()


def admin(sb: Sandbox, path: str, body: dict[str, Any]) -> None:
    requests.post(f"{sb.url}/__sandbox/{path}", json=body, timeout=30).raise_for_status()


def writes(sb: Sandbox) -> int:
    stats = requests.get(f"{sb.url}/__sandbox/stats", timeout=30).json()
    return sum(sum(by.values()) for route, by in stats["requests"].items() if "batch/update" in route)


def leftover_writes(sb: Sandbox, portal: Portal) -> list[str]:
    """Contacts whose HubSpot values differ from what `leadsync score` computes on the same data."""
    raw = requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()
    snapshot = parse_snapshot(raw)
    rules = compile_ruleset(portal.rules.spec)
    props = rules.spec.models[0].properties
    off = []
    for contact, events in snapshot.scoring_inputs():
        result = score(contact, events, rules, portal.clock.now())
        if not plan_contact(result, contact, props, rules.spec.exclusion_action, T0_MS).empty:
            off.append(contact.id)
    return off


def test_full_then_incremental_sync_leaves_hubspot_exactly_as_scored_and_then_writes_nothing(world: Any) -> None:
    sb, portal, _ = world
    first = Cycle(portal, "full").run()
    assert first.status == "ok", first.error
    assert first.counts["pulled"] == 5000 and first.counts["written"] > 3000
    assert leftover_writes(sb, portal) == []

    # Events and property edits arrive in HubSpot.
    before_edits = requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()
    contacts = before_edits["contacts"]
    demo = next(f["id"] for f in before_edits["forms"] if f["name"] == "Demo request")
    plain = [c for c in contacts if "@" in c["properties"].get("email", "")][:60]
    admin(sb, "contacts", {"contacts": [{"id": c["id"], "properties": {"industry": "ENERGY"}} for c in plain[:30]]})
    # Demo requests a minute ago: since the full run (the poll finds them by their contacts' conversion date).
    admin(sb, "form_submissions", {"form_submissions": [
        {"formId": demo, "conversionId": f"e2e-{c['id']}", "submittedAt": T0_MS - 60_000,
         "values": [{"name": "email", "value": c["properties"]["email"]}], "pageUrl": "https://acme.example/demo"}
        for c in plain[30:60]
    ]})  # fmt: skip
    second = Cycle(portal, "incremental").run()
    assert second.status == "ok", second.error
    assert second.counts["written"] > 0  # the edits and events were seen; exactness is checked next
    assert leftover_writes(sb, portal) == []

    before = writes(sb)
    third = Cycle(portal, "incremental").run()
    assert third.status == "ok" and third.counts.get("written", 0) == 0
    assert writes(sb) == before  # nothing new: not one write call


def test_the_audit_trail_explains_every_written_score(world: Any) -> None:
    sb, portal, _ = world
    with capture_logs() as logs:
        summary = Cycle(portal, "full").run()
    changed = [e for e in logs if e["event"] == "score_changed"]
    assert len(changed) == summary.counts["written"]
    snapshot = {
        c["id"]: c["properties"] for c in requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()["contacts"]
    }
    for event in changed[:200]:
        rows = portal.store.history(portal.id, event["contact_id"])
        assert rows and rows[-1].version == portal.rules.version and rows[-1].run_id == summary.run_id
        assert str(rows[-1].new_score) == snapshot[event["contact_id"]]["ls_score"]
        assert rows[-1].reasons == event["reasons"] and rows[-1].breakdown["lines"]


def test_a_broken_contact_is_skipped_and_the_cycle_goes_on(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, portal, _ = world
    pages = portal.source.contact_pages

    def with_a_bad_record(after: str | None = None) -> Any:
        for i, page in enumerate(pages(after)):
            problems = [*page.problems, "contact 99: createdate is not a date"] if i == 0 else page.problems
            yield ContactPage(page.contacts, problems, page.after, page.max_modified_ms)

    def scoring_that_breaks_on_1001(contact: Contact, *args: Any, **kwargs: Any) -> Any:
        if contact.id == "1001":
            raise ValueError("corrupted property data")
        return decide(contact, *args, **kwargs)

    portal.source.contact_pages = with_a_bad_record
    monkeypatch.setattr(cycle_module, "decide", scoring_that_breaks_on_1001)
    with capture_logs() as logs:
        summary = Cycle(portal, "full").run()
    assert summary.status == "ok"
    assert (summary.counts["skipped_records"], summary.counts["skipped_contacts"]) == (1, 1)
    assert any(e["event"] == "contact_skipped" and e["contact_id"] == "1001" for e in logs)
    assert any(e["event"] == "record_skipped" and "createdate" in e["reason"] for e in logs)
    assert summary.counts["written"] > 3000


def test_a_stopped_backfill_resumes_where_it_stopped(world: Any) -> None:
    sb, portal, _ = world
    cycle = Cycle(portal, "full")
    pages = [0]

    def stop_after_ten_pages(done: int, total: int | None) -> None:
        pages[0] += 1
        if pages[0] == 10:
            cycle.stop.set()

    cycle.progress = stop_after_ten_pages
    partial = cycle.run()
    rest = Cycle(portal, "full").run()
    assert partial.counts["pulled"] < 5000
    assert partial.counts["pulled"] + rest.counts["pulled"] >= 5000
    assert leftover_writes(sb, portal) == []


def test_an_unexpected_error_records_the_run_as_failed(world: Any) -> None:
    _, portal, _ = world

    def broken_forms() -> dict[str, str]:
        raise ConnectionResetError("the network went away")

    portal.source.forms = broken_forms
    with pytest.raises(ConnectionResetError):
        Cycle(portal, "full").run()
    (last,) = portal.store.last_runs(portal.id, 1)
    assert last.status == "failed" and "ConnectionResetError" in (last.error or "")


def test_a_runs_api_calls_count_towards_the_days_budget_in_the_store(world: Any) -> None:
    _, portal, clock = world
    first = Cycle(portal, "full").run()
    second = Cycle(portal, "incremental").run()
    day = clock.now().date().isoformat()
    assert portal.store.add_api_calls(portal.id, day, 0) == first.counts["api_calls"] + second.counts["api_calls"]


def test_an_incremental_run_does_not_pull_the_last_runs_writes_again_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock.at_ms(T0_MS)
    with Sandbox(generate_portal(600, 23), rate_limit="off", clock=clock.seconds) as sb:
        config = sandbox_config(sb.url, "LEADSYNC_E2E_TOKEN")
        # Fit rules only: scores do not move with time, so no run after the backfill writes anything.
        config["model"]["engagement"] = {"rules": []}
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("LEADSYNC_E2E_TOKEN", sb.token)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        portal = open_portal(file, store)
        portal.clock = clock
        full = Cycle(portal, "full").run()  # writes hundreds of contacts, all modified at T0
        clock.ms += 15 * 60_000
        first = Cycle(portal, "incremental").run()
        clock.ms += 15 * 60_000
        second = Cycle(portal, "incremental").run()
        store.close()
    assert full.counts["written"] > 300
    assert first.counts["pulled"] >= full.counts["written"] and first.counts.get("written", 0) == 0  # read once
    assert second.counts.get("pulled", 0) == 0  # not the backfill's burst again, cycle after cycle
