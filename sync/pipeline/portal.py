"""A portal as a cycle sees it (built by sync.app), a run's summary, and what one run's steps share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Literal

from structlog.typing import FilteringBoundLogger

from sync.core.accounts import CompiledAccounts
from sync.core.model import Contact
from sync.core.rules import RuleSet
from sync.observability import EmailHasher
from sync.pipeline.cursors import POLL_OVERLAP_MS
from sync.ports import (
    Clock,
    CompanySource,
    CompanyWriter,
    CrmSource,
    CrmWriter,
    Fence,
    PortalSettings,
    StateStore,
)

Kind = Literal["incremental", "full", "rescore", "webhook"]  # webhook: the fast path of a few contacts (sync.webhooks)
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
    # How far before its last poll the poll for new form submissions looks again (portal file: forms.poll_overlap).
    poll_overlap_ms: int = POLL_OVERLAP_MS

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


@dataclass
class Lease:
    """The lease a run holds its portal by: the fence the store checks, and how long this process may trust it
    without asking (the monotonic time its last renewal was asked at, plus the ttl). Whoever keeps the lease
    renews it here; a pause (a freeze, SIGSTOP) past the bound makes every later send refuse, before the store
    is even asked."""

    fence: Fence
    ttl_s: float
    valid_until: float
    monotonic: Callable[[], float] = time.monotonic

    @classmethod
    def taken(
        cls, fence: Fence, ttl_s: float, asked_at: float, monotonic: Callable[[], float] = time.monotonic
    ) -> Lease:
        return cls(fence, ttl_s, asked_at + ttl_s, monotonic)

    def renewed(self, asked_at: float) -> None:
        self.valid_until = max(self.valid_until, asked_at + self.ttl_s)

    def trusted(self) -> bool:
        """Whether a quarter of the lease is still left by the local clock: time for a call sent now to land
        before another replica could take the portal. Renewals every third of the ttl keep two thirds left."""
        return self.monotonic() < self.valid_until - self.ttl_s / 4


@dataclass
class RunScope:
    """What the steps of one run share: its portal and id, its summary and log, its stop flag, and what it reads
    once, when first needed (a run that scores no one and reads no form submission reads neither): the members
    of the lists exclusions name, the portal's forms now (id -> name)."""

    portal: Portal
    kind: Kind
    run_id: str
    summary: RunSummary
    log: FilteringBoundLogger
    stop: threading.Event
    _lists: dict[int, set[str]] | None = field(default=None, repr=False)
    _form_names: dict[str, str] | None = field(default=None, repr=False)

    @property
    def lists(self) -> dict[int, set[str]]:
        if self._lists is None:
            source, ids = self.portal.source, sorted(self.portal.rules.list_ids)
            self._lists = {list_id: source.list_members(list_id) for list_id in ids}
        return self._lists

    @property
    def form_names(self) -> dict[str, str]:
        if self._form_names is None:
            self._form_names = self.portal.source.forms()
        return self._form_names

    @form_names.setter
    def form_names(self, names: dict[str, str]) -> None:
        self._form_names = names  # a list read elsewhere (the webhook path keeps one for a while)

    lease: Lease | None = None  # the service's (or `sync`'s) lease on the portal: every record and send is fenced

    @property
    def fence(self) -> Fence | None:
        return None if self.lease is None else self.lease.fence

    def skipped(self, problems: Iterable[str]) -> None:
        """Records the records a page left out as bad (the rest of its page is kept)."""
        for problem in problems:
            self.summary.add("skipped_records")
            self.log.warning("record_skipped", reason=problem)

    def company_problem(self, event: str, **fields: object) -> None:
        self.summary.add("company_problems")
        self.log.warning(event, **fields)


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
