"""The StateStore contract, run on SQLite and on PostgreSQL: one behaviour per test."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, timedelta, timezone
from functools import partial
from typing import cast

import pytest
import sqlalchemy as sa

from sync.core.model import EMAIL_CLICK, EMAIL_OPEN, Contact, EmailEvent, Event, FormSubmission
from sync.ports import DeadLetter, HistoryRow, PendingWrite, RunRecord, StageTransition, StateStore
from sync.store.state import (
    DEAD_LETTER_FIRST_WAIT,
    DEAD_LETTER_MAX_ATTEMPTS,
    SqlStateStore,
    dead_letter_wait,
)
from tests.fakes import START, ManualClock, in_parallel
from tests.store.conftest import MakeStore

PORTAL = 42
OTHER = 4_294_967_296  # a second portal, past 2**32, as HubSpot ids can be
T0 = START


def contact(id: str, email: str = "", **properties: str) -> Contact:
    return Contact(id=id, properties=properties, email=email)


def form(event_id: str, at_ms: int, email: str) -> FormSubmission:
    return FormSubmission(event_id=event_id, at_ms=at_ms, email=email, form_id="f-1")


def opened(event_id: str, at_ms: int, email: str) -> EmailEvent:
    return EmailEvent(event_id=event_id, kind=EMAIL_OPEN, at_ms=at_ms, email=email)


def history(contact_id: str, new_score: int, old_score: int | None = None, run_id: str = "run-1") -> HistoryRow:
    return HistoryRow(
        contact_id=contact_id,
        run_id=run_id,
        version="v3",
        old_score=old_score,
        new_score=new_score,
        grade="A1",
        stage="marketingqualifiedlead",
        reasons="industry=ENERGY +20; opened email +5",
        breakdown={"score": new_score, "fit": 20, "lines": [["industry", 20.0, "ENERGY"]]},
    )


def pending(contact_id: str, score: int, **extra: str) -> PendingWrite:
    return PendingWrite(
        contact_id=contact_id,
        properties={"lead_score": str(score), **extra},
        stage=None,
        history=history(contact_id, score),
    )


def test_the_store_implements_the_port(store: StateStore) -> None:
    port: StateStore = store  # the check is mypy's: every method of the Protocol, with its signature
    assert port is store


# -- cursors --


def test_an_unset_cursor_is_none(store: StateStore) -> None:
    assert store.get_cursor(PORTAL, "contacts_modified_ms") is None


def test_a_cursor_reads_back_its_latest_value(store: StateStore) -> None:
    store.set_cursor(PORTAL, "contacts_modified_ms", "1790000000000")
    store.set_cursor(PORTAL, "contacts_modified_ms", "1790000060000")
    assert store.get_cursor(PORTAL, "contacts_modified_ms") == "1790000060000"


def test_cursors_are_kept_per_portal_and_stream(store: StateStore) -> None:
    store.set_cursor(PORTAL, "a", "1")
    store.set_cursor(PORTAL, "b", "2")
    store.set_cursor(OTHER, "a", "3")
    assert [store.get_cursor(PORTAL, "a"), store.get_cursor(PORTAL, "b"), store.get_cursor(OTHER, "a")] == [
        "1",
        "2",
        "3",
    ]


# -- contacts --


def test_contacts_read_back_equal_with_the_email_lowercased(store: StateStore) -> None:
    full = Contact(
        id="101",
        properties={"industry": "ENERGY", "jobtitle": "CTO", "lead_score": ""},
        email="Ada@Example.COM",
        created_at_ms=1_700_000_000_000,
        lifecycle_stage="lead",
        list_ids=frozenset({7, 3}),
    )
    bare = Contact(id="102", properties={})
    store.upsert_contacts(PORTAL, [full, bare])
    assert store.get_contacts(PORTAL, ["101", "102"]) == [
        Contact(
            id="101",
            properties={"industry": "ENERGY", "jobtitle": "CTO", "lead_score": ""},
            email="ada@example.com",
            created_at_ms=1_700_000_000_000,
            lifecycle_stage="lead",
            list_ids=frozenset({3, 7}),
        ),
        bare,
    ]


def test_an_upsert_replaces_the_stored_contact(store: StateStore) -> None:
    store.upsert_contacts(PORTAL, [Contact(id="1", properties={"a": "1", "b": "2"}, lifecycle_stage="lead")])
    newer = Contact(id="1", properties={"a": "9"}, email="x@y.z", lifecycle_stage="customer", list_ids=frozenset({4}))
    store.upsert_contacts(PORTAL, [newer])
    assert store.get_contacts(PORTAL, ["1"]) == [newer]


def test_the_last_copy_of_a_contact_in_one_upsert_wins(store: StateStore) -> None:
    store.upsert_contacts(PORTAL, [contact("1", a="old"), contact("1", a="new")])
    assert store.get_contacts(PORTAL, ["1"]) == [contact("1", a="new")]


def test_get_contacts_keeps_the_order_asked_and_leaves_out_unknown_ids(store: StateStore) -> None:
    store.upsert_contacts(PORTAL, [contact(str(i)) for i in range(1200)])  # more ids than one IN list holds
    asked = [str(i) for i in range(1199, -1, -2)] + ["missing"]
    assert [c.id for c in store.get_contacts(PORTAL, asked)] == asked[:-1]


def test_contacts_are_kept_per_portal(store: StateStore) -> None:
    store.upsert_contacts(PORTAL, [contact("1", a="mine")])
    store.upsert_contacts(OTHER, [contact("1", a="theirs")])
    assert store.get_contacts(PORTAL, ["1"]) == [contact("1", a="mine")]


def test_contacts_by_email_ignores_case(store: StateStore) -> None:
    store.upsert_contacts(PORTAL, [contact("2", "b@x.io"), contact("1", "A@x.io"), contact("3", "c@x.io")])
    found = store.contacts_by_email(PORTAL, ["a@X.io", "B@x.io", "nobody@x.io"])
    assert [(c.id, c.email) for c in found] == [("1", "a@x.io"), ("2", "b@x.io")]


@pytest.mark.parametrize(
    ("count", "batch", "sizes"),
    [(0, 10, []), (25, 10, [10, 10, 5]), (20, 10, [10, 10]), (3, 1000, [3])],
)
def test_iter_contact_ids_pages_through_every_id_in_order(
    store: StateStore, count: int, batch: int, sizes: list[int]
) -> None:
    ids = [f"{i:04d}" for i in range(count)]
    store.upsert_contacts(PORTAL, [contact(i) for i in reversed(ids)])
    store.upsert_contacts(OTHER, [contact("0000"), contact("9999")])
    pages = list(store.iter_contact_ids(PORTAL, batch))
    assert [len(page) for page in pages] == sizes
    assert [i for page in pages for i in page] == ids


# -- events --


def test_add_events_stores_each_event_once_and_counts_the_new_ones(store: StateStore) -> None:
    first: list[Event] = [form("c-1", 1000, "a@x.io"), opened("e-1", 2000, "a@x.io"), opened("e-1", 2000, "a@x.io")]
    assert store.add_events(PORTAL, first) == 2
    assert store.add_events(PORTAL, [opened("e-1", 2000, "a@x.io"), opened("e-2", 3000, "a@x.io")]) == 1
    assert store.add_events(PORTAL, []) == 0
    assert [e.event_id for e in store.events_for_emails(PORTAL, ["a@x.io"])["a@x.io"]] == ["c-1", "e-1", "e-2"]


def test_events_are_told_apart_by_kind_and_portal(store: StateStore) -> None:
    same_id: list[Event] = [
        form("7", 1000, "a@x.io"),
        opened("7", 2000, "a@x.io"),
        EmailEvent("7", EMAIL_CLICK, 3000, "a@x.io"),
    ]
    assert store.add_events(PORTAL, same_id) == 3
    assert store.add_events(OTHER, same_id) == 3


def test_events_read_back_with_every_field(store: StateStore) -> None:
    submission = FormSubmission(
        event_id="conv-1",
        at_ms=1_790_000_000_123,
        email="ada@example.com",
        form_id="f-demo",
        form_name="Request a demo",
        page_url="https://example.com/demo?utm=x",
    )
    click = EmailEvent(
        event_id="ev-9",
        kind=EMAIL_CLICK,
        at_ms=1_790_000_100_000,
        email="ada@example.com",
        campaign_id="cmp-55",
        url="https://example.com/pricing",
        filtered=True,
    )
    store.add_events(PORTAL, [click, submission])
    assert store.events_for_emails(PORTAL, ["ada@example.com"]) == {"ada@example.com": [submission, click]}


def test_events_are_grouped_by_lowercased_email_oldest_first(store: StateStore) -> None:
    store.add_events(
        PORTAL,
        [
            opened("e-3", 3000, "Ada@Example.com"),
            form("c-1", 1000, "ada@example.com"),
            opened("e-2", 2000, "bob@example.com"),
            opened("e-4", 4000, "eve@example.com"),
        ],
    )
    store.add_events(OTHER, [opened("e-5", 5000, "ada@example.com")])
    assert store.events_for_emails(PORTAL, ["ADA@example.com", "bob@example.com", "nobody@example.com"]) == {
        "ada@example.com": [form("c-1", 1000, "ada@example.com"), opened("e-3", 3000, "ada@example.com")],
        "bob@example.com": [opened("e-2", 2000, "bob@example.com")],
    }


def test_events_for_emails_takes_more_emails_than_one_in_list(store: StateStore) -> None:
    emails = [f"user{i}@example.com" for i in range(1200)]
    store.add_events(PORTAL, [opened(f"e-{i}", 1000 + i, email) for i, email in enumerate(emails)])
    grouped = store.events_for_emails(PORTAL, emails)
    assert sorted(grouped) == sorted(emails)
    assert all(len(found) == 1 for found in grouped.values())


def test_emails_with_events_since_lists_each_email_once(store: StateStore) -> None:
    store.add_events(
        PORTAL,
        [
            opened("e-1", 1000, "old@x.io"),
            opened("e-2", 2000, "b@x.io"),
            form("c-3", 2500, "B@x.io"),
            opened("e-4", 3000, "a@x.io"),
            opened("e-5", 3000, ""),
        ],
    )
    store.add_events(OTHER, [opened("e-6", 9000, "other@x.io")])
    assert store.emails_with_events_since(PORTAL, 2000) == ["a@x.io", "b@x.io"]


# -- the outbox --


def test_pending_writes_read_back_as_recorded(store: StateStore) -> None:
    writes = [
        pending("1", 80, lead_grade="A1"),
        PendingWrite(contact_id="2", properties={}, stage="lead", history=None),
    ]
    store.record_pending(PORTAL, "run-1", writes)
    assert store.pending_writes(PORTAL) == writes
    assert store.pending_writes(OTHER) == []


def test_a_newer_plan_replaces_a_contacts_pending_write(store: StateStore) -> None:
    store.record_pending(PORTAL, "run-1", [pending("1", 50)])
    store.record_pending(PORTAL, "run-2", [pending("1", 60)])
    assert store.pending_writes(PORTAL) == [pending("1", 60)]


def test_complete_writes_clears_the_applied_and_dead_from_the_outbox(store: StateStore) -> None:
    store.record_pending(PORTAL, "run-1", [pending("1", 10), pending("2", 20), pending("3", 30)])
    store.complete_writes(PORTAL, "run-1", [pending("1", 10)], [DeadLetter("2", {"lead_score": "20"}, "bad value")])
    assert store.pending_writes(PORTAL) == [pending("3", 30)]


def test_complete_writes_records_the_history_applied_writes_carry(store: StateStore) -> None:
    untracked = PendingWrite(contact_id="2", properties={"lead_score": "5"}, stage=None, history=None)
    store.record_pending(PORTAL, "run-1", [pending("1", 10), untracked])
    store.complete_writes(PORTAL, "run-1", [pending("1", 10), untracked], [])
    assert store.history(PORTAL, "1") == [history("1", 10)]
    assert store.history(PORTAL, "2") == []


def test_complete_writes_records_the_values_written(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [pending("1", 10, lead_grade="B2"), pending("2", 20)], [])
    assert store.written_values(PORTAL, ["1", "2", "3"]) == {
        "1": {"lead_score": "10", "lead_grade": "B2"},
        "2": {"lead_score": "20"},
    }


def test_complete_writes_records_dead_letters_with_status_and_reason(store: StateStore) -> None:
    letters = [
        DeadLetter("2", {"lead_score": "20"}, "INVALID_OPTION: lead_grade", 400),
        DeadLetter("3", {}, "contact deleted", 404),
    ]
    store.complete_writes(PORTAL, "run-1", [], letters)
    assert store.dead_letters(PORTAL) == letters
    assert store.dead_letters(OTHER) == []


def test_recent_dead_letters_counts_a_rolling_window(store: StateStore, clock: ManualClock) -> None:
    store.complete_writes(PORTAL, "run-1", [], [DeadLetter("2", {}, "gone", 404)] * 2)
    clock.advance(3600)
    store.complete_writes(PORTAL, "run-2", [], [DeadLetter("3", {}, "gone", 404)])
    assert store.recent_dead_letters(PORTAL, 86_400) == 3
    clock.advance(86_400 - 1800)  # the first two are now 24.5 hours old
    assert store.recent_dead_letters(PORTAL, 86_400) == 1
    assert store.recent_dead_letters(OTHER, 86_400) == 0
    assert len(store.dead_letters(PORTAL)) == 3  # kept for the audit


def test_complete_writes_moves_the_cursor_when_given_one(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [pending("1", 10)], [], cursor=("contacts_backfill_after", "501"))
    assert store.get_cursor(PORTAL, "contacts_backfill_after") == "501"


def _fail_at_the_cursor(monkeypatch: pytest.MonkeyPatch) -> list[DeadLetter]:
    def crash(*args: object) -> None:
        raise RuntimeError("crashed before the cursor moved")

    # The cursor is the last step: everything else of the batch has been sent when it fails.
    monkeypatch.setattr(SqlStateStore, "_put_cursor", crash)
    return [DeadLetter("2", {"lead_score": "20"}, "bad value", 400)]


def _unstorable_dead_letter(monkeypatch: pytest.MonkeyPatch) -> list[DeadLetter]:
    # Dead letters are inserted after the outbox, history and written values: a value JSON cannot encode fails there.
    return [DeadLetter("2", cast(Mapping[str, str], {"lead_score": object()}), "bad value", 400)]


@pytest.mark.parametrize("failure", [_fail_at_the_cursor, _unstorable_dead_letter], ids=["cursor", "dead-letter"])
def test_complete_writes_records_nothing_when_it_fails_midway(
    sql_store: SqlStateStore,
    monkeypatch: pytest.MonkeyPatch,
    failure: Callable[[pytest.MonkeyPatch], list[DeadLetter]],
) -> None:
    store = sql_store
    writes = [pending("1", 10), pending("2", 20)]
    store.record_pending(PORTAL, "run-1", writes)
    dead = failure(monkeypatch)
    with pytest.raises((RuntimeError, TypeError, sa.exc.StatementError)):
        store.complete_writes(PORTAL, "run-1", [writes[0]], dead, cursor=("contacts_backfill_after", "501"))
    monkeypatch.undo()
    assert store.pending_writes(PORTAL) == writes
    assert store.history(PORTAL, "1") == []
    assert store.written_values(PORTAL, ["1", "2"]) == {}
    assert store.written_stages(PORTAL, ["1", "2"]) == {}
    assert store.dead_letters(PORTAL) == []
    assert store.get_cursor(PORTAL, "contacts_backfill_after") is None


def test_complete_writes_records_the_stages_leadsync_wrote(store: StateStore) -> None:
    forward = pending("1", 60, lifecyclestage="marketingqualifiedlead")
    backward = PendingWrite(contact_id="2", properties={"lead_score": "40"}, stage="lead", history=None)
    no_stage = pending("3", 10)
    store.record_pending(PORTAL, "run-1", [forward, backward, no_stage])
    store.complete_writes(PORTAL, "run-1", [forward, backward, no_stage], [])
    assert store.written_stages(PORTAL, ["1", "2", "3", "4"]) == {"1": "marketingqualifiedlead", "2": "lead"}
    assert store.written_stages(OTHER, ["1", "2"]) == {}


def test_the_last_stage_written_wins_and_a_dead_letter_records_none(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [pending("1", 60, lifecyclestage="marketingqualifiedlead")], [])
    store.complete_writes(PORTAL, "run-2", [pending("1", 90, lifecyclestage="salesqualifiedlead")], [])
    store.complete_writes(PORTAL, "run-3", [], [DeadLetter("1", {"lifecyclestage": "lead"}, "refused", 400)])
    assert store.written_stages(PORTAL, ["1"]) == {"1": "salesqualifiedlead"}


def test_a_contact_read_again_keeps_the_stage_leadsync_wrote(store: StateStore) -> None:
    # Unlike written values: whether HubSpot still holds that stage is for the caller to compare.
    store.complete_writes(PORTAL, "run-1", [pending("1", 60, lifecyclestage="marketingqualifiedlead")], [])
    store.upsert_contacts(PORTAL, [Contact("1", {}, "a@x.com", lifecycle_stage="salesqualifiedlead")])
    assert store.written_stages(PORTAL, ["1"]) == {"1": "marketingqualifiedlead"}


def test_written_values_merge_per_property(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [pending("1", 10, lead_grade="B2", lead_reasons="fit")], [])
    store.complete_writes(PORTAL, "run-2", [pending("1", 30, lead_grade="")], [])
    store.complete_writes(OTHER, "run-3", [pending("1", 99)], [])
    assert store.written_values(PORTAL, ["1"]) == {"1": {"lead_score": "30", "lead_grade": "", "lead_reasons": "fit"}}


def test_a_contact_read_again_from_hubspot_supersedes_what_we_remember_writing(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [pending("1", 10), pending("2", 20)], [])
    store.upsert_contacts(PORTAL, [contact("1", "a@x.com", lead_score="")])  # someone cleared it in HubSpot
    assert store.written_values(PORTAL, ["1", "2"]) == {"2": {"lead_score": "20"}}


def test_history_lists_a_contacts_changes_oldest_first(store: StateStore) -> None:
    rows = [history("1", 10, None, "run-1"), history("1", 40, 10, "run-2"), history("1", 25, 40, "run-3")]
    for row in rows:  # the clock stands still: the order cannot come from timestamps
        write = PendingWrite(contact_id="1", properties={"lead_score": str(row.new_score)}, stage=None, history=row)
        store.complete_writes(PORTAL, row.run_id, [write], [])
    store.complete_writes(PORTAL, "run-4", [pending("2", 70)], [])
    assert store.history(PORTAL, "1") == rows


def moved(contact_id: str, run_id: str, stage_from: str | None, stage_to: str | None) -> PendingWrite:
    """A written score whose history row moved the contact's stage (stage_from None: a row without it)."""
    row = history(contact_id, 60, run_id=run_id)
    breakdown = {"score": 60} if stage_from is None else {"score": 60, "stage_from": stage_from}
    row = HistoryRow(**{**row.__dict__, "stage": stage_to, "breakdown": breakdown})
    return PendingWrite(contact_id=contact_id, properties={"lead_score": "60"}, stage=None, history=row)


