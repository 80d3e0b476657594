"""One sync cycle for one portal: pull -> store events -> score -> plan -> write -> checkpoint.

Gather inputs through the ports, let the pure core decide, apply its decisions.
Writes go through an outbox: a batch's planned writes are recorded before they
are sent and completed (with the audit history, dead letters and the cursor)
in one transaction after, so a crash at any point resumes without losing a
write or recording one twice. Values written are absolute, so sending a
pending batch again is harmless.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import structlog

from sync.core.account_planning import plan_account
from sync.core.accounts import AccountSpec, CompiledAccounts, score_tally
from sync.core.conditions import parse_number
from sync.core.decision import Decision, decide
from sync.core.model import (
    AccountResult,
    Company,
    CompanyAssociation,
    Contact,
    Event,
    PropertyUpdate,
    ScoredContact,
    ScoreResult,
    StageChange,
    primary_company,
    with_current_form_names,
)
from sync.core.rules import Grades, ModelSpec, RuleSet
from sync.core.scoring import breakdown_reasons, score_at

# Re-exported for sync.reports.backtest, which imports it from here; the name itself lives in the core.
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import (
    BudgetExhaustedError,
    ConfigError,
    FatalError,
    LiveCheckError,
    PausedError,
    StoppedError,
    SyncError,
    UnownedWriteError,
    WrongPortalError,
)
from sync.observability import EmailHasher
from sync.ports import (
    Clock,
    CompanySource,
    CompanyWriter,
    CrmSource,
    CrmWriter,
    DeadLetter,
    HistoryRow,
    PendingWrite,
    PortalSettings,
    PropertySpec,
    RunRecord,
    StateStore,
)

log = structlog.get_logger("leadsync.pipeline")

BATCH = 100  # HubSpot's batch size: one write call per batch
LOOKBACK_MS = 120_000  # search indexing lags a little; a small overlap is re-read and processed idempotently
# Engagement is reported late (opens and clicks processed minutes after they happened); events are
# deduplicated by id, so re-reading the last hour costs a few calls and loses nothing.
EVENTS_LOOKBACK_MS = 3_600_000
CONTACTS_CURSOR = "contacts_modified_ms"
BACKFILL_CURSOR = "contacts_backfill_after"
BACKFILL_STARTED = "contacts_backfill_started_ms"  # the first run of a (resumed) backfill
BACKFILL_DONE = "done"
EVENTS_SCORED = "events_scored_ms"  # contacts with events up to here were rescored by a completed run
EVENTS_CURSOR = "email_events_ms"
FORM_CURSOR = "form_submissions_ms:"
DEAD_LETTERS_PER_RUN = 1000  # due dead letters retried by one run at most; the rest wait for the next
COMPANIES_CURSOR = "companies_modified_ms"
COMPANIES_BACKFILL_CURSOR = "companies_backfill_after"
COMPANIES_BACKFILL_STARTED = "companies_backfill_started_ms"

Kind = Literal["incremental", "full", "rescore"]
Progress = Callable[[int, int | None], None]  # (contacts done, total if known)


@dataclass
class Portal:
    """Everything one portal's cycle needs, built by the composition root (sync.app)."""

    config: PortalSettings
    rules: RuleSet
    source: CrmSource
    writer: CrmWriter
    store: StateStore
    clock: Clock
    api_calls: Callable[[], Mapping[tuple[str, int], int]] = lambda: {}
    headroom: Callable[[], float | None] = lambda: None
    properties_ready: bool = False
    # The token's own portal, read once per Portal object (a reload builds a new one, so it is read again).
    identity_verified: bool = False
    # The service's live check of the file against the portal (sync.live), run by the first cycle of this Portal
    # object after the identity check: it returns the errors that pause the portal ("" when none). Its verdict is
    # kept: "ok", or the errors every later cycle of this object reports without asking HubSpot again.
    live_check: Callable[[], str] | None = None
    live_verdict: str = ""
    # Told every run's summary once it is recorded (alerts); it contains its own failures and never raises.
    after_run: Callable[[RunSummary], None] | None = None
    # Hands a cycle's stop flag to the adapter, so a stop also cuts its retry waits short (sync.app wires it).
    bind_stop: Callable[[threading.Event], None] = lambda stop: None
    # Emails in logs: as is where the config allows, else hashed with the installation's key (sync.app).
    log_email: EmailHasher = field(default_factory=EmailHasher.for_installation)
    # The portal's time zone (from the identity check; UTC until then): HubSpot's daily limit resets at the portal's
    # midnight, so the budget's day is the portal's local date. `on_time_zone` tells the adapter once it is known.
    time_zone: str = "UTC"
    on_time_zone: Callable[[tzinfo], None] = lambda zone: None
    # Companies: read when an `accounts:` section scores them or a rule reads `company.<property>`; written only
    # with an `accounts:` section (its compiled rules here), and only once ensure_company_properties ran.
    accounts: CompiledAccounts | None = None
    companies: CompanySource | None = None
    company_writer: CompanyWriter | None = None
    company_properties_ready: bool = False

    @property
    def id(self) -> int:
        return self.config.portal.id

    @property
    def uses_companies(self) -> bool:
        """Whether cycles pull companies and contacts' associations to them."""
        return self.companies is not None and (self.accounts is not None or bool(self.rules.company_properties_read))


@dataclass
class RunSummary:
    run_id: str
    kind: Kind
    counts: dict[str, int] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    budget_spent: bool = False  # stopped because the day's API budget is spent (status "failed")
    # Why it stopped when the operator must fix the file or the token: wrong_portal | config | live_check.
    cause: str = ""
    time_zone: str = "UTC"  # the portal's, as known when the run ended: the budget's day is its local date

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def owned_properties(rules: RuleSet) -> tuple[str, list[PropertySpec]]:
    """The HubSpot property group and properties every model of this rule set writes."""
    specs: dict[str, PropertySpec] = {}
    group = ""
    for model in rules.spec.models:
        props = model.properties
        group = group or props.group
        grades = _grade_labels(model)
        for spec in (
            PropertySpec(props.score, "Lead score (leadsync)", "number"),
            PropertySpec(props.fit, "Fit score (leadsync)", "number"),
            PropertySpec(props.engagement, "Engagement score (leadsync)", "number"),
            PropertySpec(props.grade, "Lead grade (leadsync)", "enumeration", grades) if grades else None,
            PropertySpec(props.reasons, "Score reasons (leadsync)", "string"),
            PropertySpec(props.scored_at, "Scored at (leadsync)", "datetime"),
        ):
            if spec is not None and spec.name not in specs:
                specs[spec.name] = replace(spec, adopted=spec.name in props.adopt)
    return group, list(specs.values())


