"""The HubSpot adapter against the local sandbox, over loopback HTTP with the real SDK."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from sync.core.model import FormSubmission, PropertyUpdate, StageChange
from sync.core.planning import plan_contact
from sync.core.rules import OutputProperties
from sync.core.scoring import score
from sync.hubspot.client import HubSpotClient
from sync.hubspot.contacts import Contacts
from sync.hubspot.errors import AuthError, DailyLimitError, PortalPausedError
from sync.hubspot.limits import Budget, RateLimiter
from sync.hubspot.portal import HubSpotPortal
from sync.hubspot.retry import RetryPolicy
from sync.hubspot.shapes import email_event_key
from sync.ports import PropertySpec, SubmissionPage, WriteOutcome
from sync.sandbox import Portal, Sandbox
from sync.sandbox.generator import generate_portal
from sync.snapshot import parse_snapshot
from tests.factories import NOW, NOW_MS, example_rules

FAST = "per10s=1000000,search=100000,daily=100000000"
GRADES = tuple(f"{f}{e}" for f in "ABC" for e in "123")
OWNED = [
    PropertySpec("ls_score", "Lead score", "number"),
    PropertySpec("ls_fit", "Fit score", "number"),
    PropertySpec("ls_engagement", "Engagement score", "number"),
    PropertySpec("ls_grade", "Lead grade", "enumeration", GRADES),
    PropertySpec("ls_reasons", "Score reasons", "string"),
    PropertySpec("ls_scored_at", "Scored at", "datetime"),
]
READ = ["decision_role", "industry", "need_level", "numberofemployees", "purchase_timeline", "budget_fit", "jobtitle",
        "hs_analytics_source", "hs_analytics_first_referrer", "hs_analytics_num_visits", "ls_sales_feedback",
        "hs_email_optout", *(p.name for p in OWNED)]  # fmt: skip


def read_all(pages: Iterable[SubmissionPage]) -> tuple[list[FormSubmission], list[str]]:
    """A form's submissions and problems, every page of them."""
    found: list[FormSubmission] = []
    problems: list[str] = []
    for page in pages:
        found += page.submissions
        problems += page.problems
    return found, problems


@contextmanager
def connected(
    portal: Portal, *, rate_limit: str = FAST, token: str | None = None, **sandbox: Any
) -> Iterator[tuple[Sandbox, HubSpotClient]]:
    with Sandbox(portal, rate_limit=rate_limit, fault_seed=11, **sandbox) as sb:
        limiter = RateLimiter(
            Budget(per_10s=1_000_000, daily=100_000_000, daily_reserve_pct=0, search_per_second=100_000)
        )
        # Real waits are capped so retries after injected faults cost milliseconds, not seconds.
        policy = RetryPolicy(attempts=12, base_wait=0.01, max_wait=0.05, sleep=lambda s: time.sleep(min(s, 0.05)))
        yield sb, HubSpotClient(token or sb.token, sb.url, limiter, policy, timeout=(2.0, 0.5))


def stats(sb: Sandbox) -> Any:
    return requests.get(f"{sb.url}/__sandbox/stats", timeout=10).json()


def snapshot(sb: Sandbox) -> Any:
    return requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()


def test_a_25000_contact_portal_with_12000_on_one_timestamp_is_pulled_completely_each_once() -> None:
    portal = generate_portal(25_000, 3, shared_timestamp=12_000)
    with connected(portal) as (_, client):
        contacts = Contacts(client, [])
        seen = Counter(c.id for page in contacts.changed_since(0) for c in page.contacts)
        listed = Counter(c.id for page in contacts.pages() for c in page.contacts)
    assert len(seen) == 25_000 and set(seen.values()) == {1}
    assert seen.keys() == listed.keys() and set(listed.values()) == {1}