def test_stage_transitions_count_each_runs_moves_from_and_to(store: StateStore) -> None:
    store.complete_writes(
        PORTAL,
        "run-1",
        [
            moved("1", "run-1", "lead", "marketingqualifiedlead"),
            moved("2", "run-1", "lead", "marketingqualifiedlead"),
            moved("3", "run-1", "", "salesqualifiedlead"),
            moved("4", "run-1", "lead", None),  # a score change without a stage move
        ],
        [],
    )
    store.complete_writes(PORTAL, "run-2", [moved("1", "run-2", "marketingqualifiedlead", "salesqualifiedlead")], [])
    store.complete_writes(PORTAL, "run-3", [moved("5", "run-3", "lead", "marketingqualifiedlead")], [])
    store.complete_writes(OTHER, "run-2", [moved("9", "run-2", "lead", "salesqualifiedlead")], [])
    assert store.stage_transitions(PORTAL, ["run-2", "run-1", "run-404"]) == [
        StageTransition("run-2", "marketingqualifiedlead", "salesqualifiedlead", 1),
        StageTransition("run-1", "lead", "marketingqualifiedlead", 2),
        StageTransition("run-1", "", "salesqualifiedlead", 1),
    ]


def test_stage_transitions_of_rows_without_the_stage_they_came_from(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [moved("1", "run-1", None, "salesqualifiedlead")], [])
    assert store.stage_transitions(PORTAL, ["run-1"]) == [StageTransition("run-1", None, "salesqualifiedlead", 1)]
    assert store.stage_transitions(PORTAL, []) == []