def writable_properties(rules: RuleSet) -> frozenset[str]:
    """What leadsync may write: the outputs it owns (created in its group, or adopted), and the lifecycle stage
    when a model manages stages."""
    _, owned = owned_properties(rules)
    stages = any(m.lifecycle.mode != "off" for m in rules.spec.models)
    return frozenset({s.name for s in owned} | ({LIFECYCLE_STAGE} if stages else set()))


def check_writes(portal: Portal, updates: Sequence[PropertyUpdate], stages: Sequence[StageChange]) -> None:
    """The one gate every write passes: the portal's identity was checked and every property is leadsync's own.

    Raises UnownedWriteError (nothing sent) otherwise."""
    if not portal.identity_verified:
        raise UnownedWriteError(
            f"refused to write to portal {portal.id} before the token's own portal was checked: nothing was sent"
        )
    allowed = writable_properties(portal.rules)
    names = {name for u in updates for name in u.properties}
    if stages:
        names.add(LIFECYCLE_STAGE)
    foreign = sorted(names - allowed)
    if foreign:
        raise UnownedWriteError(
            f"refused to write {', '.join(foreign)}: leadsync writes only the properties it owns "
            f"({', '.join(sorted(allowed))}); nothing was sent"
        )


def owned_company_properties(spec: AccountSpec) -> tuple[str, list[PropertySpec]]:
    """The HubSpot company property group and properties the `accounts:` section writes."""
    props = spec.properties
    grades = _labels(spec.grades)
    specs = [
        PropertySpec(props.score, "Account score (leadsync)", "number"),
        PropertySpec(props.fit, "Account fit (leadsync)", "number"),
        PropertySpec(props.engagement, "Account engagement (leadsync)", "number"),
        *([PropertySpec(props.grade, "Account grade (leadsync)", "enumeration", grades)] if grades else []),
        PropertySpec(props.reasons, "Account score reasons (leadsync)", "string"),
        PropertySpec(props.scored_at, "Account scored at (leadsync)", "datetime"),
    ]
    return props.group, specs


def company_writable_properties(accounts: CompiledAccounts | None) -> frozenset[str]:
    """The company properties leadsync may write: its account outputs, and never a company's lifecycle stage."""
    if accounts is None:
        return frozenset()
    _, owned = owned_company_properties(accounts.spec)
    return frozenset(s.name for s in owned) - {LIFECYCLE_STAGE}


def check_company_writes(portal: Portal, updates: Sequence[PropertyUpdate]) -> None:
    """check_writes for companies: the portal's identity was checked and every property is an account output
    leadsync owns. Raises UnownedWriteError (nothing sent) otherwise."""
    if not portal.identity_verified:
        raise UnownedWriteError(
            f"refused to write companies of portal {portal.id} before the token's own portal was checked: "
            "nothing was sent"
        )
    allowed = company_writable_properties(portal.accounts)
    foreign = sorted({name for u in updates for name in u.properties} - allowed)
    if foreign:
        raise UnownedWriteError(
            f"refused to write company properties {', '.join(foreign)}: leadsync writes only the account "
            f"properties it owns ({', '.join(sorted(allowed)) or 'none'}); nothing was sent"
        )


def read_company_properties(rules: RuleSet, accounts: CompiledAccounts | None) -> list[str]:
    """Company properties to pull: what contact rules read as `company.<property>`, what account rules read,
    and the account outputs (to write only what differs)."""
    names = set(rules.company_properties_read)
    if accounts is not None:
        names |= accounts.company_properties_read
        names |= {s.name for s in owned_company_properties(accounts.spec)[1]}
    return sorted(names)


def verify_identity(portal: Portal) -> None:
    """Refuse a token of another portal (WrongPortalError), once per Portal object; keep the portal's time zone."""
    if portal.identity_verified:
        return
    account = portal.source.account_info()
    if account.portal_id != portal.id:
        raise WrongPortalError(account.portal_id, portal.id)
    portal.identity_verified = True
    zone = time_zone(account.time_zone)
    if zone is None:
        log.warning("unknown_time_zone", portal=portal.config.portal.name, time_zone=account.time_zone, using="UTC")
    portal.time_zone = zone.key if isinstance(zone, ZoneInfo) else "UTC"
    portal.on_time_zone(zone or UTC)


