"""What the sync pipeline needs from the world, as Protocols; the adapters implement them.

Values crossing these ports are the core's (Contact, FormSubmission, EmailEvent,
PropertyUpdate) or the small frozen records below: raw HubSpot dicts stay in
the adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from sync.core.model import (
    Company,
    CompanyAssociation,
    Contact,
    EmailEvent,
    FormSubmission,
    PropertyUpdate,
    StageChange,
)


@dataclass(frozen=True)
class ContactPage:
    """One page of contacts; `after` resumes a backfill, `max_modified_ms` advances an incremental cursor."""

    contacts: list[Contact]
    problems: list[str] = field(default_factory=list)  # records skipped, with the reason
    after: str | None = None
    max_modified_ms: int | None = None


@dataclass(frozen=True)
class CompanyPage:
    """One page of companies, as ContactPage is one of contacts."""

    companies: list[Company]
    problems: list[str] = field(default_factory=list)  # records skipped, with the reason
    after: str | None = None
    max_modified_ms: int | None = None


@dataclass(frozen=True)
class SubmissionPage:
    """One page of a form's submissions, newest first."""

    submissions: list[FormSubmission]
    problems: list[str] = field(default_factory=list)  # records skipped, with the reason


@dataclass(frozen=True)
class EventPage:
    """One page of email events. `through_ms` is set on the last page of a window: every event created up to
    then has been read, so the events cursor may move there."""

    events: list[EmailEvent]
    problems: list[str] = field(default_factory=list)  # records skipped, with the reason
    through_ms: int | None = None


@dataclass(frozen=True)
class Conversion:
    """A contact's most recent form submission as search shows it (HubSpot's conversion properties on the contact):
    when, the conversion's name (the form's, often after the page's title), and how many form submissions the
    contact has made in all (None when HubSpot gives no count)."""

    contact_id: str
    email: str  # lowercased; "" when the contact has none
    at_ms: int
    name: str
    count: int | None = None


@dataclass(frozen=True)
class ConversionPage:
    conversions: list[Conversion]
    problems: list[str] = field(default_factory=list)  # records skipped, with the reason


@dataclass(frozen=True)
class AccountInfo:
    """The portal a token belongs to (its id) and the portal's time zone (an IANA name, as HubSpot gives it)."""

    portal_id: int
    time_zone: str


@dataclass(frozen=True)
class DeadLetter:
    """A write HubSpot would not take, kept with the reason so nothing is dropped silently."""

    contact_id: str
    properties: Mapping[str, str]
    reason: str
    status: int = 0


@dataclass(frozen=True)
class DeadLetterRecord:
    """A dead letter as the store keeps it: retried by later cycles with backoff until it is closed."""

    id: int
    contact_id: str
    properties: Mapping[str, str]
    reason: str
    status: int
    state: str  # open | retrying | resolved | dropped | given_up
    attempts: int  # retries HubSpot refused again
    recorded_at: datetime
    next_attempt_at: datetime | None  # an open letter is due from then (None: now)
    closed_at: datetime | None = None
    note: str | None = None  # how it was closed


@dataclass
class WriteOutcome:
    applied: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    calls: int = 0

    def add(self, other: WriteOutcome) -> None:
        self.applied += other.applied
        self.dead += other.dead
        self.calls += other.calls


PropertyType = Literal["number", "enumeration", "string", "datetime"]


@dataclass(frozen=True)
class PropertySpec:
    """A HubSpot property this worker owns (of contacts, or of companies)."""

    name: str
    label: str
    type: PropertyType
    options: tuple[str, ...] = ()  # enumeration values
    adopted: bool = False  # an existing property the portal file takes over (properties.adopt)


@dataclass(frozen=True)
class PropertyInfo:
    """A contact property as the portal defines it (read-only checks: validate --live, plan)."""

    name: str
    type: str  # HubSpot's: string, number, enumeration, bool, datetime, date ...
    group: str
    options: tuple[str, ...] = ()
    hubspot_defined: bool = False