# -- dead letters retried --


def refused(contact_id: str) -> DeadLetter:
    return DeadLetter(contact_id, {"lead_score": "20"}, "INVALID_OPTION: lead_grade", 400)


def test_a_dead_letter_is_taken_for_a_retry_once_due(store: StateStore, clock: ManualClock) -> None:
    store.complete_writes(PORTAL, "run-1", [], [refused("1")])
    assert store.begin_dead_letter_retries(PORTAL, 10) == []  # the first wait is 15 minutes
    clock.advance(DEAD_LETTER_FIRST_WAIT.total_seconds())
    (taken,) = store.begin_dead_letter_retries(PORTAL, 10)
    assert (taken.contact_id, taken.state, taken.attempts) == ("1", "retrying", 0)
    # A run that stopped left it retrying: the next one takes it again.
    assert [r.id for r in store.begin_dead_letter_retries(PORTAL, 10)] == [taken.id]
    assert store.begin_dead_letter_retries(OTHER, 10) == []


def test_a_retry_refused_again_counts_an_attempt_and_waits_longer(store: StateStore, clock: ManualClock) -> None:
    store.complete_writes(PORTAL, "run-1", [], [refused("1")])
    clock.advance(DEAD_LETTER_FIRST_WAIT.total_seconds())
    (taken,) = store.begin_dead_letter_retries(PORTAL, 10)
    store.complete_writes(PORTAL, "run-2", [], [refused("1")])
    (letter,) = store.dead_letter_records(PORTAL)
    assert (letter.id, letter.state, letter.attempts) == (taken.id, "open", 1)
    assert letter.next_attempt_at == clock.now() + dead_letter_wait(1)