def time_zone(name: str) -> tzinfo | None:
    """The zone of an IANA name (HubSpot's `timeZone`), or None when this system does not know it."""
    key = name.strip()
    if key.upper() in ("UTC", "ETC/UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    known = {zone.lower(): zone for zone in available_timezones()}  # older portals say "us/eastern"
    try:
        return ZoneInfo(known[key.lower()]) if key.lower() in known else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def budget_day(portal: Portal, at: datetime) -> str:
    """The day (YYYY-MM-DD) HubSpot counts a call made at `at` against: the portal's local date."""
    return at.astimezone(time_zone(portal.time_zone) or UTC).date().isoformat()


def check_live(portal: Portal) -> None:
    """The service's live check, once per Portal object; its errors pause the portal (LiveCheckError)."""
    if portal.live_check is None or portal.live_verdict == "ok":
        return
    if not portal.live_verdict:
        portal.live_verdict = portal.live_check() or "ok"
    if portal.live_verdict != "ok":
        raise LiveCheckError(portal.live_verdict)


def _grade_labels(model: ModelSpec) -> tuple[str, ...]:
    return _labels(model.grades)


def _labels(grades: Grades | None) -> tuple[str, ...]:
    if grades is None:
        return ()
    return tuple(grades.label.format(fit=f.grade, engagement=e.grade) for f in grades.fit for e in grades.engagement)


def read_properties(rules: RuleSet) -> list[str]:
    """Contact properties to pull: what the rules read, what we own, and the stage."""
    _, owned = owned_properties(rules)
    return sorted({*rules.properties_read, *(s.name for s in owned), LIFECYCLE_STAGE})


class Cycle:
    """One run of one portal. `stop` ends it cleanly after the batch in flight."""

    def __init__(
        self,
        portal: Portal,
        kind: Kind,
        *,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        backfill_total: Callable[[], int | None] | None = None,
    ):
        self.portal = portal
        self.kind = kind
        self.stop = stop or threading.Event()
        self.progress = progress
        self.backfill_total = backfill_total  # asked once a backfill starts: the progress bar's total
        self.run_id = uuid.uuid4().hex[:12]
        self.summary = RunSummary(self.run_id, kind)
        self.log = log.bind(portal=portal.config.portal.name, run_id=self.run_id, version=portal.rules.version)
        self.lists: dict[int, set[str]] = {}
        self.form_names: dict[str, str] = {}  # the portal's forms now: id -> name (read before any scoring)

    # -- the run --

    def run(self) -> RunSummary:
        portal, store = self.portal, self.portal.store
        started = portal.clock.now()
        calls_before = dict(portal.api_calls())
        began = time.monotonic()
        store.start_run(RunRecord(self.run_id, portal.id, self.kind, started))
        self.log.info("run_started", kind=self.kind)
        portal.bind_stop(self.stop)
        try:
            verify_identity(portal)  # before anything is written, the pending writes of a crashed run included
            check_live(portal)
            self._finish_pending()
            self._finish_company_pending()
            self._ensure_properties()
            now_ms = int(started.timestamp() * 1000)
            self._load_lists()
            self._work(now_ms)
            if self.stop.is_set():
                self.summary.status = "interrupted"
            else:
                store.set_cursor(portal.id, EVENTS_SCORED, str(now_ms))
        except SyncError as exc:
            self._ended_by(exc)
        except Exception as exc:
            self.summary.status, self.summary.error = "failed", f"{type(exc).__name__}: {exc}"
            raise  # recorded as failed below; the job boundary logs it
        finally:
            self._count_calls(calls_before)
            self.summary.time_zone = portal.time_zone
            if self.summary.counts.get("api_calls"):
                # The day's budget is shared by restarts and replicas: keep the count in the store, under the
                # portal's local date (HubSpot's daily limit resets at the portal's midnight).
                store.add_api_calls(portal.id, budget_day(portal, started), self.summary.counts["api_calls"])
            self.summary.counts["duration_ms"] = int((time.monotonic() - began) * 1000)
            store.finish_run(self.run_id, self.summary.status, self.summary.counts, self.summary.error)
            self.log.info("run_finished", kind=self.kind, status=self.summary.status, **self.summary.counts)
            if portal.after_run is not None:
                portal.after_run(self.summary)
        return self.summary

    def _work(self, now_ms: int) -> None:
        """Events, companies, contacts, dead letters, then the account pass: each step skipped once stopped."""
        store, pid = self.portal.store, self.portal.id
        event_emails = self._pull_events(now_ms)  # first, so the scores below count them
        changed_companies = self._pull_companies(now_ms)  # before the contacts, whose rules may read them
        if self.stop.is_set():
            return
        scored, backfilled = self._contacts(now_ms)
        if not self.stop.is_set() and not backfilled:
            # New events, and events stored by a run that did not get to score their contacts.
            since = int(store.get_cursor(pid, EVENTS_SCORED) or 0)
            event_emails |= set(store.emails_with_events_since(pid, max(0, since - EVENTS_LOOKBACK_MS)))
            self._contacts_with_new_events(event_emails, scored, now_ms)
            self._contacts_of_companies(changed_companies, scored, now_ms)
        if not self.stop.is_set():
            self._retry_dead_letters(now_ms)
        if not self.stop.is_set():
            self._account_pass(now_ms)

    def _ended_by(self, exc: SyncError) -> None:
        """Records how an error ended the run: interrupted, paused (the operator must act) or failed."""
        summary, error, kind = self.summary, str(exc), type(exc).__name__
        if isinstance(exc, StoppedError):
            # Asked to stop while a call waited to be retried: what was in flight stays in the outbox.
            summary.status = "interrupted"
            self.log.info("run_interrupted", reason=error)
        elif isinstance(exc, PausedError):
            summary.status, summary.error = "paused", error
            if isinstance(exc, WrongPortalError):
                summary.cause = "wrong_portal"
            elif isinstance(exc, LiveCheckError):
                summary.cause = "live_check"
            self.log.error("run_stopped", error=error, error_type=kind, status="paused")
        elif isinstance(exc, BudgetExhaustedError):
            summary.status, summary.error, summary.budget_spent = "failed", error, True
            self.log.error("run_stopped", error=error, error_type=kind, status="failed", reason="daily_budget")
        elif isinstance(exc, FatalError):
            summary.status, summary.error = "failed", error
            self.log.error("run_stopped", error=error, error_type=kind, status="failed")
        else:
            summary.status, summary.error = "failed", error
            if isinstance(exc, ConfigError):
                summary.cause = "config"
            self.log.error("run_failed", error=error, error_type=kind)

    def _count_calls(self, before: Mapping[tuple[str, int], int]) -> None:
        after = self.portal.api_calls()
        delta = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
        self.summary.counts["api_calls"] = sum(delta.values())
        self.summary.counts["rate_limited"] = sum(n for (_, status), n in delta.items() if status == 429)

    def _ensure_properties(self) -> None:
        if self.portal.properties_ready:
            return
        group, specs = owned_properties(self.portal.rules)
        self.portal.writer.ensure_properties(group, "Lead scoring (leadsync)", specs)
        self.portal.properties_ready = True

    def _load_lists(self) -> None:
        """Members of the HubSpot lists exclusions name (contacts carry their list ids into the rules)."""
        for list_id in sorted(self.portal.rules.list_ids):
            self.lists[list_id] = self.portal.source.list_members(list_id)

    # -- contacts, a page at a time: store, score, write, checkpoint --

    def _contacts(self, now_ms: int) -> tuple[set[str], bool]:
        """Process changed contacts page by page (all of them on a full or first run, every stored one on a
        rescore). Returns the ids scored (kept on incremental runs only) and whether this was a backfill."""
        store, pid = self.portal.store, self.portal.id
        if self.kind == "rescore":
            self._rescore_stored(now_ms)
            return set(), False
        if self.kind == "full" or store.get_cursor(pid, CONTACTS_CURSOR) is None:
            return self._backfill(now_ms), True
        return self._changed_since(now_ms), False

    def _rescore_stored(self, now_ms: int) -> None:
        done = 0
        for ids in self.portal.store.iter_contact_ids(self.portal.id, BATCH):
            self._batch(ids, now_ms)
            done += len(ids)
            if self._tick(done):
                return

    def _backfill(self, now_ms: int) -> set[str]:
        """Every contact, resuming from the backfill cursor of an interrupted backfill."""
        store, pid = self.portal.store, self.portal.id
        after = store.get_cursor(pid, BACKFILL_CURSOR) or None
        if after == BACKFILL_DONE:
            if store.get_cursor(pid, CONTACTS_CURSOR) is None:
                return self._backfill_done(pid, now_ms)  # stopped right after its last page
            after = None  # a new full backfill
        if after is None:
            store.set_cursor(pid, BACKFILL_STARTED, str(now_ms))
        total = self.backfill_total() if self.backfill_total is not None else None
        done = 0
        for page in self.portal.source.contact_pages(after):
            self._keep(page.contacts, page.problems)
            self._batch([c.id for c in page.contacts], now_ms, cursor=(BACKFILL_CURSOR, page.after or BACKFILL_DONE))
            done += len(page.contacts)
            if self._tick(done, total):
                return set()  # the backfill cursor resumes it
        return self._backfill_done(pid, now_ms)

    def _changed_since(self, now_ms: int) -> set[str]:
        """Contacts modified since the cursor (less the lookback: search lags writes); returns the ids scored."""
        store, pid = self.portal.store, self.portal.id
        since = int(store.get_cursor(pid, CONTACTS_CURSOR) or 0)
        newest = since
        scored: set[str] = set()
        done = 0
        for page in self.portal.source.contacts_changed_since(max(0, since - LOOKBACK_MS), now_ms):
            self._keep(page.contacts, page.problems)
            ids = [c.id for c in page.contacts]
            for start in range(0, len(ids), BATCH):
                last = start + BATCH >= len(ids)
                if last and page.max_modified_ms is not None:
                    # Only once the whole page is done may the cursor pass its newest time.
                    newest = min(max(newest, page.max_modified_ms), now_ms)
                self._batch(ids[start : start + BATCH], now_ms, cursor=(CONTACTS_CURSOR, str(newest)))
            scored.update(c.id for c in page.contacts)
            done += len(page.contacts)
            if self._tick(done):
                return scored
        # Everything modified before the lookback of this run's start was indexed by now and read: the next run
        # need not re-read it (else a burst of our own writes would be pulled again every cycle).
        store.set_cursor(pid, CONTACTS_CURSOR, str(max(newest, now_ms - LOOKBACK_MS)))
        return scored

    def _backfill_done(self, pid: int, now_ms: int) -> set[str]:
        """From here on, increments from when the backfill began (an overlap is re-read, idempotently)."""
        began = int(self.portal.store.get_cursor(pid, BACKFILL_STARTED) or now_ms)
        self.portal.store.set_cursor(pid, CONTACTS_CURSOR, str(min(began, now_ms) - LOOKBACK_MS))
        self.portal.store.set_cursor(pid, BACKFILL_CURSOR, BACKFILL_DONE)
        return set()

    def _contacts_with_new_events(self, emails: set[str], scored: set[str], now_ms: int) -> None:
        """Contacts whose only change is a new event: found by email in the store."""
        if not emails or self.kind != "incremental":
            return  # full runs and rescores score every contact anyway
        ordered = sorted(emails)
        for chunk in range(0, len(ordered), 10 * BATCH):  # a big send touches many contacts: a slice at a time
            found = self.portal.store.contacts_by_email(self.portal.id, ordered[chunk : chunk + 10 * BATCH])
            ids = sorted({c.id for c in found} - scored, key=lambda i: (len(i), i))
            for start in range(0, len(ids), BATCH):
                self._batch(ids[start : start + BATCH], now_ms)
                if self.stop.is_set():
                    return

    # -- companies: pulled like contacts, and each contact's associations to them --

    def _pull_companies(self, now_ms: int) -> set[str]:
        """Store the companies changed since the last run (all of them on a full or first run) and mark them for
        the account pass; returns the ids changed (on incremental runs only: other runs score every contact)."""
        portal, store, pid = self.portal, self.portal.store, self.portal.id
        if not portal.uses_companies:
            return set()
        if self.kind == "rescore":
            for ids in store.iter_company_ids(pid, 10 * BATCH):
                store.mark_companies_stale(pid, ids)
            return set()
        if self.kind == "full" or store.get_cursor(pid, COMPANIES_CURSOR) is None:
            self._company_backfill(now_ms)
            return set()
        return self._companies_changed_since(now_ms)

    def _company_backfill(self, now_ms: int) -> None:
        """Every company by list, resuming from the cursor of an interrupted backfill. On a portal whose contacts
        were synced before companies were, their associations are then read (and the contacts rescored)."""
        store, pid, source = self.portal.store, self.portal.id, self.portal.companies
        assert source is not None  # uses_companies
        after = store.get_cursor(pid, COMPANIES_BACKFILL_CURSOR) or None
        if after == BACKFILL_DONE and store.get_cursor(pid, COMPANIES_CURSOR) is not None:
            after = None  # a new full backfill
        if after is None:
            store.set_cursor(pid, COMPANIES_BACKFILL_STARTED, str(now_ms))
        if after != BACKFILL_DONE:
            for page in source.company_pages(after):
                self._keep_companies(page.companies, page.problems)
                store.set_cursor(pid, COMPANIES_BACKFILL_CURSOR, page.after or BACKFILL_DONE)
                if self.stop.is_set():
                    self.log.info("run_interrupted", during="companies_backfill")
                    return
        contacts_backfill = self.kind == "full" or store.get_cursor(pid, CONTACTS_CURSOR) is None
        first = store.get_cursor(pid, COMPANIES_CURSOR) is None
        if first and not contacts_backfill and not self._associate_stored(now_ms):
            return  # the backfill cursor says "done": the next run reads the associations again
        began = int(store.get_cursor(pid, COMPANIES_BACKFILL_STARTED) or now_ms)
        store.set_cursor(pid, COMPANIES_CURSOR, str(min(began, now_ms) - LOOKBACK_MS))
        store.set_cursor(pid, COMPANIES_BACKFILL_CURSOR, BACKFILL_DONE)

    def _associate_stored(self, now_ms: int) -> bool:
        """Read the associations of every stored contact and rescore it; False when stopped midway."""
        for ids in self.portal.store.iter_contact_ids(self.portal.id, BATCH):
            self._associate(ids)
            self._batch(ids, now_ms)
            if self.stop.is_set():
                return False
        return True

    def _companies_changed_since(self, now_ms: int) -> set[str]:
        """Companies modified since the cursor, less the lookback (search lags writes, as for contacts)."""
        store, pid, source = self.portal.store, self.portal.id, self.portal.companies
        assert source is not None  # uses_companies
        since = int(store.get_cursor(pid, COMPANIES_CURSOR) or 0)
        newest = since
        changed: set[str] = set()
        for page in source.companies_changed_since(max(0, since - LOOKBACK_MS), now_ms):
            self._keep_companies(page.companies, page.problems)
            changed.update(c.id for c in page.companies)
            if page.max_modified_ms is not None:
                newest = min(max(newest, page.max_modified_ms), now_ms)
            store.set_cursor(pid, COMPANIES_CURSOR, str(newest))  # the page is stored and marked: it is done
            if self.stop.is_set():
                return changed
        store.set_cursor(pid, COMPANIES_CURSOR, str(max(newest, now_ms - LOOKBACK_MS)))
        return changed

    def _keep_companies(self, companies: Sequence[Company], problems: Sequence[str]) -> None:
        for problem in problems:
            self._company_problem("company_skipped", reason=problem)
        store, pid = self.portal.store, self.portal.id
        store.upsert_companies(pid, companies)
        store.mark_companies_stale(pid, [c.id for c in companies])
        self.summary.add("companies_pulled", len(companies))

    def _associate(self, contact_ids: Sequence[str]) -> None:
        """Read these contacts' company associations (100 contacts a call) and store them, less those to a company
        HubSpot no longer has; a company a contact left is marked for the account pass."""
        store, pid, source = self.portal.store, self.portal.id, self.portal.companies
        assert source is not None  # uses_companies
        found, problems = source.company_associations(contact_ids)
        for problem in problems:
            self._company_problem("associations_skipped", reason=problem)
        company_ids = sorted({a.company_id for a in found})
        known = {c.id for c in store.get_companies(pid, company_ids)}
        missing = [i for i in company_ids if i not in known]
        if missing:
            # Created since the company pull (the next one reads it again), or deleted since the association was.
            fresh = source.read_companies(missing)
            self._keep_companies(fresh, [])
            known.update(c.id for c in fresh)
        kept: list[CompanyAssociation] = []
        for link in found:
            if link.company_id in known:
                kept.append(link)
            else:
                self._company_problem(
                    "association_skipped",
                    contact_id=link.contact_id,
                    company_id=link.company_id,
                    reason="the associated company does not exist",
                )
        before = {a.company_id for a in store.company_associations(pid, contact_ids)}
        store.set_company_associations(pid, contact_ids, kept)
        if self.portal.accounts is not None:
            store.mark_companies_stale(pid, sorted(before - {a.company_id for a in kept}))

    def _with_companies(self, contacts: Sequence[Contact]) -> tuple[list[Contact], list[str]]:
        """The contacts carrying their primary company's properties (what `company.<property>` reads), and the ids
        of every company they are associated with."""
        if not self.portal.uses_companies or not contacts:
            return list(contacts), []
        store, pid = self.portal.store, self.portal.id
        links: dict[str, list[CompanyAssociation]] = {}
        for link in store.company_associations(pid, [c.id for c in contacts]):
            links.setdefault(link.contact_id, []).append(link)
        primary = {cid: primary_company(found) for cid, found in links.items()}
        companies = {c.id: c for c in store.get_companies(pid, sorted({p for p in primary.values() if p}))}
        carrying = []
        for contact in contacts:
            company = companies.get(primary.get(contact.id) or "")
            carrying.append(with_company(contact, company))
        return carrying, sorted({a.company_id for found in links.values() for a in found})

    def _contacts_of_companies(self, company_ids: set[str], scored: set[str], now_ms: int) -> None:
        """Rescore the contacts of companies that changed, when contact rules read `company.<property>`."""
        store, pid = self.portal.store, self.portal.id
        if not company_ids or not self.portal.rules.company_properties_read or self.kind != "incremental":
            return
        for company_id in sorted(company_ids):
            for ids in store.iter_company_contact_ids(pid, company_id, BATCH):
                fresh = [i for i in ids if i not in scored]
                if fresh:
                    self._batch(fresh, now_ms)
                    scored.update(fresh)
                if self.stop.is_set():
                    return

    def _company_problem(self, event: str, **fields: object) -> None:
        self.summary.add("company_problems")
        self.log.warning(event, **fields)

    # -- the account pass: every stale company scored from its contacts, its changes written --

    def _account_pass(self, now_ms: int) -> None:
        """Score the companies marked stale (changed, or one of their contacts scored), 100 at a time; a batch's
        writes and the clearing of its marks are recorded together, so a crash resumes with what is left."""
        if self.portal.accounts is None or self.portal.company_writer is None:
            return
        store, pid = self.portal.store, self.portal.id
        self._ensure_company_properties()
        while not self.stop.is_set():
            ids = store.stale_companies(pid, BATCH)
            if not ids:
                return
            self._score_companies(ids, now_ms)

    def _score_companies(self, ids: Sequence[str], now_ms: int) -> None:
        portal, store, pid = self.portal, self.portal.store, self.portal.id
        accounts = portal.accounts
        assert accounts is not None  # _account_pass
        written = store.written_company_values(pid, ids)
        pending: list[PendingWrite] = []
        for company in store.get_companies(pid, ids):  # a mark of a company since removed is simply cleared
            try:
                result = self._score_company(company, accounts, now_ms)
            except Exception as exc:  # the record boundary: a broken company never fails the portal
                self._company_problem("company_skipped", company_id=company.id, error=f"{type(exc).__name__}: {exc}")
                continue
            self.summary.add("companies_scored")
            ours = written.get(company.id)
            current = {**company.properties, **ours} if ours else company.properties
            update = plan_account(result, accounts.spec.properties, current, now_ms)
            if update is None:
                self.summary.add("companies_unchanged")
                continue
            pending.append(self._company_pending(result, update, current.get(accounts.spec.properties.score)))
        if pending:
            store.record_company_pending(pid, self.run_id, pending)
        self._send_companies(pending, ids)

    def _score_company(self, company: Company, accounts: CompiledAccounts, now_ms: int) -> AccountResult:
        """The company's contacts streamed from the store a batch at a time into one tally: memory stays flat
        whatever the company's size."""
        tally = accounts.tally()
        for ids in self.portal.store.iter_company_contact_ids(self.portal.id, company.id, BATCH):
            for member in self._members(ids, accounts, now_ms):
                tally.add(member, now_ms)
        return score_tally(company, tally, now_ms)

    def _members(self, ids: Sequence[str], accounts: CompiledAccounts, now_ms: int) -> list[ScoredContact]:
        """These contacts scored as the contact pass scores them (the roll-up reads this run's results)."""
        store, pid = self.portal.store, self.portal.id
        contacts, _ = self._with_companies(store.get_contacts(pid, ids))
        events = store.events_for_emails(pid, sorted({c.email for c in contacts if c.email}))
        members = []
        for stored in contacts:
            contact = with_lists(stored, self.lists)
            mine: list[Event] = with_current_form_names(events.get(contact.email, ()), self.form_names)
            result = score_at(contact, mine, self.portal.rules, now_ms)
            members.append(ScoredContact(contact, result, mine if accounts.event_kinds else ()))
        return members

    def _company_pending(self, result: AccountResult, update: PropertyUpdate, old_score: str | None) -> PendingWrite:
        """The company outbox entry of a write, and the history row it completes with."""
        props = update.properties
        history = HistoryRow(
            contact_id=result.company_id,
            run_id=self.run_id,
            version=result.version,
            old_score=parse_score(old_score),
            new_score=result.score,
            grade=result.grade,
            stage=None,
            reasons=breakdown_reasons(result.breakdown),
            breakdown=_account_breakdown(result),
        )
        return PendingWrite(result.company_id, dict(props), None, history)

    def _send_companies(self, pending: Sequence[PendingWrite], rescored: Sequence[str]) -> None:
        """Write a batch through the company gate and record it with the clearing of `rescored`'s marks."""
        portal, store, pid = self.portal, self.portal.store, self.portal.id
        applied: list[PendingWrite] = []
        dead: list[DeadLetter] = []
        if pending:
            writer = portal.company_writer
            assert writer is not None  # _account_pass, _finish_company_pending
            updates = [PropertyUpdate(p.contact_id, p.properties) for p in pending]
            check_company_writes(portal, updates)
            outcome = writer.update_companies(updates)
            dead = list(outcome.dead)
            refused = {d.contact_id for d in dead}
            applied = [p for p in pending if p.contact_id not in refused]
        for write in applied:
            self.summary.add("companies_written")
            if write.history is not None:
                h = write.history
                self.log.info(
                    "account_score_changed",
                    company_id=h.contact_id,
                    old_score=h.old_score,
                    new_score=h.new_score,
                    grade=h.grade,
                    reasons=h.reasons,
                )
        store.complete_company_writes(pid, self.run_id, applied, dead, rescored)
        for letter in dead:
            self._company_problem(
                "company_dead_letter", company_id=letter.contact_id, reason=letter.reason, status=letter.status
            )
        gone = [d.contact_id for d in dead if d.status == 404]
        if gone:
            store.remove_companies(pid, gone)  # deleted in HubSpot: nothing left to score

    def _finish_company_pending(self) -> None:
        """Send the company writes a crashed run recorded but never completed, less any property the config no
        longer owns (a write left with nothing to send becomes a dead letter saying why)."""
        store, pid = self.portal.store, self.portal.id
        pending = store.pending_company_writes(pid)
        if not pending:
            return
        allowed = company_writable_properties(self.portal.accounts)
        keep: list[PendingWrite] = []
        dropped: list[DeadLetter] = []
        for write in pending:
            owned = {k: v for k, v in write.properties.items() if k in allowed}
            if owned:
                keep.append(write if len(owned) == len(write.properties) else replace(write, properties=owned))
            else:
                reason = "not sent: the config no longer owns these company properties (changed since planned)"
                dropped.append(DeadLetter(write.contact_id, dict(write.properties), reason))
        if dropped:
            store.complete_company_writes(pid, self.run_id, [], dropped)
            self.summary.add("company_problems", len(dropped))
        if keep and self.portal.company_writer is not None:
            self.log.info("resuming_pending_company_writes", count=len(keep))
            self._ensure_company_properties()
            for start in range(0, len(keep), BATCH):
                self._send_companies(keep[start : start + BATCH], ())

    def _ensure_company_properties(self) -> None:
        portal = self.portal
        if portal.company_properties_ready or portal.accounts is None or portal.company_writer is None:
            return
        group, specs = owned_company_properties(portal.accounts.spec)
        portal.company_writer.ensure_company_properties(group, "Lead scoring (leadsync)", specs)
        portal.company_properties_ready = True

    def _tick(self, done: int, total: int | None = None) -> bool:
        if self.progress is not None:
            self.progress(done, total)
        if self.stop.is_set():
            self.log.info("run_interrupted", after_contacts=done)
            return True
        return False

    def _keep(self, contacts: Sequence[Contact], problems: Sequence[str]) -> None:
        for problem in problems:
            self.summary.add("skipped_records")
            self.log.warning("record_skipped", reason=problem)
        self.portal.store.upsert_contacts(self.portal.id, contacts)
        self.summary.add("pulled", len(contacts))
        if self.portal.uses_companies and contacts:
            self._associate([c.id for c in contacts])

    # -- events --

    def _pull_events(self, now_ms: int) -> set[str]:
        """Store new form submissions and email events; returns the emails they belong to."""
        portal, store = self.portal, self.portal.store
        emails: set[str] = set()
        self.form_names = portal.source.forms()
        for form_id, name in sorted(self.form_names.items()):
            key = FORM_CURSOR + form_id
            since = int(store.get_cursor(portal.id, key) or 0)
            submissions, problems = portal.source.form_submissions(form_id, name, max(0, since - EVENTS_LOOKBACK_MS))
            self._note_problems(problems)
            new = store.add_events(portal.id, submissions)
            self.summary.add("events_new", new)
            if new:
                emails.update(s.email for s in submissions)
            store.set_cursor(portal.id, key, str(now_ms))
        # Read a window at a time (the adapter's): the cursor moves to each window's end once it is read whole, so
        # a stop or a crash resumes from the last complete window. Events are deduplicated by id.
        done = int(store.get_cursor(portal.id, EVENTS_CURSOR) or 0)
        for page in portal.source.email_events(max(0, done - EVENTS_LOOKBACK_MS), now_ms):
            self._note_problems(page.problems)
            new = store.add_events(portal.id, page.events)
            self.summary.add("events_new", new)
            if new:
                emails.update(e.email for e in page.events)
            if page.through_ms is not None and page.through_ms > done:
                done = page.through_ms
                store.set_cursor(portal.id, EVENTS_CURSOR, str(done))
            if self.stop.is_set():
                self.log.info("run_interrupted", events_read_through_ms=done)
                break  # the window in progress is read again by the next run
        return emails

    def _note_problems(self, problems: Iterable[str]) -> None:
        for problem in problems:
            self.summary.add("skipped_records")
            self.log.warning("record_skipped", reason=problem)

    # -- scoring and writing --

    def _batch(self, ids: Sequence[str], now_ms: int, cursor: tuple[str, str] | None = None) -> None:
        portal, store, pid = self.portal, self.portal.store, self.portal.id
        contacts, company_ids = self._with_companies(store.get_contacts(pid, ids))
        events = store.events_for_emails(pid, sorted({c.email for c in contacts if c.email}))
        written = store.written_values(pid, ids)
        staged = store.written_stages(pid, ids)
        pending: list[PendingWrite] = []
        for stored in contacts:
            contact = with_lists(stored, self.lists)
            # What HubSpot holds, over which the values leadsync wrote and HubSpot may not show yet.
            ours = written.get(contact.id)
            current = {**contact.properties, **ours} if ours else contact.properties
            try:
                mine = with_current_form_names(events.get(contact.email, ()), self.form_names)
                decision = decide(contact, mine, portal.rules, now_ms, current, written_stage=staged.get(contact.id))
            except Exception as exc:  # the record boundary: a broken contact never fails the portal
                self.summary.add("skipped_contacts")
                self.log.warning("contact_skipped", contact_id=contact.id, error=f"{type(exc).__name__}: {exc}")
                continue
            self.summary.add("scored")
            self._note_result(decision.result, contact.email)
            if decision.model is None:
                continue
            if decision.plan.empty:
                self.summary.add("unchanged")
                continue
            pending.append(self._pending(decision))
        if portal.accounts is not None:
            # Before the writes are sent: a crash after them still leaves these companies to the next account pass.
            store.mark_companies_stale(pid, company_ids)
        if pending:
            store.record_pending(pid, self.run_id, pending)
            self._send(pending, cursor)
        elif cursor is not None:
            store.set_cursor(pid, *cursor)

    def _pending(self, decision: Decision) -> PendingWrite:
        """The outbox entry of a decision with writes, and the history row it completes with."""
        result, update = decision.result, decision.plan.update
        old = decision.before.score
        history = HistoryRow(
            contact_id=result.contact_id,
            run_id=self.run_id,
            version=result.version,
            old_score=int(old) if old is not None else None,
            new_score=0 if result.excluded else result.score,
            grade=result.grade,
            stage=decision.planned_stage,
            reasons=decision.reasons,
            breakdown=_breakdown(result),
        )
        properties = dict(update.properties) if update is not None else {}
        return PendingWrite(result.contact_id, properties, decision.stage_move, history)

    def _finish_pending(self) -> None:
        """Send what a crashed run recorded but never completed."""
        pending = self._owned_pending(self.portal.store.pending_writes(self.portal.id))
        if pending:
            self.log.info("resuming_pending_writes", count=len(pending))
            for start in range(0, len(pending), BATCH):
                self._send(pending[start : start + BATCH], None)

    def _owned_pending(self, pending: Sequence[PendingWrite]) -> list[PendingWrite]:
        """A crashed run's writes, less any property the config no longer owns (an output renamed since).

        Such a value is never sent; a write left with nothing to send becomes a dead letter saying why, so the
        outbox empties and the contact is rescored by the dead-letter retry under today's config."""
        allowed = writable_properties(self.portal.rules)
        keep: list[PendingWrite] = []
        dropped: list[DeadLetter] = []
        for write in pending:
            foreign = sorted(set(write.properties) - allowed)
            if write.stage and LIFECYCLE_STAGE not in allowed:
                foreign.append(LIFECYCLE_STAGE)
            if not foreign:
                keep.append(write)
                continue
            self.log.warning("pending_write_trimmed", contact_id=write.contact_id, properties=foreign)
            owned = {k: v for k, v in write.properties.items() if k in allowed}
            stage = write.stage if LIFECYCLE_STAGE in allowed else None
            if owned or stage:
                keep.append(replace(write, properties=owned, stage=stage))
            else:
                reason = (
                    f"not sent: the config no longer owns {', '.join(foreign)} (renamed since the write was planned)"
                )
                dropped.append(DeadLetter(write.contact_id, dict(write.properties), reason))
        if dropped:
            self.portal.store.complete_writes(self.portal.id, self.run_id, [], dropped)
            self.summary.add("dead_lettered", len(dropped))
        return keep

    def _retry_dead_letters(self, now_ms: int) -> None:
        """Try again the writes HubSpot refused, once due (the store's backoff), through the normal write path.

        A letter is not resent as it was: a value from days ago could overwrite a newer one. Its contact is
        read from HubSpot now, rescored and planned like any other, and what differs is written; HubSpot
        taking it closes the letter (the write has its history row), a refusal counts an attempt (the store
        gives the letter up at the cap), and a contact that needs no write any more, or is gone from HubSpot,
        closes it as resolved.
        """
        store, pid = self.portal.store, self.portal.id
        tried = 0
        while tried < DEAD_LETTERS_PER_RUN and not self.stop.is_set():
            due = store.begin_dead_letter_retries(pid, BATCH)
            if not due:
                break
            ids = sorted({d.contact_id for d in due})
            fresh = self.portal.source.read_contacts(ids)
            store.upsert_contacts(pid, fresh)
            found = [c.id for c in fresh]
            gone = sorted(set(ids) - set(found))
            if gone:
                store.finish_dead_letter_retries(pid, gone, "the contact was deleted or merged in HubSpot")
            if found:
                self._batch(found, now_ms)
                store.finish_dead_letter_retries(pid, found, "nothing to write any more: HubSpot holds the values")
            after = store.dead_letter_records(pid, ids=[d.id for d in due])
            resolved = sum(1 for d in after if d.state == "resolved")
            self.summary.add("dead_letters_retried", len(due))
            self.summary.add("dead_letters_resolved", resolved)
            self.log.info("dead_letters_retried", letters=len(due), resolved=resolved, gone=len(gone))
            tried += len(due)

    def _send(self, pending: Sequence[PendingWrite], cursor: tuple[str, str] | None) -> None:
        portal, store, pid = self.portal, self.portal.store, self.portal.id
        by_id = {p.contact_id: p for p in pending}
        updates = [PropertyUpdate(p.contact_id, p.properties) for p in pending if p.properties]
        stages = [StageChange(p.contact_id, p.stage, clear_first=True) for p in pending if p.stage]
        check_writes(portal, updates, stages)
        outcome = portal.writer.update_contacts(updates)
        staged = portal.writer.set_stages(stages)
        props_dead = {d.contact_id for d in outcome.dead}
        stage_dead = {d.contact_id for d in staged.dead}
        dead = [*outcome.dead, *staged.dead]
        applied: list[PendingWrite] = []
        for cid, write in by_id.items():
            if cid in props_dead:
                continue
            if cid not in stage_dead:
                applied.append(write)
            elif write.properties:
                # The properties are in HubSpot: record them (and their history); the stage is its own dead letter.
                history = replace(write.history, stage=None) if write.history is not None else None
                applied.append(PendingWrite(cid, write.properties, None, history))
        # Logged once HubSpot has the values and before the batch is recorded: a crash in between makes the
        # resumed run send and log them again (at least once), never lose the event of a write HubSpot took.
        emails = {c.id: c.email for c in store.get_contacts(pid, list(by_id))} if applied else {}
        allowed = portal.config.log_emails
        for write in applied:
            self.summary.add("written")
            if write.history is not None:
                h = write.history
                self.log.info(
                    "score_changed",
                    contact_id=h.contact_id,
                    email=portal.log_email(emails.get(h.contact_id, ""), allowed),
                    old_score=h.old_score,
                    new_score=h.new_score,
                    grade=h.grade,
                    stage=h.stage,
                    reasons=h.reasons,
                )
        store.complete_writes(pid, self.run_id, applied, dead, cursor)
        self._count_stage_moves(applied)
        for letter in dead:
            self.summary.add("dead_lettered")
            self.log.error("dead_letter", contact_id=letter.contact_id, reason=letter.reason, status=letter.status)

    def _note_result(self, result: ScoreResult, email: str) -> None:
        if result.excluded:
            self.summary.add("excluded")
            self.log.info(
                "contact_excluded",
                contact_id=result.contact_id,
                email=self.portal.log_email(email, self.portal.config.log_emails),
                reason=result.exclusion_reason,
            )
        if result.holdout:
            self.summary.add("holdout")
        if result.stage_held is not None:
            self.summary.add("stages_held_back")
            self.log.info(
                "stage_held_back", contact_id=result.contact_id, stage=result.current_stage, reason=result.stage_held
            )

    def _count_stage_moves(self, applied: Sequence[PendingWrite]) -> None:
        """Promotions and demotions HubSpot took (a backward move is sent as clear then set)."""
        for write in applied:
            if write.stage:
                self.summary.add("demotions")
            elif write.properties.get(LIFECYCLE_STAGE):
                self.summary.add("promotions")


def with_lists(contact: Contact, members: Mapping[int, set[str]]) -> Contact:
    """The contact carrying the ids of the lists (of `members`: list id -> contact ids) it belongs to."""
    member_of = frozenset(lid for lid, ids in members.items() if contact.id in ids)
    if member_of == contact.list_ids:
        return contact
    return Contact(
        contact.id,
        contact.properties,
        contact.email,
        contact.created_at_ms,
        contact.lifecycle_stage,
        member_of,
        contact.company_properties,
    )


def _breakdown(result: ScoreResult) -> dict[str, Any]:
    return {
        "score": result.score,
        "fit": result.fit,
        "engagement": result.engagement,
        "decay": result.decay,
        "stage_from": result.current_stage,  # with the row's stage: the run's stage transitions (reports)
        "lines": [[h.rule, h.cents / 100, h.detail] for h in result.breakdown if h.cents or h.matched],
    }


def with_company(contact: Contact, company: Company | None) -> Contact:
    """The contact with its primary company's properties, read by `company.<property>` (None: no company)."""
    return Contact(
        contact.id,
        contact.properties,
        contact.email,
        contact.created_at_ms,
        contact.lifecycle_stage,
        contact.list_ids,
        company.properties if company is not None else None,
    )


def parse_score(value: str | None) -> int | None:
    """A score HubSpot holds, as the history's old score (None: none, or not a number)."""
    number = parse_number(value)
    return int(number) if number is not None else None


def _account_breakdown(result: AccountResult) -> dict[str, Any]:
    return {
        "score": result.score,
        "fit": result.fit,
        "engagement": result.engagement,
        "rollup": result.rollup,
        "contacts": result.contacts,
        "excluded_contacts": result.excluded_contacts,
        "lines": [[h.rule, h.cents / 100, h.detail] for h in result.breakdown if h.cents or h.matched],
    }