class PortalIdentity(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


class PortalSettings(Protocol):
    """What a cycle reads of its portal's file (the validated config satisfies it): which portal the file
    names, and whether logs may show emails. The cycle sees no more of the config than this."""

    @property
    def portal(self) -> PortalIdentity: ...

    @property
    def log_emails(self) -> bool: ...


class CrmSource(Protocol):
    def account_info(self) -> AccountInfo: ...

    def contact_pages(self, after: str | None = None) -> Iterator[ContactPage]: ...

    def count_contacts(self) -> int:
        """How many contacts the portal has (one call): a backfill's progress total."""
        ...

    def contacts_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[ContactPage]: ...

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]: ...

    def read_contacts_by_email(self, emails: Sequence[str]) -> list[Contact]: ...

    def forms(self) -> dict[str, str]: ...

    def contacts_converted_since(self, since_ms: int) -> Iterator[ConversionPage]:
        """Contacts whose most recent form submission (as search shows it) is at or after `since_ms`, oldest
        first, each once: one search call when there are none."""
        ...

    def form_submissions(self, form_id: str, form_name: str, since_ms: int) -> Iterator[SubmissionPage]:
        """The form's submissions at or after `since_ms`, a page at a time (a large form is never held whole)."""
        ...

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[EventPage]: ...

    def list_members(self, list_id: int) -> set[str]: ...


class CrmWriter(Protocol):
    def ensure_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None: ...

    def update_contacts(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome: ...

    def set_stages(self, changes: Sequence[StageChange]) -> WriteOutcome: ...


class CompanySource(Protocol):
    """Companies and who works there, read the way contacts are: a list backfill, then keyset search."""

    def company_pages(self, after: str | None = None) -> Iterator[CompanyPage]: ...

    def companies_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[CompanyPage]:
        """Companies whose hs_lastmodifieddate is in [since_ms, until_ms], oldest first, each once."""
        ...

    def read_companies(self, ids: Sequence[str]) -> list[Company]:
        """Companies by id; one that no longer exists is simply absent."""
        ...

    def company_associations(self, contact_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        """Every company association of these contacts (100 contacts a call), and problems met. A contact
        without companies has none; an association to a company deleted since is kept (the reader of
        read_companies finds it absent and skips it)."""
        ...

    def company_contacts(self, company_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        """The same associations read from the companies' side: every contact of these companies."""
        ...

    def company_property_definitions(self) -> dict[str, PropertyInfo]:
        """Every company property of the portal, by name (validate --live, plan)."""
        ...


class CompanyWriter(Protocol):
    """Writes to companies. Only the properties of the last ensure_company_properties are written: any other
    property (a company's lifecycle stage above all) is refused with UnownedWriteError, nothing sent."""

    def ensure_company_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None: ...

    def update_companies(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        """Each update's `contact_id` is the company's id; dead letters name it the same way."""
        ...


class Clock(Protocol):
    """The time as the worker sees it: every production reader of the wall clock takes one (or one of the
    callables below), so tests move time by hand."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock: aware UTC datetimes."""

    def now(self) -> datetime:
        return datetime.now(UTC)


# Where a component needs a number rather than a datetime, it takes one of these callables instead of a Clock.
EpochSeconds = Callable[[], float]  # seconds since the epoch, as time.time gives them (the sandbox's clock)
MonotonicSeconds = Callable[[], float]  # for intervals only, as time.monotonic gives them (the rate limiter)
Sleep = Callable[[float], None]  # waits that many seconds, as time.sleep does


@dataclass(frozen=True)
class HistoryRow:
    """One audit line: a contact's score changed and was written (or, for holdout, would have been)."""

    contact_id: str
    run_id: str
    version: str
    old_score: int | None
    new_score: int
    grade: str | None
    stage: str | None
    reasons: str
    breakdown: Mapping[str, object]


@dataclass(frozen=True)
class StageTransition:
    """How many contacts one run moved from one lifecycle stage to another."""

    run_id: str
    stage_from: str | None  # "" for no stage; None when the history row predates keeping it
    stage_to: str
    contacts: int


@dataclass(frozen=True)
class PendingWrite:
    """A planned write recorded before it is sent (the outbox), so a crash can finish it."""

    contact_id: str
    properties: Mapping[str, str]
    stage: str | None  # a backward stage move to send as clear-then-set
    history: HistoryRow | None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    portal_id: int
    kind: str  # incremental | full | rescore | webhook
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"  # running | ok | failed | paused | interrupted
    counts: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None


# The state store by role. Each consumer names the roles it uses; the SQL store (sync.store) and the tests' in-memory
# store implement them all, and the composition root passes one object as the union, StateStore. Every method
# commits its own transaction; ids are per portal.


class Cursors(Protocol):
    """An opaque text value per (portal, stream), e.g. "1790000000000" or a list `after` token."""

    def get_cursor(self, portal_id: int, stream: str) -> str | None: ...

    def set_cursor(self, portal_id: int, stream: str, value: str) -> None: ...


class Contacts(Protocol):
    """The fields the rules need, upserted as pulled; emails compared lowercased."""

    def upsert_contacts(self, portal_id: int, contacts: Sequence[Contact]) -> None: ...

    def get_contacts(self, portal_id: int, ids: Sequence[str]) -> list[Contact]: ...

    def contacts_by_email(self, portal_id: int, emails: Sequence[str]) -> list[Contact]: ...

    def iter_contact_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]: ...


class Events(Protocol):
    """Form submissions and email events, deduplicated by (kind, event id), tied to contacts by email."""

    def add_events(self, portal_id: int, events: Sequence[FormSubmission | EmailEvent]) -> int: ...

    def events_for_emails(
        self, portal_id: int, emails: Sequence[str]
    ) -> dict[str, list[FormSubmission | EmailEvent]]: ...

    def emails_with_events_since(self, portal_id: int, since_ms: int) -> list[str]: ...


class Outbox(Protocol):
    """Planned writes recorded before they are sent; a batch's completion records its history, the values and
    stages written, its dead letters and the cursor in one transaction."""

    def record_pending(
        self, portal_id: int, run_id: str, writes: Sequence[PendingWrite], *, fence: Fence | None = None
    ) -> None: ...

    def pending_writes(self, portal_id: int) -> list[PendingWrite]: ...

    def complete_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        cursor: tuple[str, str] | None = None,
        *,
        fence: Fence | None = None,
    ) -> None: ...

    def written_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]: ...

    # the lifecycle stage leadsync last wrote per contact (recorded by complete_writes): the stages it owns
    def written_stages(self, portal_id: int, ids: Sequence[str]) -> dict[str, str]: ...


class History(Protocol):
    """The audit trail complete_writes leaves: score changes per contact, stage moves per run."""

    def history(self, portal_id: int, contact_id: str) -> list[HistoryRow]: ...

    def stage_transitions(self, portal_id: int, run_ids: Sequence[str]) -> list[StageTransition]: ...


class DeadLetters(Protocol):
    """Writes HubSpot refused (added by complete_writes), retried with backoff until closed.

    Due letters are taken (state retrying); complete_writes settles those of the contacts it records (HubSpot
    took the write: resolved; refused it again: an attempt, backoff or given_up)."""

    def dead_letters(self, portal_id: int) -> list[DeadLetter]: ...

    def recent_dead_letters(self, portal_id: int, within_s: float) -> int: ...

    def dead_letter_records(
        self, portal_id: int, ids: Sequence[int] | None = None, states: Sequence[str] | None = None
    ) -> list[DeadLetterRecord]: ...

    def begin_dead_letter_retries(self, portal_id: int, limit: int) -> list[DeadLetterRecord]: ...

    def finish_dead_letter_retries(self, portal_id: int, contact_ids: Sequence[str], note: str) -> int: ...

    def make_dead_letters_due(self, portal_id: int, ids: Sequence[int]) -> list[int]: ...

    def drop_dead_letters(self, portal_id: int, ids: Sequence[int]) -> list[int]: ...


class Runs(Protocol):
    def start_run(self, run: RunRecord) -> None: ...

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int], error: str | None = None) -> None: ...

    def last_runs(self, portal_id: int, limit: int = 10) -> list[RunRecord]: ...