def test_a_retry_hubspot_takes_resolves_the_letter_and_the_rest_close_as_told(
    store: StateStore, clock: ManualClock
) -> None:
    store.complete_writes(PORTAL, "run-1", [], [refused("1"), refused("2")])
    clock.advance(DEAD_LETTER_FIRST_WAIT.total_seconds())
    assert len(store.begin_dead_letter_retries(PORTAL, 10)) == 2
    store.complete_writes(PORTAL, "run-2", [pending("1", 30)], [])
    assert store.finish_dead_letter_retries(PORTAL, ["1", "2"], "nothing to write any more") == 1
    states = {r.contact_id: (r.state, r.note) for r in store.dead_letter_records(PORTAL)}
    assert states == {"1": ("resolved", "written by run run-2"), "2": ("resolved", "nothing to write any more")}


def test_a_letter_refused_at_every_retry_is_given_up_and_an_operator_may_reopen_it(
    store: StateStore, clock: ManualClock
) -> None:
    store.complete_writes(PORTAL, "run-1", [], [refused("1")])
    for attempt in range(DEAD_LETTER_MAX_ATTEMPTS):
        clock.advance(dead_letter_wait(attempt).total_seconds())
        assert len(store.begin_dead_letter_retries(PORTAL, 10)) == 1
        store.complete_writes(PORTAL, f"run-{attempt + 2}", [], [refused("1")])
    (letter,) = store.dead_letter_records(PORTAL)
    assert (letter.state, letter.attempts, letter.next_attempt_at) == ("given_up", DEAD_LETTER_MAX_ATTEMPTS, None)
    assert store.make_dead_letters_due(PORTAL, [letter.id]) == [letter.id]
    assert [r.state for r in store.begin_dead_letter_retries(PORTAL, 10)] == ["retrying"]