def sync_all(client: HubSpotClient) -> WriteOutcome:
    """Pull every contact, score it with the reference rules, write what differs (stages included)."""
    hub = HubSpotPortal(client, READ)
    hub.ensure_properties("lead_scoring_sync", "Lead scoring", OWNED)
    rules, props, outcome = example_rules(), OutputProperties(), WriteOutcome()
    for page in hub.contact_pages():
        updates, stages = [], []
        for contact in page.contacts:
            plan = plan_contact(score(contact, [], rules, NOW), contact, props, "skip", NOW_MS)
            if plan.update is not None:
                updates.append(plan.update)
            if plan.stage_change is not None:
                stages.append(plan.stage_change)
        outcome.add(hub.update_contacts(updates))
        outcome.add(hub.set_stages(stages))
    return outcome


def owned_state(sb: Sandbox) -> dict[str, dict[str, str | None]]:
    names = [p.name for p in OWNED] + ["lifecyclestage"]
    return {c["id"]: {n: c["properties"].get(n) for n in names} for c in snapshot(sb)["contacts"]}


def test_a_run_with_faults_ends_with_exactly_the_writes_of_a_fault_free_run() -> None:
    faults = "429=0.05,500=0.02,503=0.02,timeout=0.01,reset=0.01,partial=0.05"
    with connected(generate_portal(3000, 5)) as (clean_sb, clean_client):
        clean = sync_all(clean_client)
        expected = owned_state(clean_sb)
    with connected(generate_portal(3000, 5), faults=faults, fault_timeout_seconds=1.0) as (sb, client):
        faulty = sync_all(client)
        got = owned_state(sb)
        injected = stats(sb)
    assert clean.dead == [] and faulty.dead == []
    assert sum(1 for v in expected.values() if v["ls_score"] is not None) > 2000  # the run wrote a lot
    assert got == expected
    assert sum(injected["faults"].values()) >= 5, injected["faults"]  # faults were really injected


def test_a_daily_429_stops_the_cycle_without_retrying() -> None:
    # Searches carry no rate-limit headers, so nothing warns the client before HubSpot refuses.
    with connected(generate_portal(2000, 1), rate_limit="per10s=1000,search=5,daily=3") as (sb, client):
        contacts = Contacts(client, [])
        with pytest.raises(DailyLimitError):
            for _ in contacts.changed_since(0):
                pass
        seen = stats(sb)
    assert seen["rate_limited"]["DAILY"] == 1  # one refusal, never asked again
    assert client.calls[("contacts.search", 429)] == 1


def test_the_daily_remaining_header_stops_the_cycle_before_hubspot_has_to_refuse() -> None:
    with connected(generate_portal(2000, 1), rate_limit="per10s=1000,search=5,daily=3") as (sb, client):
        contacts = Contacts(client, [])
        with pytest.raises(DailyLimitError):
            for _ in contacts.pages():
                pass
        seen = stats(sb)
    assert seen["rate_limited"]["DAILY"] == 0 and client.calls[("contacts.list", 200)] == 3


def test_a_401_pauses_the_portal_with_a_clear_log_event() -> None:
    with connected(generate_portal(50, 1), token="revoked-token") as (sb, client):
        contacts = Contacts(client, [])
        with capture_logs() as logs, pytest.raises(AuthError):
            next(iter(contacts.pages()))
        with pytest.raises(PortalPausedError):
            next(iter(contacts.pages()))
        requests_made = sum(sum(by_status.values()) for by_status in stats(sb)["requests"].values())
    assert next(e for e in logs if e["event"] == "portal_paused")["reason"] == "unauthorized"
    assert requests_made == 1  # the paused portal made no second call
    assert "revoked-token" not in str(logs)


def test_one_bad_input_never_holds_back_the_good_ones() -> None:
    with connected(generate_portal(120, 2)) as (sb, client):
        hub = HubSpotPortal(client, READ)
        hub.ensure_properties("lead_scoring_sync", "Lead scoring", OWNED)
        ids = [c["id"] for c in snapshot(sb)["contacts"]][:98]
        updates = [PropertyUpdate(cid, {"ls_score": "42"}) for cid in ids[:97]]
        updates.append(PropertyUpdate(ids[97], {"ls_score": "42", "ls_grade": "Z9"}))  # not an option: a 400
        updates.append(PropertyUpdate("999999999", {"ls_score": "42"}))  # unknown id: a 207 item error
        outcome = hub.update_contacts(updates)
        state = owned_state(sb)
    assert sorted(outcome.applied) == sorted(ids[:97])
    assert {d.contact_id for d in outcome.dead} == {ids[97], "999999999"}
    assert all(d.reason for d in outcome.dead)
    assert all(state[cid]["ls_score"] == "42" for cid in ids[:97])
    assert state[ids[97]]["ls_score"] is None  # the rejected contact's batch-mate values were not half-applied
    assert outcome.calls <= 2 * 7 + 1  # halving isolates one bad input among 100 in log2 rounds


