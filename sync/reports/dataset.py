"""The contacts and events the operator tools look at: a snapshot file, or the live portal read-only.

`explain`, `plan`, `backtest` and `report` score what they load here with the
same core as the worker. Reading the live portal uses the worker's own
adapter (rate limits, retries) and only its read calls: nothing is written.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, runtime_checkable

from sync.core.model import Company, CompanyAssociation, Contact, EmailEvent, Event, FormSubmission
from sync.core.wire import LIFECYCLE_STAGE
from sync.hubspot.shapes import DEFAULT_FORM_TYPES, contact_to_wire, email_event_to_wire, submission_to_wire
from sync.pipeline import with_lists
from sync.ports import CompanyOutbox, CompanySource, CompanyStore, Contacts, CrmSource, Events, Outbox
from sync.reports.spill import EventSpill, Spill
from sync.snapshot import read_snapshot
from sync.snapshot.lines import SECTIONS, SnapshotStream, is_lines, write_lines
from sync.snapshot.pieces import Work

Progress = Callable[[str, int], None]  # (what is being read, records so far)
R = TypeVar("R")


@runtime_checkable
class Mapped(Protocol):
    """A source of contacts that works something out of each as it reads them."""

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]: ...

    def results(self, work: Work[R]) -> Iterator[tuple[str, R]]:
        """Each contact's id and `work(contact, events)`, in order: on every core where the source can (a large
        JSON Lines file), where `work` runs in the workers and only what it returns comes back."""
        ...


class _Inputs(Protocol):
    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]: ...


class _InOrder:
    """`results` in this process, over the class's own `inputs()`."""

    def results(self: _Inputs, work: Work[R]) -> Iterator[tuple[str, R]]:
        for contact, events in self.inputs():
            yield contact.id, work(contact, events)


@dataclass
class Dataset(_InOrder):
    """Contacts (with the lists they belong to) and their events, keyed by lowercased email."""

    source: str  # "snapshot FILE" or "portal NAME (live)"
    portal_id: int | None
    contacts: list[Contact]
    events_by_email: dict[str, list[Event]]
    problems: list[str] = field(default_factory=list)
    api_calls: int = 0  # HubSpot calls made to read it (live only)
    companies: list[Company] = field(default_factory=list)
    associations: list[CompanyAssociation] = field(default_factory=list)

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        for contact in self.contacts:
            yield contact, self.events_by_email.get(contact.email, []) if contact.email else []

    def contact(self, key: str) -> Contact | None:
        """The contact with this id, or this email address."""
        email = key.strip().lower() if "@" in key else None
        for contact in self.contacts:
            if contact.id == key or (email is not None and contact.email == email):
                return contact
        return None

    @property
    def count(self) -> int | None:
        """How many contacts `inputs()` yields (a progress bar's total)."""
        return len(self.contacts)

    def events_of(self, contact: Contact) -> list[Event]:
        return self.events_by_email.get(contact.email, []) if contact.email else []

    @property
    def newest_event_ms(self) -> int | None:
        return max((e.at_ms for events in self.events_by_email.values() for e in events), default=None)


def from_snapshot(file: str | Path, form_types: Collection[str] = DEFAULT_FORM_TYPES) -> Dataset:
    snapshot = read_snapshot(file, form_types)
    problems = [f"{file}: {p}" for p in snapshot.problems]
    return Dataset(
        f"snapshot {file}",
        snapshot.portal_id,
        snapshot.contacts,
        snapshot.events_by_email,
        problems,
        companies=snapshot.companies,
        associations=snapshot.associations,
    )