def test_a_dropped_letter_stays_closed(store: StateStore) -> None:
    store.complete_writes(PORTAL, "run-1", [], [refused("1"), refused("2")])
    first, second = (r.id for r in store.dead_letter_records(PORTAL))
    assert store.drop_dead_letters(PORTAL, [first, 404]) == [first]
    assert store.drop_dead_letters(OTHER, [second]) == []  # another portal's ids change nothing
    assert store.make_dead_letters_due(PORTAL, [first, second]) == [second]
    assert [r.id for r in store.dead_letter_records(PORTAL, states=["dropped"])] == [first]
    assert len(store.dead_letters(PORTAL)) == 2  # kept for the audit


# -- runs --


def test_a_run_is_recorded_as_running_then_finished(store: StateStore, clock: ManualClock) -> None:
    store.start_run(RunRecord(run_id="r-1", portal_id=PORTAL, kind="full", started_at=T0))
    assert store.last_runs(PORTAL) == [RunRecord(run_id="r-1", portal_id=PORTAL, kind="full", started_at=T0)]
    clock.advance(90)
    store.finish_run("r-1", "failed", {"pulled": 500, "written": 20}, "HubSpot said 401")
    assert store.last_runs(PORTAL) == [
        RunRecord(
            run_id="r-1",
            portal_id=PORTAL,
            kind="full",
            started_at=T0,
            finished_at=T0 + timedelta(seconds=90),
            status="failed",
            counts={"pulled": 500, "written": 20},
            error="HubSpot said 401",
        )
    ]


