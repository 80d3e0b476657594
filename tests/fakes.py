"""Fakes for the ports and the fixtures every suite shares (a pytest plugin, registered by tests/conftest.py).

- ManualClock: the one clock of the tests; time moves only when a test moves it.
- MemoryStore: every role of the StateStore port in dictionaries, for unit tests of the cycle (the store's
  contract suite runs on it too, beside SQLite and PostgreSQL).
- FakeCrm: CrmSource and CrmWriter over a sandbox Portal object in this process, mapped the way the HubSpot
  adapter maps HubSpot's answers (sync.hubspot.shapes), without HTTP, retries or rate limits.
- The PostgreSQL fixtures: `pg_url` skips a test when the server is not reachable and fails it instead when
  CI=true, so CI never passes by skipping; `pg_schema_url` gives each test a schema of its own (the URL's
  connections get it as their search_path), dropped afterwards, so runs repeat and go in parallel.
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from sync.core.conditions import parse_date_ms
from sync.core.model import (
    Company,
    CompanyAssociation,
    Contact,
    EmailEvent,
    Event,
    FormSubmission,
    PropertyUpdate,
    StageChange,
)
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import LeaseLostError, SkippableRecordError, UnownedWriteError
from sync.hubspot.refusals import OBJECT_NOT_FOUND, not_found_reason
from sync.hubspot.shapes import (
    COMPANY_LAST_MODIFIED,
    CONVERSION_PROPERTIES,
    LAST_MODIFIED,
    RECENT_CONVERSION_DATE,
    company_from_wire,
    contact_from_wire,
    conversion_from_wire,
    email_event_from_wire,
    submission_from_wire,
)
from sync.ports import (
    AccountInfo,
    CompanyPage,
    ContactPage,
    ConversionPage,
    DeadLetter,
    DeadLetterRecord,
    EventPage,
    Fence,
    HistoryRow,
    LeaseRow,
    PendingWrite,
    PropertyInfo,
    PropertySpec,
    RunRecord,
    StageTransition,
    SubmissionPage,
    WriteOutcome,
)
from sync.sandbox import Portal as SandboxPortal
from sync.sandbox.wire import ApiError
from sync.store.schema import database_url
from sync.store.state import DEAD_LETTER_MAX_ATTEMPTS as MAX_ATTEMPTS
from sync.store.state import (
    DROPPED,
    GIVEN_UP,
    OPEN,
    RESOLVED,
    RETRYING,
    dead_letter_wait,
    normalize_email,
)

R = TypeVar("R")

START = datetime(2026, 9, 21, 12, 53, 20, tzinfo=UTC)  # 1_790_000_000 s since the epoch
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


# -- the clock --


class ManualClock:
    """Stands still until a test moves it. A `Clock` (now()) and, for what takes a number, the callables
    seconds() (epoch seconds, as time.time), monotonic() and sleep() (which moves it, adding to `slept`)."""

    def __init__(self, at: datetime | float = START) -> None:
        seconds = at.timestamp() if isinstance(at, datetime) else at
        self._us = round(seconds * 1_000_000)  # whole microseconds: moving by a millisecond is exact
        self.slept = 0.0

    @classmethod
    def at_ms(cls, ms: int) -> ManualClock:
        return cls(ms / 1000)

    def now(self) -> datetime:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self._us)

    def seconds(self) -> float:
        return self._us / 1_000_000

    def monotonic(self) -> float:
        return self.seconds()

    @property
    def ms(self) -> int:
        return self._us // 1000

    @ms.setter
    def ms(self, value: int) -> None:
        self._us = value * 1000

    def set(self, at: datetime) -> None:
        self._us = round(at.timestamp() * 1_000_000)

    def advance(self, seconds: float) -> None:
        self._us += round(seconds * 1_000_000)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        self.slept += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


# -- PostgreSQL --


def in_parallel(*calls: Callable[[], R]) -> list[R]:
    """Run the calls in threads released together, so they really contend; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], R]) -> R:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _unreachable(url: str) -> str | None:
    engine = sa.create_engine(database_url(url), poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.SQLAlchemyError as exc:
        return str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).strip().splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test server's URL ($LEADSYNC_TEST_PG_URL or a local default); skipped if unreachable, failed if CI=true."""
    url = os.environ.get("LEADSYNC_TEST_PG_URL", DEFAULT_PG_URL)
    problem = _unreachable(url)
    if problem is not None:
        shown = database_url(url).render_as_string(hide_password=True)
        message = f"PostgreSQL not reachable at {shown}; set LEADSYNC_TEST_PG_URL ({problem})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def pg_admin(pg_url: str) -> Iterator[sa.Engine]:
    # One pooled engine for creating and dropping the tests' schemas: a connection per test would add up.
    engine = sa.create_engine(database_url(pg_url), pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema_url(pg_url: str, pg_admin: sa.Engine) -> Iterator[str]:
    """A URL whose connections work in a schema of their own, created for this test and dropped after it."""
    name = f"leadsync_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    base = database_url(pg_url)
    options = " ".join(filter(None, [str(base.query.get("options", "")), f"-csearch_path={name}"]))
    yield base.update_query_dict({"options": options}).render_as_string(hide_password=False)
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


# -- the state store --


class MemoryStore:
    """Every role of the StateStore port, in dictionaries behind one lock; times from the given clock.

    It keeps the SQL store's semantics (emails lowercased, events deduplicated by kind and id, the outbox
    completed in one step, dead-letter backoff, expiring leases) but not its durability: one process, one
    object (open it once and share it where the SQL suite opens two stores on one database).
    """

    def __init__(self, clock: ManualClock | None = None) -> None:
        self._clock = clock or ManualClock()
        self._lock = threading.RLock()
        self._cursors: dict[tuple[int, str], str] = {}
        self._contacts: dict[int, dict[str, Contact]] = {}
        self._events: dict[int, dict[tuple[str, str], Event]] = {}
        self._outbox: dict[int, dict[str, PendingWrite]] = {}
        self._history: dict[int, list[HistoryRow]] = {}
        self._written: dict[int, dict[str, dict[str, str]]] = {}
        self._stages: dict[int, dict[str, str]] = {}
        self._letters: dict[int, tuple[int, DeadLetterRecord]] = {}  # id -> (portal, letter)
        self._runs: dict[str, RunRecord] = {}
        self._leases: dict[int, LeaseRow] = {}
        self._replicas: dict[str, datetime] = {}  # holder -> heartbeat expiry
        self._api: dict[tuple[int, str], int] = {}
        self._log_key: bytes | None = None
        self._companies: dict[int, dict[str, Company]] = {}
        self._associations: dict[int, dict[tuple[str, str], bool]] = {}  # (contact, company) -> primary
        self._stale: dict[int, set[str]] = {}
        self._company_outbox: dict[int, dict[str, PendingWrite]] = {}
        self._company_written: dict[int, dict[str, dict[str, str]]] = {}
        self._company_history: dict[int, list[HistoryRow]] = {}
        self._company_letters: dict[int, list[DeadLetter]] = {}

    def _now(self) -> datetime:
        return self._clock.now()

    # -- cursors --

    def get_cursor(self, portal_id: int, stream: str) -> str | None:
        with self._lock:
            return self._cursors.get((portal_id, stream))

    def set_cursor(self, portal_id: int, stream: str, value: str) -> None:
        with self._lock:
            self._cursors[(portal_id, stream)] = value

    # -- contacts --

    def upsert_contacts(self, portal_id: int, contacts: Sequence[Contact]) -> None:
        with self._lock:
            stored = self._contacts.setdefault(portal_id, {})
            written = self._written.setdefault(portal_id, {})
            for c in contacts:
                email = normalize_email(c.email)
                stored[c.id] = Contact(
                    c.id, dict(c.properties), email, c.created_at_ms, c.lifecycle_stage, frozenset(c.list_ids)
                )
                # As in SQL: a contact read again shows what HubSpot holds now, our last writes included.
                written.pop(c.id, None)

    def get_contacts(self, portal_id: int, ids: Sequence[str]) -> list[Contact]:
        with self._lock:
            stored = self._contacts.get(portal_id, {})
            return [stored[i] for i in dict.fromkeys(ids) if i in stored]

    def contacts_by_email(self, portal_id: int, emails: Sequence[str]) -> list[Contact]:
        wanted = {normalize_email(e) for e in emails} - {""}
        with self._lock:
            found = [c for c in self._contacts.get(portal_id, {}).values() if c.email in wanted]
        return sorted(found, key=lambda c: c.id)

    def iter_contact_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]:
        if batch < 1:
            raise ValueError(f"batch must be positive, not {batch}")
        with self._lock:
            ids = sorted(self._contacts.get(portal_id, {}))
        for start in range(0, len(ids), batch):
            yield ids[start : start + batch]

    # -- events --

    def add_events(self, portal_id: int, events: Sequence[Event]) -> int:
        with self._lock:
            stored = self._events.setdefault(portal_id, {})
            new = 0
            for e in events:
                if (e.kind, e.event_id) not in stored:
                    stored[(e.kind, e.event_id)] = _with_email(e, normalize_email(e.email))
                    new += 1
            return new

    def events_for_emails(self, portal_id: int, emails: Sequence[str]) -> dict[str, list[Event]]:
        wanted = {normalize_email(e) for e in emails} - {""}
        with self._lock:
            found = [e for e in self._events.get(portal_id, {}).values() if e.email in wanted]
        grouped: dict[str, list[Event]] = {}
        for e in sorted(found, key=lambda e: (e.email, e.at_ms, e.kind, e.event_id)):
            grouped.setdefault(e.email, []).append(e)
        return grouped

    def emails_with_events_since(self, portal_id: int, since_ms: int) -> list[str]:
        with self._lock:
            events = list(self._events.get(portal_id, {}).values())
        return sorted({e.email for e in events if e.at_ms >= since_ms and e.email})

    # -- the outbox and the history --

    def record_pending(
        self, portal_id: int, run_id: str, writes: Sequence[PendingWrite], *, fence: Fence | None = None
    ) -> None:
        with self._lock:
            self._fenced(fence, "recording planned writes")
            outbox = self._outbox.setdefault(portal_id, {})
            for w in writes:
                outbox[w.contact_id] = PendingWrite(w.contact_id, dict(w.properties), w.stage, w.history)

    def pending_writes(self, portal_id: int) -> list[PendingWrite]:
        with self._lock:
            outbox = self._outbox.get(portal_id, {})
            return [outbox[cid] for cid in sorted(outbox)]

    def complete_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        cursor: tuple[str, str] | None = None,
        *,
        fence: Fence | None = None,
    ) -> None:
        now = self._now()
        with self._lock:
            self._fenced(fence, "completing contact writes")
            outbox = self._outbox.setdefault(portal_id, {})
            for cid in {w.contact_id for w in applied} | {d.contact_id for d in dead}:
                outbox.pop(cid, None)
            self._history.setdefault(portal_id, []).extend(w.history for w in applied if w.history is not None)
            written = self._written.setdefault(portal_id, {})
            stages = self._stages.setdefault(portal_id, {})
            for w in applied:
                written.setdefault(w.contact_id, {}).update(w.properties)
                stage = w.stage or w.properties.get(LIFECYCLE_STAGE)
                if stage:
                    stages[w.contact_id] = stage
            for letter in self._settle_retries(portal_id, run_id, applied, dead, now):
                self._add_letter(portal_id, letter, now)
            if cursor is not None:
                self._cursors[(portal_id, cursor[0])] = cursor[1]

    def _add_letter(self, portal_id: int, letter: DeadLetter, now: datetime) -> None:
        letter_id = len(self._letters) + 1
        record = DeadLetterRecord(
            letter_id,
            letter.contact_id,
            dict(letter.properties),
            letter.reason,
            letter.status,
            OPEN,
            0,
            now,
            now + dead_letter_wait(0),
        )
        self._letters[letter_id] = (portal_id, record)

    def _settle_retries(
        self, portal_id: int, run_id: str, applied: Sequence[PendingWrite], dead: Sequence[DeadLetter], now: datetime
    ) -> list[DeadLetter]:
        """As the SQL store: a contact refused again counts an attempt on its retrying letters, one written
        closes them; returns the dead letters that are new."""
        retrying = [r for pid, r in self._letters.values() if pid == portal_id and r.state == RETRYING]
        new: list[DeadLetter] = []
        for letter in dead:
            mine = [r for r in retrying if r.contact_id == letter.contact_id]
            if not mine:
                new.append(letter)
            for r in mine:
                attempts = r.attempts + 1
                given_up = attempts >= MAX_ATTEMPTS
                self._letters[r.id] = (
                    portal_id,
                    replace(
                        r,
                        properties=dict(letter.properties),
                        status=letter.status,
                        reason=letter.reason,
                        attempts=attempts,
                        state=GIVEN_UP if given_up else OPEN,
                        next_attempt_at=None if given_up else now + dead_letter_wait(attempts),
                        closed_at=now if given_up else None,
                        note=f"given up after {attempts} refused retries" if given_up else None,
                    ),
                )
            retrying = [r for r in retrying if r.contact_id != letter.contact_id]
        written = {w.contact_id for w in applied}
        note = f"written by run {run_id}"
        for r in retrying:
            if r.contact_id in written:
                self._letters[r.id] = (
                    portal_id,
                    replace(r, state=RESOLVED, next_attempt_at=None, closed_at=now, note=note),
                )
        return new

    def written_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        with self._lock:
            written = self._written.get(portal_id, {})
            return {cid: dict(written[cid]) for cid in dict.fromkeys(ids) if cid in written}

    def written_stages(self, portal_id: int, ids: Sequence[str]) -> dict[str, str]:
        with self._lock:
            stages = self._stages.get(portal_id, {})
            return {cid: stages[cid] for cid in dict.fromkeys(ids) if cid in stages}

    def history(self, portal_id: int, contact_id: str) -> list[HistoryRow]:
        with self._lock:
            return [h for h in self._history.get(portal_id, []) if h.contact_id == contact_id]

    def stage_transitions(self, portal_id: int, run_ids: Sequence[str]) -> list[StageTransition]:
        order = {run_id: i for i, run_id in enumerate(dict.fromkeys(run_ids))}
        counts: dict[tuple[str, str | None, str], int] = {}
        with self._lock:
            for h in self._history.get(portal_id, []):
                if h.run_id in order and h.stage is not None:
                    came_from = h.breakdown.get("stage_from")
                    key = (h.run_id, None if came_from is None else str(came_from), h.stage)
                    counts[key] = counts.get(key, 0) + 1
        found = [StageTransition(run, came, to, n) for (run, came, to), n in counts.items()]
        return sorted(found, key=lambda t: (order[t.run_id], -t.contacts, t.stage_from or "", t.stage_to))

    # -- dead letters --

    def _portal_letters(self, portal_id: int) -> list[DeadLetterRecord]:
        return [r for pid, r in sorted(self._letters.values(), key=lambda pr: pr[1].id) if pid == portal_id]

    def dead_letters(self, portal_id: int) -> list[DeadLetter]:
        with self._lock:
            return [DeadLetter(r.contact_id, r.properties, r.reason, r.status) for r in self._portal_letters(portal_id)]

    def recent_dead_letters(self, portal_id: int, within_s: float) -> int:
        since = self._now() - timedelta(seconds=within_s)
        with self._lock:
            return sum(1 for r in self._portal_letters(portal_id) if r.recorded_at >= since)

    def dead_letter_records(
        self, portal_id: int, ids: Sequence[int] | None = None, states: Sequence[str] | None = None
    ) -> list[DeadLetterRecord]:
        with self._lock:
            return [
                r
                for r in self._portal_letters(portal_id)
                if (ids is None or r.id in ids) and (states is None or r.state in states)
            ]

    def begin_dead_letter_retries(self, portal_id: int, limit: int) -> list[DeadLetterRecord]:
        now = self._now()
        with self._lock:
            due = [
                r
                for r in self._portal_letters(portal_id)
                if r.state == RETRYING or (r.state == OPEN and (r.next_attempt_at is None or r.next_attempt_at <= now))
            ]
            # Unset times first, as SQLite orders them.
            due.sort(key=lambda r: (r.next_attempt_at is not None, r.next_attempt_at or now, r.id))
            taken = [replace(r, state=RETRYING) for r in due[:limit]]
            for r in taken:
                self._letters[r.id] = (portal_id, r)
            return taken

    def finish_dead_letter_retries(self, portal_id: int, contact_ids: Sequence[str], note: str) -> int:
        wanted = set(contact_ids)
        changes = {"state": RESOLVED, "next_attempt_at": None, "closed_at": self._now(), "note": note}
        with self._lock:
            chosen = [r.id for r in self._portal_letters(portal_id) if r.state == RETRYING and r.contact_id in wanted]
            return len(self._change_letters(portal_id, chosen, (RETRYING,), changes))

    def make_dead_letters_due(self, portal_id: int, ids: Sequence[int]) -> list[int]:
        changes = {"state": OPEN, "next_attempt_at": self._now(), "closed_at": None, "note": None}
        with self._lock:
            return self._change_letters(portal_id, ids, (OPEN, GIVEN_UP), changes)

    def drop_dead_letters(self, portal_id: int, ids: Sequence[int]) -> list[int]:
        now = self._now()
        changes = {"state": DROPPED, "next_attempt_at": None, "closed_at": now, "note": "dropped by an operator"}
        with self._lock:
            return self._change_letters(portal_id, ids, (OPEN, RETRYING, GIVEN_UP), changes)

    def _change_letters(
        self, portal_id: int, ids: Sequence[int], states: Sequence[str], changes: Mapping[str, Any]
    ) -> list[int]:
        changed: list[int] = []
        for letter_id in sorted(set(ids)):
            pid, record = self._letters.get(letter_id, (None, None))
            if pid == portal_id and record is not None and record.state in states:
                self._letters[letter_id] = (portal_id, replace(record, **changes))
                changed.append(letter_id)
        return changed

    # -- companies --

    def upsert_companies(self, portal_id: int, companies: Sequence[Company]) -> None:
        with self._lock:
            stored = self._companies.setdefault(portal_id, {})
            written = self._company_written.setdefault(portal_id, {})
            for c in companies:
                stored[c.id] = Company(c.id, dict(c.properties))
                written.pop(c.id, None)

    def get_companies(self, portal_id: int, ids: Sequence[str]) -> list[Company]:
        with self._lock:
            stored = self._companies.get(portal_id, {})
            return [stored[i] for i in dict.fromkeys(ids) if i in stored]

    def remove_companies(self, portal_id: int, ids: Sequence[str]) -> None:
        gone = set(ids)
        with self._lock:
            for company_id in gone:
                self._companies.get(portal_id, {}).pop(company_id, None)
                self._company_written.get(portal_id, {}).pop(company_id, None)
            self._stale.setdefault(portal_id, set()).difference_update(gone)
            links = self._associations.setdefault(portal_id, {})
            for key in [k for k in links if k[1] in gone]:
                del links[key]

    def iter_company_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]:
        if batch < 1:
            raise ValueError(f"batch must be positive, not {batch}")
        with self._lock:
            ids = sorted(self._companies.get(portal_id, {}))
        for start in range(0, len(ids), batch):
            yield ids[start : start + batch]

    def set_company_associations(
        self, portal_id: int, contact_ids: Sequence[str], associations: Sequence[CompanyAssociation]
    ) -> None:
        with self._lock:
            links = self._associations.setdefault(portal_id, {})
            replaced = {*contact_ids, *(a.contact_id for a in associations)}
            for key in [k for k in links if k[0] in replaced]:
                del links[key]
            for a in associations:
                key = (a.contact_id, a.company_id)
                links[key] = links.get(key, False) or a.primary

    def company_associations(self, portal_id: int, contact_ids: Sequence[str]) -> list[CompanyAssociation]:
        wanted = set(contact_ids)
        with self._lock:
            links = dict(self._associations.get(portal_id, {}))
        return [CompanyAssociation(c, k, p) for (c, k), p in sorted(links.items()) if c in wanted]

    def iter_company_contact_ids(self, portal_id: int, company_id: str, batch: int = 1000) -> Iterator[list[str]]:
        if batch < 1:
            raise ValueError(f"batch must be positive, not {batch}")
        with self._lock:
            ids = sorted(c for c, k in self._associations.get(portal_id, {}) if k == company_id)
        for start in range(0, len(ids), batch):
            yield ids[start : start + batch]

    def mark_companies_stale(self, portal_id: int, company_ids: Sequence[str]) -> None:
        with self._lock:
            self._stale.setdefault(portal_id, set()).update(company_ids)

    def stale_companies(self, portal_id: int, limit: int) -> list[str]:
        with self._lock:
            return sorted(self._stale.get(portal_id, set()))[:limit]

    def record_company_pending(
        self, portal_id: int, run_id: str, writes: Sequence[PendingWrite], *, fence: Fence | None = None
    ) -> None:
        with self._lock:
            self._fenced(fence, "recording planned writes")
            outbox = self._company_outbox.setdefault(portal_id, {})
            for w in writes:
                outbox[w.contact_id] = PendingWrite(w.contact_id, dict(w.properties), None, w.history)

    def pending_company_writes(self, portal_id: int) -> list[PendingWrite]:
        with self._lock:
            outbox = self._company_outbox.get(portal_id, {})
            return [outbox[cid] for cid in sorted(outbox)]

    def complete_company_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        rescored: Sequence[str] = (),
        *,
        fence: Fence | None = None,
    ) -> None:
        with self._lock:
            self._fenced(fence, "completing company writes")
            outbox = self._company_outbox.setdefault(portal_id, {})
            for cid in {w.contact_id for w in applied} | {d.contact_id for d in dead}:
                outbox.pop(cid, None)
            self._stale.setdefault(portal_id, set()).difference_update(rescored)
            self._company_history.setdefault(portal_id, []).extend(w.history for w in applied if w.history)
            written = self._company_written.setdefault(portal_id, {})
            for w in applied:
                written.setdefault(w.contact_id, {}).update(w.properties)
            self._company_letters.setdefault(portal_id, []).extend(dead)

    def written_company_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        with self._lock:
            written = self._company_written.get(portal_id, {})
            return {i: dict(written[i]) for i in ids if i in written}

    def company_history(self, portal_id: int, company_id: str) -> list[HistoryRow]:
        with self._lock:
            return [h for h in self._company_history.get(portal_id, []) if h.contact_id == company_id]

    def company_dead_letters(self, portal_id: int) -> list[DeadLetter]:
        with self._lock:
            return list(self._company_letters.get(portal_id, []))

    # -- runs --

    def start_run(self, run: RunRecord) -> None:
        with self._lock:
            if run.run_id in self._runs:
                raise ValueError(f"run {run.run_id!r} started twice")
            self._runs[run.run_id] = replace(run, started_at=run.started_at.astimezone(UTC), counts=dict(run.counts))

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int], error: str | None = None) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                raise LookupError(f"no run {run_id!r} to finish: start_run was not called for it")
            self._runs[run_id] = replace(run, status=status, counts=dict(counts), error=error, finished_at=self._now())

    def last_runs(self, portal_id: int, limit: int = 10) -> list[RunRecord]:
        with self._lock:
            runs = [r for r in self._runs.values() if r.portal_id == portal_id]
        return sorted(runs, key=lambda r: (r.started_at, r.run_id), reverse=True)[:limit]

    # -- leases, their fences, and the replicas' heartbeats --

    def acquire_lease(self, portal_id: int, holder: str, ttl_s: float) -> bool:
        return self.acquire_fence(portal_id, holder, ttl_s) is not None

    def acquire_fence(self, portal_id: int, holder: str, ttl_s: float, *, new_epoch: bool = False) -> Fence | None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        with self._lock:
            current = self._leases.get(portal_id)
            if current is None:
                epoch = 1
            elif current.holder == holder and current.expires_at >= now:
                epoch = current.epoch + 1 if new_epoch else current.epoch  # a renewal
            elif current.expires_at < now:
                epoch = current.epoch + 1
            else:
                return None
            self._leases[portal_id] = LeaseRow(portal_id, holder, epoch, now + timedelta(seconds=ttl_s))
            return Fence(portal_id, holder, epoch)

    def renew_leases(self, holder: str, portal_ids: Sequence[int], ttl_s: float) -> dict[int, int]:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        renewed: dict[int, int] = {}
        with self._lock:
            for pid in portal_ids:
                row = self._leases.get(pid)
                if row is not None and row.holder == holder and row.expires_at >= now:
                    self._leases[pid] = replace(row, expires_at=now + timedelta(seconds=ttl_s))
                    renewed[pid] = row.epoch
        return renewed

    def check_fence(self, fence: Fence) -> bool:
        now = self._now()
        with self._lock:
            row = self._leases.get(fence.portal_id)
            return row is not None and (row.holder, row.epoch) == (fence.holder, fence.epoch) and row.expires_at >= now

    def release_lease(self, portal_id: int, holder: str, epoch: int | None = None) -> None:
        with self._lock:
            row = self._leases.get(portal_id)
            if row is not None and row.holder == holder and epoch in (None, row.epoch):
                self._leases[portal_id] = replace(row, expires_at=datetime(1970, 1, 1, tzinfo=UTC))

    def leases(self) -> list[LeaseRow]:
        with self._lock:
            return [self._leases[pid] for pid in sorted(self._leases)]

    def heartbeat(self, holder: str, ttl_s: float) -> list[str]:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        with self._lock:
            self._replicas[holder] = now + timedelta(seconds=ttl_s)
            return sorted(h for h, expires in self._replicas.items() if expires >= now)

    def leave(self, holder: str) -> None:
        with self._lock:
            self._replicas.pop(holder, None)

    def _fenced(self, fence: Fence | None, where: str) -> None:
        """As the SQL store: under the store's lock, a stale fence records nothing (LeaseLostError)."""
        if fence is None:
            return
        row = self._leases.get(fence.portal_id)
        if row is None or (row.holder, row.epoch) != (fence.holder, fence.epoch):
            raise LeaseLostError(fence.portal_id, fence.epoch, where)

    # -- the daily API budget and the installation's settings --

    def add_api_calls(self, portal_id: int, day: str, calls: int) -> int:
        with self._lock:
            total = self._api.get((portal_id, day), 0) + calls
            self._api[(portal_id, day)] = total
            return total

    def log_key(self) -> bytes:
        with self._lock:
            if self._log_key is None:
                self._log_key = secrets.token_bytes(32)
            return self._log_key