class ContactStream:
    """A JSON Lines snapshot's contacts and events, read once as they are gone through: what plan, backtest,
    report and score take in place of a `Dataset` when the file allows it, in the memory of one contact.

    The companies and associations are there from the start; `problems` grows as the file is read and is
    complete once `inputs()` is done."""

    api_calls = 0
    count: int | None = None  # not known before the end

    def __init__(self, file: str | Path, form_types: Collection[str] = DEFAULT_FORM_TYPES) -> None:
        self.file = file
        self.source = f"snapshot {file}"
        self._stream = SnapshotStream(file, form_types)
        self.portal_id = self._stream.portal_id
        self.companies: list[Company] = self._stream.companies
        self.associations: list[CompanyAssociation] = self._stream.associations
        self.problems: list[str] = []
        self._reported = 0
        self._take_problems()

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        yield from self._stream.inputs()
        self._take_problems()

    def results(self, work: Work[R]) -> Iterator[tuple[str, R]]:
        yield from self._stream.results(work)
        self._take_problems()

    @property
    def unattached_events(self) -> int:
        return self._stream.unattached_events

    def _take_problems(self) -> None:
        fresh = self._stream.problems[self._reported :]
        self._reported += len(fresh)
        self.problems.extend(f"{self.file}: {p}" for p in fresh)


def source_of(file: str | Path, form_types: Collection[str] = DEFAULT_FORM_TYPES) -> Dataset | ContactStream:
    """The snapshot file's contacts: streamed when it is JSON Lines, else loaded whole."""
    return ContactStream(file, form_types) if is_lines(file) else from_snapshot(file, form_types)


def from_portal(
    source: CrmSource,
    name: str,
    portal_id: int,
    list_ids: Collection[int],
    until_ms: int,
    progress: Progress | None = None,
) -> Dataset:
    """Every contact, form submission and email event of the portal up to `until_ms`, and the lists named."""
    tick = progress or (lambda what, n: None)
    problems: list[str] = []
    members = {list_id: source.list_members(list_id) for list_id in sorted(list_ids)}
    contacts: list[Contact] = []
    for page in source.contact_pages(None):
        problems.extend(page.problems)
        contacts.extend(with_lists(c, members) for c in page.contacts)
        tick("contacts", len(contacts))
    events: dict[str, list[Event]] = {}
    count = 0
    for batch in all_events(source, until_ms, problems):
        for event in batch:
            events.setdefault(event.email, []).append(event)
        count += len(batch)
        tick("events", count)
    return Dataset(f"portal {name} (live)", portal_id, contacts, events, problems)


class PortalStream(_InOrder):
    """The live portal's contacts and their events, read-only and streamed: the memory of a page of contacts.

    Opening it reads the lists named (their members are held: list ids per contact) and every event up to
    `until_ms` into a temporary file by email (`EventSpill`); `inputs()` then reads the contacts a page at a
    time, each with its events from the file, in the order `from_portal` gives them. With `crm`, the
    companies are read at once (held: they are few beside the contacts) and each page's associations before
    the page goes by (passed to `on_associations`, which the company roll-up reads)."""

    count: int | None = None  # the progress bar's total, when HubSpot says

    def __init__(
        self,
        source: CrmSource,
        name: str,
        portal_id: int,
        list_ids: Collection[int],
        until_ms: int,
        progress: Progress | None = None,
    ) -> None:
        self.source_port, self.tick = source, progress or (lambda what, n: None)
        self.source = f"portal {name} (live)"
        self.portal_id = portal_id
        self.problems: list[str] = []
        self.calls: list[Callable[[], int]] = []  # the HubSpot calls of each reader used, as they are made
        self.companies: list[Company] = []
        self.associations: list[CompanyAssociation] = []  # stays empty: each page's go to `on_associations`
        self.crm: CompanySource | None = None
        self.on_associations: Callable[[list[CompanyAssociation]], None] | None = None
        self.members = {list_id: source.list_members(list_id) for list_id in sorted(list_ids)}
        self.events = EventSpill()
        for batch in all_events(source, until_ms, self.problems):
            self.events.add(batch)
            self.tick("events", self.events.count)
        self.contacts_read = 0

    @property
    def api_calls(self) -> int:
        return sum(calls() for calls in self.calls)

    def add_companies(self, crm: CompanySource) -> None:
        """Every company now; each page's associations as the contacts are read."""
        for page in crm.company_pages(None):
            self.problems.extend(page.problems)
            self.companies.extend(page.companies)
            self.tick("companies", len(self.companies))
        self.crm = crm

    def pages(self) -> Iterator[list[tuple[Contact, list[Event]]]]:
        """A page of contacts and their events at a time."""
        for page in self.source_port.contact_pages(None):
            self.problems.extend(page.problems)
            contacts = [with_lists(c, self.members) for c in page.contacts]
            if self.crm is not None and contacts:
                associations, problems = self.crm.company_associations([c.id for c in contacts])
                self.problems.extend(problems)
                if self.on_associations is not None:
                    self.on_associations(associations)
            events = self.events.by_email(c.email for c in contacts if c.email)
            self.contacts_read += len(contacts)
            self.tick("contacts", self.contacts_read)
            yield [(c, events.get(c.email, []) if c.email else []) for c in contacts]

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        for page in self.pages():
            yield from page

    def close(self) -> None:
        self.events.close()