def test_last_runs_are_the_portals_newest_first(store: StateStore) -> None:
    for minute in (5, 1, 3, 2, 4):
        store.start_run(RunRecord(f"r-{minute}", PORTAL, "incremental", T0 + timedelta(minutes=minute)))
    store.start_run(RunRecord("theirs", OTHER, "incremental", T0 + timedelta(minutes=9)))
    assert [run.run_id for run in store.last_runs(PORTAL, limit=3)] == ["r-5", "r-4", "r-3"]


def test_run_times_come_back_in_utc(store: StateStore) -> None:
    paris = T0.astimezone(timezone(timedelta(hours=2)))
    store.start_run(RunRecord("r-1", PORTAL, "rescore", paris))
    started = store.last_runs(PORTAL)[0].started_at
    assert (started, started.tzinfo) == (T0, UTC)


def test_finishing_a_run_that_never_started_is_an_error(store: StateStore) -> None:
    with pytest.raises(LookupError, match="r-404"):
        store.finish_run("r-404", "ok", {})


# -- leases --


def test_a_free_lease_is_taken(store: StateStore) -> None:
    assert store.acquire_lease(PORTAL, "worker-a", 60)


def test_a_held_lease_is_refused_to_another_holder(store: StateStore, clock: ManualClock) -> None:
    store.acquire_lease(PORTAL, "worker-a", 60)
    clock.advance(59)
    assert not store.acquire_lease(PORTAL, "worker-b", 60)
    assert store.acquire_lease(OTHER, "worker-b", 60)