@dataclass(frozen=True)
class Fence:
    """A run's fencing token: the lease it runs under. The epoch grows every time the portal's lease changes
    holder or is taken after it expired, so a replica that was paused past its lease holds a stale fence."""

    portal_id: int
    holder: str
    epoch: int


@dataclass(frozen=True)
class LeaseRow:
    """One portal's lease as the store holds it (`expires_at` past: free to take)."""

    portal_id: int
    holder: str
    epoch: int
    expires_at: datetime


class Leases(Protocol):
    """One holder per portal at a time, for a ttl (replicas share portals this way), fenced by epochs; and the
    replicas' heartbeats, so each knows how many share the work.

    The outbox's record and complete methods take the run's fence: a stale one (the lease moved on) raises
    LeaseLostError in the same transaction, and nothing is recorded."""

    def acquire_lease(self, portal_id: int, holder: str, ttl_s: float) -> bool: ...

    # the lease with its epoch (bumped when the holder changes or an expired lease is taken, and on every take with
    # new_epoch), or None if another holder has it
    def acquire_fence(self, portal_id: int, holder: str, ttl_s: float, *, new_epoch: bool = False) -> Fence | None: ...

    # renew, in one statement, the unexpired leases `holder` has among `portal_ids`: portal id -> epoch (kept) of
    # those renewed; a lease left out expired or moved on (acquire_fence says which)
    def renew_leases(self, holder: str, portal_ids: Sequence[int], ttl_s: float) -> dict[int, int]: ...

    # whether the fence is still the portal's lease: same holder and epoch, not expired
    def check_fence(self, fence: Fence) -> bool: ...

    # with an epoch: only that lease of the holder's, not a newer one
    def release_lease(self, portal_id: int, holder: str, epoch: int | None = None) -> None: ...

    def leases(self) -> list[LeaseRow]: ...

    # announce this replica for `ttl_s`; returns the live replicas' holders, sorted (this one included)
    def heartbeat(self, holder: str, ttl_s: float) -> list[str]: ...

    # a replica stopping cleanly leaves at once, so the others take its share without waiting for expiry
    def leave(self, holder: str) -> None: ...