STORE_PAGE = 1000  # contacts read from the state store at a time


class StoredPortal(Contacts, Events, CompanyStore, Outbox, CompanyOutbox, Protocol):
    """What `StoreStream` reads of the state store."""


def _holding(contact: Contact, ours: Mapping[str, str] | None) -> Contact:
    """The contact as HubSpot holds it as far as the store knows: as last read, with the values leadsync wrote
    since over it (a forward stage among them; a backward move is not a property value and is not known here)."""
    if not ours:
        return contact
    properties = {**contact.properties, **ours}
    stage = ours.get(LIFECYCLE_STAGE) or contact.lifecycle_stage
    return Contact(contact.id, properties, contact.email, contact.created_at_ms, stage, contact.list_ids)


class StoreStream(_InOrder):
    """The contacts and events the state store holds for a portal (as the worker last read them), a page at a
    time in id order: plan, backtest, report and score without reading HubSpot. List memberships are the
    stored ones; with `companies`, the stored companies are held and each page's stored associations are passed
    to `on_associations` before it goes by."""

    api_calls = unattached_events = 0  # events are found by the contacts' emails: none is looked at alone
    count: int | None = None

    def __init__(self, store: StoredPortal, portal_id: int, label: str, page: int = STORE_PAGE) -> None:
        self.store, self.portal_id, self.page = store, portal_id, page
        self.source = f"state store {label}"
        self.problems: list[str] = []
        self.companies: list[Company] = []
        self.associations: list[CompanyAssociation] = []  # stays empty: each page's go to `on_associations`
        self.on_associations: Callable[[list[CompanyAssociation]], None] | None = None
        self._companies = False

    def add_companies(self) -> None:
        """The stored companies, with the account values leadsync wrote since they were read over them."""
        for ids in self.store.iter_company_ids(self.portal_id, self.page):
            written = self.store.written_company_values(self.portal_id, ids)
            for company in self.store.get_companies(self.portal_id, ids):
                ours = written.get(company.id)
                self.companies.append(Company(company.id, {**company.properties, **ours}) if ours else company)
        self._companies = True

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        for ids in self.store.iter_contact_ids(self.portal_id, self.page):
            contacts = self.store.get_contacts(self.portal_id, ids)
            if self._companies and self.on_associations is not None:
                self.on_associations(self.store.company_associations(self.portal_id, ids))
            events = self.store.events_for_emails(self.portal_id, [c.email for c in contacts if c.email])
            written = self.store.written_values(self.portal_id, ids)
            for contact in contacts:
                yield _holding(contact, written.get(contact.id)), events.get(contact.email, []) if contact.email else []


Source = Dataset | ContactStream | PortalStream | StoreStream  # what the operator tools go through