def test_a_refused_write_says_what_to_fix() -> None:
    with connected(generate_portal(20, 2)) as (sb, client):
        hub = HubSpotPortal(client, READ)
        hub.ensure_properties("lead_scoring_sync", "Lead scoring", OWNED)
        ids = [c["id"] for c in snapshot(sb)["contacts"]][:3]
        outcome = hub.update_contacts(
            [
                PropertyUpdate(ids[0], {"ls_score": "42", "ls_grade": "Z9"}),  # an option ls_grade lacks
                PropertyUpdate(ids[1], {"hs_analytics_num_visits": "3"}),  # read-only in HubSpot
                PropertyUpdate(ids[2], {"ls_score": "42"}),
                PropertyUpdate("999999999", {"ls_score": "42"}),  # deleted or merged
            ]
        )
    reasons = {d.contact_id: (d.reason, d.status) for d in outcome.dead}
    assert outcome.applied == [ids[2]]
    assert reasons[ids[0]] == (
        "HubSpot rejected ls_grade=Z9: not an option of ls_grade (options: A1, A2, A3, B1, B2, B3, C1, C2, C3); "
        "add the option in HubSpot or change grades: in the config",
        400,
    )
    assert reasons[ids[1]][0].startswith(
        "HubSpot rejected hs_analytics_num_visits=3: hs_analytics_num_visits is read-only in HubSpot"
    )
    assert reasons["999999999"][0].startswith("the contact was deleted or merged in HubSpot (HubSpot: Could not get")
    assert reasons["999999999"][1] == 404


def test_a_backward_stage_move_is_cleared_set_and_checked() -> None:
    with connected(generate_portal(60, 4)) as (sb, client):
        hub = HubSpotPortal(client, READ)
        early = ("subscriber", "lead", "marketingqualifiedlead")  # HubSpot moves these forward to SQL
        cid = next(c["id"] for c in snapshot(sb)["contacts"] if c["properties"].get("lifecyclestage") in early)
        hub.update_contacts([PropertyUpdate(cid, {"lifecyclestage": "salesqualifiedlead"})])
        direct = hub.update_contacts([PropertyUpdate(cid, {"lifecyclestage": "lead"})])
        quietly_kept = owned_state(sb)[cid]["lifecyclestage"]
        moved = hub.set_stages([StageChange(cid, "marketingqualifiedlead", clear_first=True)])
        final = owned_state(sb)[cid]["lifecyclestage"]
    assert direct.applied == [cid] and quietly_kept == "salesqualifiedlead"  # HubSpot's quiet refusal
    assert moved.applied == [cid] and moved.dead == [] and final == "marketingqualifiedlead"


def test_ensure_properties_is_idempotent_and_adds_missing_options() -> None:
    with connected(generate_portal(10, 1)) as (_, client):
        hub = HubSpotPortal(client, READ)
        first = hub.properties.ensure("lead_scoring_sync", "Lead scoring", OWNED[:4])
        again = hub.properties.ensure("lead_scoring_sync", "Lead scoring", OWNED[:4])
        wider = [*OWNED[:3], PropertySpec("ls_grade", "Lead grade", "enumeration", (*GRADES, "D4"))]
        grown = hub.properties.ensure("lead_scoring_sync", "Lead scoring", wider)
        options = [
            o["value"]
            for o in client.sdk("p", client.properties_core.get_by_name, "contacts", "ls_grade").body["options"]
        ]
    assert first == [
        "group lead_scoring_sync",
        "property ls_score",
        "property ls_fit",
        "property ls_engagement",
        "property ls_grade",
    ]
    assert again == []
    assert grown == ["options of ls_grade: D4"] and options[-1] == "D4"


