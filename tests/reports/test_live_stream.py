"""The live portal and the state store as streams: the same contacts and events as loading them whole, in the
memory of a page of contacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.app import open_portal
from sync.cli import main
from sync.core.model import EmailEvent, FormSubmission
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, read_properties
from sync.reports.dataset import PortalStream, StoreStream, from_portal
from sync.reports.plan import build_plan
from sync.reports.spill import EventSpill
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.store.state import SqlStateStore
from tests.factories import example_rules
from tests.fakes import FakeCrm, ManualClock, MemoryStore
from tests.reports.conftest import StartPortal

T0_MS = DEFAULT_NOW_MS + 3_600_000
CLOCK = ManualClock.at_ms(T0_MS)


def test_events_on_disk_come_back_by_email_in_the_order_read() -> None:
    spill = EventSpill()
    spill.add([FormSubmission("c1", 5, "a@x.com", "f", "Demo", "/p"), EmailEvent("e1", "email_open", 3, "b@x.com")])
    spill.add([EmailEvent("e2", "email_click", 1, "a@x.com", "7", "https://x", True, "", False)])
    spill.add([EmailEvent("e3", "email_open", 2, "nobody@x.com")])
    found = spill.by_email(["a@x.com", "b@x.com", "c@x.com", ""])
    assert found == {
        "a@x.com": [
            FormSubmission("c1", 5, "a@x.com", "f", "Demo", "/p"),
            EmailEvent("e2", "email_click", 1, "a@x.com", "7", "https://x", True, "", False),
        ],
        "b@x.com": [EmailEvent("e1", "email_open", 3, "b@x.com")],
    }
    assert list(spill.unclaimed()) == [EmailEvent("e3", "email_open", 2, "nobody@x.com")]
    spill.close()


def test_a_live_portal_streams_the_contacts_and_events_it_loads_whole() -> None:
    rules = example_rules()
    hubspot = generate_portal(450, 4)
    crm = FakeCrm(hubspot, CLOCK, read_properties(rules))
    whole = from_portal(crm, "p", 1, rules.list_ids, T0_MS)
    stream = PortalStream(crm, "p", 1, rules.list_ids, T0_MS)
    streamed = list(stream.inputs())
    assert streamed == list(whole.inputs())
    assert sum(len(events) for _, events in streamed) > 1000
    assert stream.problems == whole.problems
    assert stream.events.count == sum(len(v) for v in whole.events_by_email.values())
    # The plan on either is the same plan.
    plans = [build_plan(inputs, rules, T0_MS, source="p").json(20) for inputs in (whole.inputs(), streamed)]
    assert plans[0] == plans[1] and plans[0]["counts"]["written"] > 100
    stream.close()


def test_a_live_portal_is_read_a_page_at_a_time() -> None:
    rules = example_rules()
    crm = FakeCrm(generate_portal(450, 4), CLOCK, read_properties(rules))
    stream = PortalStream(crm, "p", 1, rules.list_ids, T0_MS)
    pages = stream.pages()
    first = next(pages)
    assert 0 < len(first) < 450 and stream.contacts_read == len(first)  # the rest not read yet
    assert len(crm.calls_to("contact_pages")) == 1
    stream.close()


def test_the_store_streams_its_contacts_with_their_events_and_our_writes() -> None:
    rules = example_rules()
    hubspot = generate_portal(250, 7)
    crm = FakeCrm(hubspot, CLOCK, read_properties(rules))
    store = MemoryStore(CLOCK)
    from sync.config import build_portal
    from sync.pipeline import Portal
    from tests.factories import example_data

    loaded = build_portal(example_data(), Path("example.yaml"))
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=CLOCK)
    assert Cycle(portal, "full").run().status == "ok"
    stream = StoreStream(store, portal.id, "memory", page=40)
    inputs = list(stream.inputs())
    assert [c.id for c, _ in inputs] == [i for ids in store.iter_contact_ids(portal.id, 1000) for i in ids]
    emails = [c.email for c, _ in inputs if c.email]
    assert sum(len(e) for _, e in inputs) == sum(len(v) for v in store.events_for_emails(portal.id, emails).values())
    # The values leadsync wrote are over the contacts as last read: a plan from the store has nothing to write.
    plan = build_plan(inputs, rules, T0_MS, source="store", written_stages={})
    assert plan.counts["written"] == 0 and plan.contacts == 250


def _config_with_mql_at(file: Path, score: int, out: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["model"]["lifecycle"]["stages"][0]["min_score"] = score
    out.write_text(yaml.safe_dump(data), encoding="utf-8")
    return out


def test_plan_from_the_store_is_the_plan_on_the_live_portal(
    sandbox_portal: StartPortal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a sync the store holds what HubSpot holds: a rule change planned from it is planned as live."""
    _, file = sandbox_portal(600, 5, clock=CLOCK.seconds)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    store = SqlStateStore(db)
    portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
    portal.clock = CLOCK
    assert Cycle(portal, "full").run().status == "ok"
    store.close()
    changed = _config_with_mql_at(file, 30, tmp_path / "changed.yaml")
    now = ["--now", "2026-11-29T00:00:00Z"]
    plans = []
    for source in ([], ["--from-store"]):
        assert main(["plan", "--config", str(changed), *source, "--db", db, "--json", *now]) == 0
        plans.append(json.loads(capsys.readouterr().out))
    live, stored = plans
    assert stored["source"].startswith("state store sqlite:///")
    assert stored["contacts_written"] == live["contacts_written"]
    assert stored["counts"] == live["counts"] and live["counts"]["written"] > 20
    assert stored["api_calls"]["reads"] == 0 < live["api_calls"]["reads"]
    # score and backtest read the store too.
    assert main(["score", "--config", str(changed), "--from-store", "--db", db, "--jsonl", *now]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 600
    assert main(["backtest", "--config", str(changed), "--from-store", "--db", db, "--json", *now]) == 0
    assert json.loads(capsys.readouterr().out)["contacts"]["total"] == 600


def test_from_store_needs_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.factories import EXAMPLE

    db = f"sqlite:///{tmp_path / 'none.db'}"
    code = main(["plan", "--config", str(EXAMPLE), "--from-store", "--db", db])
    assert code != 0
    assert "no state store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_companies_are_read_from_the_store_a_page_of_contacts_at_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an accounts: section, plan and score from the store roll the contacts up into the stored companies
    as the live plan does from HubSpot's."""
    from sync.sandbox import Sandbox
    from tests.factories import sandbox_config
    from tests.reports.test_plan_accounts import ACCOUNTS

    with Sandbox(generate_portal(300, 5, companies=30), rate_limit="off") as sb:
        monkeypatch.setenv("LEADSYNC_TEST_TOKEN", sb.token)
        config = sandbox_config(sb.url, "LEADSYNC_TEST_TOKEN")
        config["accounts"] = ACCOUNTS
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config), encoding="utf-8")
        db = f"sqlite:///{tmp_path / 'state.db'}"
        store = SqlStateStore(db)
        portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
        summary = Cycle(portal, "full").run()
        store.close()
        assert summary.status == "ok", summary.error
        now = ["--now", "2026-11-29T00:00:00Z"]
        plans = []
        for source in ([], ["--from-store"]):
            assert main(["plan", "--config", str(file), *source, "--db", db, "--json", *now]) == 0
            plans.append(json.loads(capsys.readouterr().out))
    live, stored = plans
    assert stored["accounts"]["companies"] == live["accounts"]["companies"] == 30
    # The store keeps the company properties the rules read, not the name the plan shows.
    unnamed = [[{**c, "name": ""} for c in p["accounts"]["top_changes"]] for p in plans]
    assert unnamed[0] == unnamed[1]
    assert stored["accounts"]["counts"] == live["accounts"]["counts"]
    assert main(["score", "--config", str(file), "--from-store", "--db", db, "--json", *now]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert len(scored["results"]) == 300 and len(scored["companies"]) == 30
    assert any(c["contacts"] for c in scored["companies"])  # the contacts were rolled up into their companies