def add_companies(data: Dataset, crm: CompanySource, progress: Progress | None = None) -> None:
    """Every company of the portal and the company associations of the dataset's contacts (read in batches of
    100 contacts a call), added to `data`: what `company.<property>` and the account scores read."""
    tick = progress or (lambda what, n: None)
    for page in crm.company_pages(None):
        data.problems.extend(page.problems)
        data.companies.extend(page.companies)
        tick("companies", len(data.companies))
    if data.contacts:
        associations, problems = crm.company_associations([c.id for c in data.contacts])
        data.associations.extend(associations)
        data.problems.extend(problems)
        tick("associations", len(data.associations))


def read_contact(
    source: CrmSource, contact_id: str, list_ids: Collection[int], until_ms: int
) -> tuple[Contact | None, list[Event], list[str]]:
    """One contact (by id or email) as HubSpot holds it now, and its events."""
    found = (
        source.read_contacts_by_email([contact_id.strip().lower()])
        if "@" in contact_id
        else source.read_contacts([contact_id])
    )
    if not found:
        return None, [], []
    members = {list_id: source.list_members(list_id) for list_id in sorted(list_ids)}
    contact = with_lists(found[0], members)
    if not contact.email:
        return contact, [], []
    problems: list[str] = []
    # Neither endpoint filters by contact: read them all and keep this contact's.
    events = [e for batch in all_events(source, until_ms, problems) for e in batch if e.email == contact.email]
    return contact, events, problems


def read_account(
    source: CrmSource, crm: CompanySource, company_id: str, list_ids: Collection[int], until_ms: int
) -> Dataset | None:
    """One company as HubSpot holds it now, its contacts, their events, and their other companies (which give
    each contact its primary one); None when the company does not exist. Batched reads (100 ids a call), then
    the portal's events, filtered to the contacts'."""
    found = crm.read_companies([company_id])
    if not found:
        return None
    members, problems = crm.company_contacts([company_id])
    contact_ids = sorted({a.contact_id for a in members})
    associations, more = crm.company_associations(contact_ids) if contact_ids else ([], [])
    problems += more
    pairs = {(a.contact_id, a.company_id) for a in associations}  # a contact whose own read failed keeps this one
    others = sorted({a.company_id for a in associations} - {company_id})
    companies = [found[0], *(crm.read_companies(others) if others else [])]
    lists = {list_id: source.list_members(list_id) for list_id in sorted(list_ids)}
    contacts = [with_lists(c, lists) for c in source.read_contacts(contact_ids)] if contact_ids else []
    emails = {c.email for c in contacts if c.email}
    events: dict[str, list[Event]] = {}
    if emails:
        for batch in all_events(source, until_ms, problems):
            for event in batch:
                if event.email in emails:
                    events.setdefault(event.email, []).append(event)
    return Dataset(
        f"company {company_id} (live)",
        None,
        contacts,
        events,
        problems,
        companies=companies,
        associations=[*associations, *(a for a in members if (a.contact_id, a.company_id) not in pairs)],
    )


def all_events(source: CrmSource, until_ms: int, problems: list[str]) -> Iterator[Sequence[Event]]:
    """Every form submission (a batch per form) and email event (a batch per page) up to `until_ms`;
    unusable records are added to `problems`."""
    for form_id, form_name in sorted(source.forms().items()):
        for form_page in source.form_submissions(form_id, form_name, 0):  # a large form is never held whole
            problems.extend(form_page.problems)
            yield form_page.submissions
    for page in source.email_events(0, until_ms):
        problems.extend(page.problems)
        yield page.events