def test_an_expired_lease_is_taken_over(store: StateStore, clock: ManualClock) -> None:
    store.acquire_lease(PORTAL, "worker-a", 60)
    clock.advance(61)
    assert store.acquire_lease(PORTAL, "worker-b", 60)
    assert not store.acquire_lease(PORTAL, "worker-a", 60)


def test_the_holder_renews_its_lease(store: StateStore, clock: ManualClock) -> None:
    store.acquire_lease(PORTAL, "worker-a", 60)
    clock.advance(50)
    assert store.acquire_lease(PORTAL, "worker-a", 60)
    clock.advance(50)  # past the first expiry, within the renewed one
    assert not store.acquire_lease(PORTAL, "worker-b", 60)


def test_only_the_holder_releases_its_lease(store: StateStore) -> None:
    store.acquire_lease(PORTAL, "worker-a", 60)
    store.release_lease(PORTAL, "worker-b")
    assert not store.acquire_lease(PORTAL, "worker-b", 60)
    store.release_lease(PORTAL, "worker-a")
    assert store.acquire_lease(PORTAL, "worker-b", 60)


def test_a_contended_lease_goes_to_exactly_one_of_two_stores(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    for portal in range(1, 9):
        won = in_parallel(
            partial(first.acquire_lease, portal, "worker-a", 60),
            partial(second.acquire_lease, portal, "worker-b", 60),
        )
        assert sorted(won) == [False, True], f"portal {portal}: {won}"


# -- the daily API budget --


def test_api_calls_from_two_stores_add_up(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    totals = in_parallel(
        lambda: [first.add_api_calls(PORTAL, "2026-11-01", 1) for _ in range(40)],
        lambda: [second.add_api_calls(PORTAL, "2026-11-01", 1) for _ in range(40)],
    )
    # Every addition saw a total of its own: none was lost or counted twice.
    assert sorted(totals[0] + totals[1]) == list(range(1, 81))
    assert first.add_api_calls(PORTAL, "2026-11-01", 0) == 80


def test_api_calls_are_counted_per_portal_and_day(store: StateStore) -> None:
    assert store.add_api_calls(PORTAL, "2026-11-01", 500) == 500
    assert store.add_api_calls(PORTAL, "2026-11-01", 250) == 750
    assert store.add_api_calls(PORTAL, "2026-11-02", 10) == 10
    assert store.add_api_calls(OTHER, "2026-11-01", 7) == 7


# -- the installation's log key --


def test_the_log_key_is_32_bytes_made_once_and_read_back_alike(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    key = first.log_key()
    assert len(key) == 32 and key == first.log_key() == second.log_key()


def test_two_stores_asking_at_once_get_one_log_key(make_store: MakeStore) -> None:
    first, second = make_store(), make_store()
    keys = in_parallel(first.log_key, second.log_key)
    assert keys[0] == keys[1]