def test_forms_submissions_email_events_and_lists_read_what_the_portal_holds() -> None:
    portal = generate_portal(400, 9)
    with connected(portal) as (sb, client):
        hub = HubSpotPortal(client, READ)
        truth = snapshot(sb)
        forms = hub.forms()
        since = min(s["submittedAt"] for s in truth["form_submissions"])
        submissions = [s for fid, name in forms.items() for s in read_all(hub.form_submissions(fid, name, since))[0]]
        start = min(e["created"] for e in truth["email_events"])
        end = max(e["created"] for e in truth["email_events"])
        events = [e for page in hub.email_events(start, end) for e in page.events]
        members = {lst["listId"]: hub.list_members(lst["listId"]) for lst in truth["lists"]}
    # Every form but blog comments and archived ones; each submission, with or without conversionId, read
    # under the event id the offline path gives it.
    read = [f for f in truth["forms"] if f["formType"] != "blog_comment" and not f["archived"]]
    assert forms == {f["id"]: f["name"] for f in read}
    offline = [e for events in parse_snapshot(truth).events_by_email.values() for e in events]
    expected = sorted(e.event_id for e in offline if isinstance(e, FormSubmission))
    assert sorted(s.event_id for s in submissions) == expected
    assert any(s.event_id.startswith("nocid:") for s in submissions)
    scored_types = {"SENT", "DELIVERED", "OPEN", "CLICK", "BOUNCE", "SPAMREPORT", "STATUSCHANGE", "UNBOUNCE"}
    assert {e.event_id for e in events} <= {
        email_event_key(e["id"], e["created"]) for e in truth["email_events"] if e["type"] in scored_types
    }
    assert len(events) >= 0.8 * sum(1 for e in truth["email_events"] if e["type"] in scored_types - {"STATUSCHANGE"})
    assert members == {lst["listId"]: {str(i) for i in lst["contactIds"]} for lst in truth["lists"]}


def test_submissions_stop_at_the_checkpoint() -> None:
    with connected(generate_portal(400, 9)) as (sb, client):
        hub = HubSpotPortal(client, READ)
        truth = snapshot(sb)["form_submissions"]
        form_id = Counter(s["formId"] for s in truth).most_common(1)[0][0]
        stamps = sorted((s["submittedAt"] for s in truth if s["formId"] == form_id), reverse=True)
        checkpoint = stamps[len(stamps) // 2]
        found, _ = read_all(hub.form_submissions(form_id, "", checkpoint))
    assert sorted((s.at_ms for s in found), reverse=True) == [t for t in stamps if t >= checkpoint]


def test_writing_contacts_during_an_incremental_pull_does_not_make_it_skip_any() -> None:
    # Writes bump lastmodifieddate; bounded by the run's start, the query's result set does not shift.
    with connected(generate_portal(1500, 8)) as (_, client):
        hub = HubSpotPortal(client, READ)
        hub.ensure_properties("lead_scoring_sync", "Lead scoring", OWNED)
        until = int(time.time() * 1000)
        seen: Counter[str] = Counter()
        for page in hub.contacts_changed_since(0, until):
            seen.update(c.id for c in page.contacts)
            hub.update_contacts([PropertyUpdate(c.id, {"ls_score": "7"}) for c in page.contacts])
    assert len(seen) == 1500 and set(seen.values()) == {1}


def test_a_stage_set_that_fails_after_the_clear_puts_the_old_stage_back() -> None:
    with connected(generate_portal(40, 6)) as (sb, client):
        hub = HubSpotPortal(client, READ)
        early = ("subscriber", "lead", "marketingqualifiedlead")  # HubSpot moves these forward to SQL
        cid = next(c["id"] for c in snapshot(sb)["contacts"] if c["properties"].get("lifecyclestage") in early)
        hub.update_contacts([PropertyUpdate(cid, {"lifecyclestage": "salesqualifiedlead"})])
        outcome = hub.set_stages([StageChange(cid, "not-a-stage", clear_first=True)])
        final = owned_state(sb)[cid]["lifecyclestage"]
    assert [d.contact_id for d in outcome.dead] == [cid]
    assert final == "salesqualifiedlead"