def snapshot_json(data: Dataset) -> dict[str, Any]:
    """The dataset as a snapshot file (HubSpot's shapes): what `score`, `backtest` and the rest read."""
    forms: dict[str, str] = {}
    submissions: list[dict[str, Any]] = []
    email_events: list[dict[str, Any]] = []
    for events in data.events_by_email.values():
        for event in events:
            if isinstance(event, FormSubmission):
                forms.setdefault(event.form_id, event.form_name)
                submissions.append(submission_to_wire(event))
            else:
                email_events.append(email_event_to_wire(event))
    lists: dict[int, list[str]] = {}
    for contact in data.contacts:
        for list_id in sorted(contact.list_ids):
            lists.setdefault(list_id, []).append(contact.id)
    return {
        "portal_id": data.portal_id,
        "contacts": [contact_to_wire(c) for c in data.contacts],
        "forms": [{"id": form_id, "name": name} for form_id, name in sorted(forms.items())],
        "form_submissions": sorted(submissions, key=lambda s: (s["submittedAt"], s["conversionId"])),
        "email_events": sorted(email_events, key=lambda e: (e["created"], e["id"])),
        "lists": [{"listId": list_id, "contactIds": ids} for list_id, ids in sorted(lists.items())],
        "companies": [{"id": c.id, "properties": dict(c.properties)} for c in data.companies],
        "associations": [
            {"contactId": a.contact_id, "companyId": a.company_id, "primary": a.primary} for a in data.associations
        ],
    }


def write_portal_lines(data: PortalStream, out: IO[str]) -> dict[str, int]:
    """Writes the live portal as a JSON Lines snapshot while its contacts are read, in the memory of a page:
    each contact and its events go to a temporary file as they come, then the header, the forms, lists,
    companies and associations (known only once every contact was read) are written to `out`, then that file.
    A contact's events are in the order `snapshot_json` gives them, so the file reads back as the
    single-document snapshot of the same portal does. Returns the records written by kind."""
    counts = dict.fromkeys(SECTIONS, 0)
    forms: dict[str, str] = {}
    lists: dict[int, list[str]] = {}
    associations: Spill[CompanyAssociation] = Spill(
        lambda a: [a.contact_id, a.company_id, a.primary], lambda v: CompanyAssociation(*v)
    )
    if data.crm is not None:
        data.on_associations = lambda page: _append_all(associations, page)

    def records(events: Iterable[Event]) -> list[tuple[str, dict[str, Any]]]:
        subs, mails = [], []
        for event in events:
            if isinstance(event, FormSubmission):
                forms.setdefault(event.form_id, event.form_name)
                subs.append(submission_to_wire(event))
            elif isinstance(event, EmailEvent):
                mails.append(email_event_to_wire(event))
        counts["form_submission"] += len(subs)
        counts["email_event"] += len(mails)
        subs.sort(key=lambda s: (s["submittedAt"], s["conversionId"]))  # as `snapshot_json` orders them
        mails.sort(key=lambda e: (e["created"], e["id"]))
        return [("form_submission", e) for e in subs] + [("email_event", e) for e in mails]

    def contacts() -> Iterator[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]]:
        for contact, events in data.inputs():
            for list_id in sorted(contact.list_ids):
                lists.setdefault(list_id, []).append(contact.id)
            counts["contact"] += 1
            yield contact_to_wire(contact), records(events)

    def unclaimed() -> Iterator[tuple[str, dict[str, Any]]]:
        yield from records(data.events.unclaimed())  # once every contact has claimed its own

    try:
        with tempfile.TemporaryFile("w+", encoding="utf-8") as body:
            write_lines(body, data.portal_id, {}, contacts(), unclaimed())
            head: dict[str, Iterable[Mapping[str, Any]]] = {
                "form": [{"id": form_id, "name": name} for form_id, name in sorted(forms.items())],
                "list": [{"listId": list_id, "contactIds": ids} for list_id, ids in sorted(lists.items())],
                "company": [{"id": c.id, "properties": dict(c.properties)} for c in data.companies],
                "association": (
                    {"contactId": a.contact_id, "companyId": a.company_id, "primary": a.primary} for a in associations
                ),
            }
            write_lines(out, data.portal_id, head, ())
            body.seek(0)
            body.readline()  # its own header: `out` has it
            shutil.copyfileobj(body, out)
    finally:
        associations.close()
    counts.update(form=len(forms), list=len(lists), company=len(data.companies), association=len(associations))
    return counts


def _append_all(spill: Spill[CompanyAssociation], items: Iterable[CompanyAssociation]) -> None:
    for item in items:
        spill.append(item)