class ApiBudget(Protocol):
    """The daily API budget and the installation's settings, shared by restarts and replicas."""

    def add_api_calls(self, portal_id: int, day: str, calls: int) -> int: ...

    # the installation's key for hashing emails in logs (made once, shared by replicas)
    def log_key(self) -> bytes: ...


class CompanyStore(Protocol):
    """Companies as pulled, each contact's company associations, and the companies waiting for their account pass
    ("stale": the company or one of its contacts changed since it was last scored)."""

    def upsert_companies(self, portal_id: int, companies: Sequence[Company]) -> None:
        """Store companies as read from HubSpot; what leadsync remembers writing to them is superseded."""
        ...

    def get_companies(self, portal_id: int, ids: Sequence[str]) -> list[Company]:
        """The stored companies among `ids`, in the order asked; unknown ids are left out."""
        ...

    def remove_companies(self, portal_id: int, ids: Sequence[str]) -> None:
        """Forget companies HubSpot no longer has, with their associations and stale marks."""
        ...

    def iter_company_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]: ...

    def set_company_associations(
        self, portal_id: int, contact_ids: Sequence[str], associations: Sequence[CompanyAssociation]
    ) -> None:
        """Replace the company associations of these contacts with `associations` (none: the contacts have none)."""
        ...

    def company_associations(self, portal_id: int, contact_ids: Sequence[str]) -> list[CompanyAssociation]: ...

    def iter_company_contact_ids(self, portal_id: int, company_id: str, batch: int = 1000) -> Iterator[list[str]]:
        """Every contact associated with the company (any label), in id order, `batch` at a time."""
        ...

    def mark_companies_stale(self, portal_id: int, company_ids: Sequence[str]) -> None: ...

    def stale_companies(self, portal_id: int, limit: int) -> list[str]:
        """Up to `limit` stale companies, in id (text) order."""
        ...


class CompanyOutbox(Protocol):
    """The company twin of the Outbox and History: a PendingWrite's and a HistoryRow's `contact_id` is the
    company's id (their `stage` is always None). Completing a batch records its history, the values written, its
    dead letters, and clears the stale marks of the companies it rescored, in one transaction."""

    def record_company_pending(
        self, portal_id: int, run_id: str, writes: Sequence[PendingWrite], *, fence: Fence | None = None
    ) -> None: ...

    def pending_company_writes(self, portal_id: int) -> list[PendingWrite]: ...

    def complete_company_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        rescored: Sequence[str] = (),
        *,
        fence: Fence | None = None,
    ) -> None: ...

    def written_company_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]: ...

    def company_history(self, portal_id: int, company_id: str) -> list[HistoryRow]: ...

    def company_dead_letters(self, portal_id: int) -> list[DeadLetter]: ...


class AlertState(Cursors, DeadLetters, Protocol):
    """What the alerts read and keep: the incidents open (as cursors) and the recent dead letters."""


class StateStore(
    Cursors,
    Contacts,
    Events,
    Outbox,
    History,
    DeadLetters,
    Runs,
    Leases,
    ApiBudget,
    CompanyStore,
    CompanyOutbox,
    Protocol,
):
    """Every role: what the composition root builds once and the pipeline's Portal carries."""