def _with_email(event: Event, email: str) -> Event:
    if isinstance(event, FormSubmission):
        return FormSubmission(event.event_id, event.at_ms, email, event.form_id, event.form_name, event.page_url)
    return EmailEvent(
        event.event_id,
        event.kind,
        event.at_ms,
        email,
        event.campaign_id,
        event.url,
        event.filtered,
        event.category,
        event.soft_bounce,
    )


# -- HubSpot --

PAGE = 100  # the list and batch endpoints' maximum
SEARCH_PAGE = 200
FIELD_TYPES = {"number": "number", "enumeration": "select", "string": "textarea", "datetime": "date"}


class FakeCrm:
    """CrmSource and CrmWriter (and CompanySource, CompanyWriter) over a sandbox Portal in this process:
    HubSpot's answers, mapped as the adapter maps them (sync.hubspot.shapes), with no HTTP, retries or limits.
    Like the adapter, it writes only the company properties of the last ensure_company_properties.

    `calls` lists each port call with its arguments; `sent` each batch update_contacts and set_stages were
    given, empty ones included. `fail[name]` is raised by every call of the port method `name` until removed.
    Contacts changed since a time are read whole before the first page is given (the adapter pages by key to
    the same effect): writes made while the pages are worked on do not shift them.
    """

    def __init__(
        self,
        portal: SandboxPortal,
        clock: ManualClock,
        properties: Sequence[str] | None = None,
        form_types: Sequence[str] = ("hubspot",),
    ) -> None:
        self.portal = portal
        self.clock = clock
        self.properties = properties
        self.form_types = tuple(form_types)
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.sent: list[list[PropertyUpdate] | list[StageChange]] = []
        self.fail: dict[str, BaseException] = {}
        self.company_owned: frozenset[str] = frozenset()

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        if name in self.fail:
            raise self.fail[name]

    def calls_to(self, name: str) -> list[tuple[object, ...]]:
        return [args for called, args in self.calls if called == name]

    def _names(self) -> list[str]:
        if self.properties is not None:
            return sorted({*self.properties, "email", LAST_MODIFIED, LIFECYCLE_STAGE, "createdate"})
        return [str(p["name"]) for p in self.portal.properties()]

    def _page(self, results: Sequence[Any], after: str | None) -> ContactPage:
        contacts, problems, newest = [], [], None
        for raw in results:
            try:
                contact = contact_from_wire(raw)
            except SkippableRecordError as exc:
                problems.append(str(exc))
                continue
            contacts.append(contact)
            modified = parse_date_ms(contact.properties.get(LAST_MODIFIED))
            if modified is not None and (newest is None or modified > newest):
                newest = modified
        return ContactPage(contacts, problems, after, newest)

    # CrmSource

    def account_info(self) -> AccountInfo:
        self._call("account_info")
        info = self.portal.account_info()
        return AccountInfo(int(info["portalId"]), str(info["timeZone"]))

    def count_contacts(self) -> int:
        self._call("count_contacts")
        return self.portal.contact_count()

    def contact_pages(self, after: str | None = None) -> Iterator[ContactPage]:
        self._call("contact_pages", after)
        while True:
            body = self.portal.list_contacts(PAGE, after, self._names())
            after = _next_after(body)
            yield self._page(body.get("results") or [], after)
            if after is None:
                return

    def contacts_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[ContactPage]:
        self._call("contacts_changed_since", since_ms, until_ms)
        filters = [{"propertyName": LAST_MODIFIED, "operator": "GTE", "value": str(since_ms)}]
        if until_ms is not None:
            filters.append({"propertyName": LAST_MODIFIED, "operator": "LTE", "value": str(until_ms)})
        found: list[Any] = []
        offset: str | None = "0"
        while offset is not None:
            body = self.portal.search(
                {
                    "filterGroups": [{"filters": filters}],
                    "sorts": [{"propertyName": LAST_MODIFIED, "direction": "ASCENDING"}],
                    "properties": self._names(),
                    "limit": SEARCH_PAGE,
                    "after": offset,
                }
            )
            found += body.get("results") or []
            offset = _next_after(body)
        for start in range(0, len(found), SEARCH_PAGE):
            yield self._page(found[start : start + SEARCH_PAGE], None)

    def _read(self, keys: Sequence[str], by_email: bool) -> list[Contact]:
        found: list[Contact] = []
        for start in range(0, len(keys), PAGE):
            inputs = [{"id": k} for k in keys[start : start + PAGE]]
            body: dict[str, Any] = {"inputs": inputs, "properties": self._names()}
            if by_email:
                body["idProperty"] = "email"
            results, _ = self.portal.batch_read(body)
            found += self._page(results, None).contacts
        return found

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]:
        self._call("read_contacts", tuple(ids))
        return self._read(ids, by_email=False)

    def read_contacts_by_email(self, emails: Sequence[str]) -> list[Contact]:
        self._call("read_contacts_by_email", tuple(emails))
        return self._read(emails, by_email=True)

    def forms(self) -> dict[str, str]:
        self._call("forms")
        names: dict[str, str] = {}
        after: str | None = None
        while True:
            body = self.portal.forms(PAGE, after, self.form_types)
            names.update((str(f["id"]), str(f.get("name") or "")) for f in body.get("results") or [])
            after = _next_after(body)
            if after is None:
                return names

    def contacts_converted_since(self, since_ms: int) -> Iterator[ConversionPage]:
        """Read whole before the first page is given, as contacts_changed_since is; as search shows them now
        (the sandbox portal's search lag at the clock's time)."""
        self._call("contacts_converted_since", since_ms)
        found: list[Any] = []
        offset: str | None = "0"
        while offset is not None:
            body = self.portal.search(
                {
                    "filterGroups": [
                        {
                            "filters": [
                                {"propertyName": RECENT_CONVERSION_DATE, "operator": "GTE", "value": str(since_ms)}
                            ]
                        }
                    ],
                    "sorts": [{"propertyName": RECENT_CONVERSION_DATE, "direction": "ASCENDING"}],
                    "properties": list(CONVERSION_PROPERTIES),
                    "limit": SEARCH_PAGE,
                    "after": offset,
                },
                now_ms=self.clock.ms,
            )
            found += body.get("results") or []
            offset = _next_after(body)
        for start in range(0, len(found), SEARCH_PAGE):
            conversions, problems = [], []
            for raw in found[start : start + SEARCH_PAGE]:
                try:
                    conversions.append(conversion_from_wire(raw))
                except SkippableRecordError as exc:
                    problems.append(str(exc))
            yield ConversionPage(conversions, problems)

    def form_submissions(self, form_id: str, form_name: str, since_ms: int) -> Iterator[SubmissionPage]:
        self._call("form_submissions", form_id, form_name, since_ms)
        after: str | None = None
        while True:
            found: list[FormSubmission] = []
            problems: list[str] = []
            body = self.portal.submissions(form_id, 50, after)
            older = False
            for raw in body.get("results") or []:
                try:
                    submission = submission_from_wire(raw, form_id, form_name)
                except SkippableRecordError as exc:
                    problems.append(str(exc))
                    continue
                if submission.at_ms < since_ms:
                    older = True  # newest first: the rest are older still
                    break
                found.append(submission)
            yield SubmissionPage(found, problems)
            after = _next_after(body)
            if older or after is None:
                return

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[EventPage]:
        """One window, newest first, paged by offset; its last page carries `through_ms`."""
        self._call("email_events", start_ms, end_ms)
        offset: str | None = None
        while True:
            body = self.portal.email_events(
                start=start_ms,
                end=end_ms,
                event_type=None,
                exclude_filtered=False,
                offset=offset,
                limit=1000,
                now_ms=self.clock.ms,
            )
            events: list[EmailEvent] = []
            problems: list[str] = []
            for raw in body.get("events") or []:
                try:
                    event = email_event_from_wire(raw)
                except SkippableRecordError as exc:
                    problems.append(str(exc))
                    continue
                if event is not None:
                    events.append(event)
            offset = str(body.get("offset") or "") or None
            more = bool(body.get("hasMore")) and offset is not None
            yield EventPage(events, problems, None if more else end_ms)
            if not more:
                return

    def list_members(self, list_id: int) -> set[str]:
        self._call("list_members", list_id)
        members: set[str] = set()
        after: str | None = None
        while True:
            body = self.portal.memberships(str(list_id), PAGE, after)
            members.update(str(item["recordId"]) for item in body.get("results") or [])
            after = _next_after(body)
            if after is None:
                return members

    # CrmWriter

    def ensure_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None:
        self._call("ensure_properties", group, group_label, tuple(specs))
        self._ensure(group, group_label, specs, "contacts")

    def _ensure(self, group: str, group_label: str, specs: Sequence[PropertySpec], kind: str) -> None:
        if group not in {str(g["name"]) for g in self.portal.groups(kind)}:
            self.portal.create_group({"name": group, "label": group_label}, kind)
        for spec in specs:
            options = [{"label": o, "value": o, "hidden": False, "displayOrder": i} for i, o in enumerate(spec.options)]
            have = self.portal.property_def(spec.name, kind)
            if have is None:
                raw = {
                    "name": spec.name,
                    "label": spec.label,
                    "type": spec.type,
                    "fieldType": FIELD_TYPES[spec.type],
                    "groupName": group,
                    **({"options": options} if spec.type == "enumeration" else {}),
                }
                self.portal.create_property(raw, self.clock.ms, kind)
            elif spec.type == "enumeration":
                existing = [str(o["value"]) for o in self.portal.property(spec.name, kind).get("options") or []]
                missing = [o for o in spec.options if o not in existing]
                if missing:
                    wanted = [*existing, *missing]
                    rows = [{"label": o, "value": o, "hidden": False, "displayOrder": i} for i, o in enumerate(wanted)]
                    self.portal.update_property(spec.name, {"options": rows}, self.clock.ms, kind)

    def update_contacts(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        self._call("update_contacts", tuple(updates))
        self.sent.append(list(updates))
        return self._update(updates)

    def set_stages(self, changes: Sequence[StageChange]) -> WriteOutcome:
        """Backward moves as a clear then a set, checked by reading back (HubSpot keeps a backward value
        written directly, without an error)."""
        self._call("set_stages", tuple(changes))
        self.sent.append(list(changes))
        clears = [c for c in changes if c.clear_first]
        outcome = self._update([PropertyUpdate(c.contact_id, {LIFECYCLE_STAGE: ""}) for c in clears])
        blocked = {d.contact_id for d in outcome.dead}
        written = self._update(
            [PropertyUpdate(c.contact_id, {LIFECYCLE_STAGE: c.stage}) for c in changes if c.contact_id not in blocked]
        )
        outcome.add(written)
        wanted = {c.contact_id: c.stage for c in clears if c.contact_id in set(written.applied)}
        for contact in self._read(list(wanted), by_email=False):
            if contact.lifecycle_stage != wanted[contact.id]:
                outcome.applied.remove(contact.id)
                kept = f"HubSpot kept lifecyclestage={contact.lifecycle_stage!r} after clear and set"
                outcome.dead.append(DeadLetter(contact.id, {LIFECYCLE_STAGE: contact.lifecycle_stage}, kept))
        return outcome

    def _update(self, updates: Sequence[PropertyUpdate], kind: str = "contacts") -> WriteOutcome:
        outcome = WriteOutcome()
        for start in range(0, len(updates), PAGE):
            self._write(list(updates[start : start + PAGE]), outcome, kind)
        return outcome

    def _write(self, items: list[PropertyUpdate], outcome: WriteOutcome, kind: str = "contacts") -> None:
        """One batch update; a rejected batch is split in halves until the bad input stands alone."""
        if not items:
            return
        outcome.calls += 1
        body = {"inputs": [{"id": u.contact_id, "properties": dict(u.properties)} for u in items]}
        try:
            results, errors = self.portal.batch_update(body, self.clock.ms, None, kind)
        except ApiError as exc:
            if exc.status == 400 and len(items) > 1:
                half = len(items) // 2
                self._write(items[:half], outcome, kind)
                self._write(items[half:], outcome, kind)
                return
            outcome.dead += [DeadLetter(u.contact_id, u.properties, exc.message, exc.status) for u in items]
            return
        outcome.applied += [str(r["id"]) for r in results]
        by_id = {u.contact_id: u for u in items}
        for error in errors:
            category = str(error.get("category") or "")
            said = str(error.get("message") or "rejected")
            missing = category == OBJECT_NOT_FOUND
            reason = not_found_reason(said) if missing else f"{category}: {said}"
            for cid in error.get("context", {}).get("ids") or []:
                outcome.dead.append(DeadLetter(str(cid), by_id[str(cid)].properties, reason, 404 if missing else 0))

    # CompanySource

    def _companies_page(self, results: Sequence[Any], after: str | None) -> CompanyPage:
        companies, problems, newest = [], [], None
        for raw in results:
            try:
                company = company_from_wire(raw)
            except SkippableRecordError as exc:
                problems.append(str(exc))
                continue
            companies.append(company)
            modified = parse_date_ms(company.properties.get(COMPANY_LAST_MODIFIED))
            if modified is not None and (newest is None or modified > newest):
                newest = modified
        return CompanyPage(companies, problems, after, newest)

    def _company_names(self) -> list[str]:
        return [str(p["name"]) for p in self.portal.properties("companies")]

    def company_pages(self, after: str | None = None) -> Iterator[CompanyPage]:
        self._call("company_pages", after)
        while True:
            body = self.portal.list_contacts(PAGE, after, self._company_names(), "companies")
            after = _next_after(body)
            yield self._companies_page(body.get("results") or [], after)
            if after is None:
                return

    def companies_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[CompanyPage]:
        """Read whole before the first page is given, as contacts_changed_since is."""
        self._call("companies_changed_since", since_ms, until_ms)
        filters = [{"propertyName": COMPANY_LAST_MODIFIED, "operator": "GTE", "value": str(since_ms)}]
        if until_ms is not None:
            filters.append({"propertyName": COMPANY_LAST_MODIFIED, "operator": "LTE", "value": str(until_ms)})
        found: list[Any] = []
        offset: str | None = "0"
        while offset is not None:
            body = self.portal.search(
                {
                    "filterGroups": [{"filters": filters}],
                    "sorts": [{"propertyName": COMPANY_LAST_MODIFIED, "direction": "ASCENDING"}],
                    "properties": self._company_names(),
                    "limit": SEARCH_PAGE,
                    "after": offset,
                },
                "companies",
            )
            found += body.get("results") or []
            offset = _next_after(body)
        for start in range(0, len(found), SEARCH_PAGE):
            yield self._companies_page(found[start : start + SEARCH_PAGE], None)

    def read_companies(self, ids: Sequence[str]) -> list[Company]:
        self._call("read_companies", tuple(ids))
        found: list[Company] = []
        for start in range(0, len(ids), PAGE):
            body = {"inputs": [{"id": k} for k in ids[start : start + PAGE]], "properties": self._company_names()}
            results, _ = self.portal.batch_read(body, "companies")
            found += self._companies_page(results, None).companies
        return found

    def _associations(self, from_type: str, ids: Sequence[str]) -> list[CompanyAssociation]:
        """The sandbox's v4 batch read, paged per result; Primary by type id (1 from contacts, 2 from companies)."""
        primary_type = 1 if from_type == "contacts" else 2
        found: dict[tuple[str, str], bool] = {}
        queue: list[dict[str, str]] = [{"id": i} for i in dict.fromkeys(ids)]
        while queue:
            inputs, queue = queue[:PAGE], queue[PAGE:]
            results, _ = self.portal.read_associations(from_type, {"inputs": inputs})
            for result in results:
                source = str(result["from"]["id"])
                for item in result["to"]:
                    primary = any(t["typeId"] == primary_type for t in item["associationTypes"])
                    target = str(item["toObjectId"])
                    pair = (source, target) if from_type == "contacts" else (target, source)
                    found[pair] = found.get(pair, False) or primary
                after = _next_after(result)
                if after is not None:
                    queue.append({"id": source, "after": after})
        return [CompanyAssociation(c, k, p) for (c, k), p in found.items()]

    def company_associations(self, contact_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        self._call("company_associations", tuple(contact_ids))
        return self._associations("contacts", contact_ids), []

    def company_contacts(self, company_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        self._call("company_contacts", tuple(company_ids))
        return self._associations("companies", company_ids), []

    def company_property_definitions(self) -> dict[str, PropertyInfo]:
        self._call("company_property_definitions")
        found: dict[str, PropertyInfo] = {}
        for raw in self.portal.properties("companies"):
            options = tuple(str(o["value"]) for o in raw.get("options") or [])
            group, defined = str(raw.get("groupName") or ""), bool(raw.get("hubspotDefined"))
            found[str(raw["name"])] = PropertyInfo(str(raw["name"]), str(raw["type"]), group, options, defined)
        return found

    # CompanyWriter

    def ensure_company_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None:
        self._call("ensure_company_properties", group, group_label, tuple(specs))
        self._ensure(group, group_label, specs, "companies")
        self.company_owned = frozenset(spec.name for spec in specs)

    def update_companies(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        self._call("update_companies", tuple(updates))
        foreign = sorted({n for u in updates for n in u.properties} - (self.company_owned - {LIFECYCLE_STAGE}))
        if foreign:
            raise UnownedWriteError(f"refused to write company properties {', '.join(foreign)}; nothing was sent")
        self.sent.append(list(updates))
        return self._update(updates, "companies")


def empty_portal(portal_id: int, list_ids: Iterable[int] = ()) -> SandboxPortal:
    """A portal without contacts, holding (empty) the lists the rules name: HubSpot answers 404 for a missing one."""
    portal = SandboxPortal(portal_id)
    for list_id in list_ids:
        portal.set_list(list_id, f"list {list_id}", {})
    return portal


def _next_after(body: Mapping[str, Any]) -> str | None:
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None
