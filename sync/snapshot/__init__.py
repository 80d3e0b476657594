"""A portal snapshot: one JSON file in HubSpot's own shapes (ARCHITECTURE.md), or JSON Lines (`lines`).

`read_records` is the one reader of a snapshot's raw records: what it accepts, skips and says about each
skipped record is what both `score` (through `parse_snapshot`) and the sandbox (`Portal.from_snapshot`) go
by, so a snapshot scores offline as the sandbox serving it would be scored live. `read_snapshot` then turns
the accepted records into core values, ties events to contacts by email, and leaves out the events no rule
reads (counted, not reported).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Container, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sync.core.conditions import parse_date_ms
from sync.core.model import (
    Company,
    CompanyAssociation,
    Contact,
    EmailEvent,
    Event,
    FormSubmission,
    current_form_name,
)
from sync.errors import ConfigError, ConfigProblem, SkippableRecordError
from sync.hubspot.shapes import (
    DEFAULT_FORM_TYPES,
    FORM_TYPES,
    LAST_MODIFIED,
    company_from_wire,
    contact_from_wire,
    email_event_from_wire,
    submission_from_wire,
)


@dataclass
class Snapshot:
    portal_id: int | None
    contacts: list[Contact]
    events_by_email: dict[str, list[Event]]
    problems: list[str] = field(default_factory=list)
    unattached_events: int = 0
    ignored_events: int = 0
    companies: list[Company] = field(default_factory=list)
    associations: list[CompanyAssociation] = field(default_factory=list)

    def scoring_inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        for contact in self.contacts:
            yield contact, self.events_by_email.get(contact.email, []) if contact.email else []

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        return self.scoring_inputs()

    @property
    def count(self) -> int | None:
        return len(self.contacts)


# --- the raw records: one reader for score and the sandbox -----------------------------------------


@dataclass(frozen=True)
class ContactEntry:
    """An accepted contact: its raw record, and what the sync would read from it (no list memberships yet)."""

    raw: Mapping[str, Any]
    contact: Contact
    modified_ms: int | None


@dataclass(frozen=True)
class FormEntry:
    id: str
    name: str
    form_type: str
    archived: bool


@dataclass(frozen=True)
class SubmissionEntry:
    raw: Mapping[str, Any]
    form_id: str
    submission: FormSubmission
    where: str  # "form_submissions[i]": a key for one sent without a conversionId


@dataclass(frozen=True)
class EmailEventEntry:
    """An accepted email event; `event` is None for a type no rule scores (served, but not scored)."""

    raw: Mapping[str, Any]
    created_ms: int
    event: EmailEvent | None


@dataclass(frozen=True)
class ListEntry:
    list_id: int
    name: str
    members: tuple[int, ...]
    stamps: Mapping[str, Any]  # contact id -> membership time as given (may be missing)


@dataclass(frozen=True)
class CompanyEntry:
    raw: Mapping[str, Any]
    company: Company


@dataclass
class SnapshotRecords:
    """The records of a snapshot a HubSpot portal could hold, in file order, and why the others were skipped.

    A record repeated whole (an email event with the same id and time, a submission with the same
    conversionId) is HubSpot delivering it twice: it is kept once and counted in `repeats`, not reported."""

    portal_id: int | None
    contacts: list[ContactEntry] = field(default_factory=list)
    forms: list[FormEntry] = field(default_factory=list)
    submissions: list[SubmissionEntry] = field(default_factory=list)
    email_events: list[EmailEventEntry] = field(default_factory=list)
    lists: list[ListEntry] = field(default_factory=list)
    companies: list[CompanyEntry] = field(default_factory=list)
    associations: list[CompanyAssociation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repeats: int = 0


def read_records(raw: Mapping[str, Any]) -> SnapshotRecords:
    records = SnapshotRecords(portal_id=portal_id(raw.get("portal_id")))
    _read_contacts(raw, records)
    skipped_forms = _read_forms(raw, records)
    _read_submissions(raw, records, skipped_forms)
    _read_email_events(raw, records)
    _read_lists(raw, records)
    _read_companies(raw, records)
    _read_associations(raw, records)
    return records


def numeric(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits, which int() may refuse."""
    return text.isascii() and text.isdigit()


def portal_id(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and not isinstance(value, bool) and numeric(str(value)) else None


def section(raw: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    """One section of the snapshot as a list; a section that is not one is reported and read as empty."""
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{key}: is not a list; ignored")
        return []
    return value


def _read_contacts(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    check = ContactCheck()
    for i, item in enumerate(section(raw, "contacts", records.problems)):
        entry = check.accept(i, item, records.problems)
        if entry is not None:
            records.contacts.append(entry)


class Remembered(Protocol):
    """What `ContactCheck` keeps its keys in: a set, or one on disk."""

    def __contains__(self, key: object, /) -> bool: ...

    def add(self, key: Any, /) -> None: ...


class ContactCheck:
    """Accepts a snapshot's contacts one at a time: a contact id or email seen before is skipped.

    `key` turns an id or an email into what is remembered of it, in `ids` and `emails` (sets unless given);
    a streaming reader passes a compact key and sets kept on disk."""

    def __init__(
        self, key: Callable[[str], Hashable] = str, ids: Remembered | None = None, emails: Remembered | None = None
    ) -> None:
        self.key = key
        self.seen: Remembered = set() if ids is None else ids
        self.emails: Remembered = set() if emails is None else emails

    def accept(self, i: int, item: Any, problems: list[str]) -> ContactEntry | None:
        entry = checked_contact(i, item, problems)
        return entry if entry is not None and self.admit(i, entry.contact.id, entry.contact.email, problems) else None

    def admit(self, i: int, contact_id: str, address: str, problems: list[str]) -> bool:
        """Whether the checked contact is the first with its id and its email (else a problem says why not)."""
        cid, email = self.key(contact_id), self.key(address) if address else None
        if cid in self.seen:
            problems.append(f"contacts[{i}]: contact {contact_id} appears twice; the later one skipped")
        elif email is not None and email in self.emails:
            # HubSpot keeps one contact per email address; the sync ties events to contacts by it.
            problems.append(f"contacts[{i}]: contact {contact_id}: email {address} is on an earlier contact; skipped")
        else:
            self.seen.add(cid)
            if email is not None:
                self.emails.add(email)
            return True
        return False


def checked_contact(i: int, item: Any, problems: list[str]) -> ContactEntry | None:
    """The contact record checked on its own (not against the others: see `ContactCheck`), or a problem."""
    try:
        return _contact_entry(item)
    except SkippableRecordError as exc:
        problems.append(f"contacts[{i}]: {exc}; skipped")
        return None


def _contact_entry(item: Any) -> ContactEntry:
    contact = contact_from_wire(item)
    if not numeric(contact.id):
        raise SkippableRecordError(f"contact {contact.id}", "id is not numeric")
    modified = contact.properties.get(LAST_MODIFIED, "")
    modified_ms = parse_date_ms(modified)
    if modified.strip() and modified_ms is None:
        raise SkippableRecordError(f"contact {contact.id}", f"lastmodifieddate is not a date: {modified!r}")
    return ContactEntry(item, _with(contact, str(int(contact.id)), frozenset()), modified_ms)


def _with(contact: Contact, cid: str, list_ids: frozenset[int]) -> Contact:
    return Contact(cid, contact.properties, contact.email, contact.created_at_ms, contact.lifecycle_stage, list_ids)


def _read_forms(raw: Mapping[str, Any], records: SnapshotRecords) -> set[str]:
    """Reads the forms; returns the ids of those skipped (their submissions are skipped with them)."""
    skipped: set[str] = set()
    for i, item in enumerate(section(raw, "forms", records.problems)):
        form_entry(i, item, records, skipped)
    return skipped


def form_entry(i: int, item: Any, records: SnapshotRecords, skipped: set[str]) -> None:
    """One form, added to `records.forms`, or its id to `skipped` (with a problem)."""
    if not isinstance(item, Mapping) or item.get("id") in (None, ""):
        records.problems.append(f"forms[{i}]: needs an id; skipped")
        return
    form_id = str(item["id"])
    form_type = str(item.get("formType") or "hubspot")
    archived = item.get("archived", False)
    if form_type not in FORM_TYPES:
        records.problems.append(f"forms[{i}]: formType {form_type!r} is not one of {', '.join(FORM_TYPES)}; skipped")
    elif not isinstance(archived, bool):
        records.problems.append(f"forms[{i}]: archived must be true or false; skipped")
    else:
        records.forms.append(FormEntry(form_id, str(item.get("name") or ""), form_type, archived))
        return
    skipped.add(form_id)


def _read_submissions(raw: Mapping[str, Any], records: SnapshotRecords, skipped_forms: set[str]) -> None:
    conversions: set[str] = set()
    for i, item in enumerate(section(raw, "form_submissions", records.problems)):
        entry = submission_entry(i, item, records, skipped_forms, conversions)
        if entry is not None:
            records.submissions.append(entry)


def submission_entry(
    i: int, item: Any, records: SnapshotRecords, skipped_forms: Container[str], conversions: set[str]
) -> SubmissionEntry | None:
    """One accepted submission; None for one skipped (with a problem) or repeated (counted in `repeats`)."""
    where = f"form_submissions[{i}]"
    form_id = str(item.get("formId") or "") if isinstance(item, Mapping) else ""
    try:
        if not isinstance(item, Mapping):
            raise SkippableRecordError("submission", "is not an object")
        if not form_id:
            raise SkippableRecordError("submission", "has no formId")
        submission = submission_from_wire(item, form_id)
    except SkippableRecordError as exc:
        records.problems.append(f"{where}: {exc}; skipped")
        return None
    conversion = str(item.get("conversionId") or "")
    if form_id in skipped_forms:
        records.problems.append(f"{where}: its form {form_id} was skipped (see forms); skipped")
    elif conversion and conversion in conversions:
        records.repeats += 1
    else:
        if conversion:
            conversions.add(conversion)
        return SubmissionEntry(item, form_id, submission, where)
    return None


def _read_email_events(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    seen: set[tuple[str, int]] = set()
    for i, item in enumerate(section(raw, "email_events", records.problems)):
        entry = email_event_entry(i, item, records, seen)
        if entry is not None:
            records.email_events.append(entry)


def email_event_entry(
    i: int, item: Any, records: SnapshotRecords, seen: set[tuple[str, int]]
) -> EmailEventEntry | None:
    """One accepted email event; None for one skipped (with a problem) or repeated (counted in `repeats`)."""
    try:
        event = email_event_from_wire(item)
        created = _event_created(item)
    except SkippableRecordError as exc:
        records.problems.append(f"email_events[{i}]: {exc}; skipped")
        return None
    key = (str(item["id"]).strip(), created)
    if key in seen:
        records.repeats += 1
        return None
    seen.add(key)
    return EmailEventEntry(item, created, event)


def _event_created(item: Mapping[str, Any]) -> int:
    """An email event's time, checked as the sync checks a scored event's: an unscored one must have one too."""
    record = f"email event {str(item['id']).strip()}"
    recipient = str(item.get("recipient") or "").strip()
    if not recipient:
        raise SkippableRecordError(record, "has no recipient")
    value = item.get("created")
    created = value if isinstance(value, int) and not isinstance(value, bool) else None
    if created is None and isinstance(value, str):
        created = parse_date_ms(value)
    if created is None:
        raise SkippableRecordError(record, f"created is missing or not a timestamp: {value!r}")
    if created <= 0:
        raise SkippableRecordError(record, f"created {value!r} is at or before 1970-01-01: not a real time")
    return created


def _read_lists(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    for i, item in enumerate(section(raw, "lists", records.problems)):
        list_entry(i, item, records)


def list_entry(i: int, item: Any, records: SnapshotRecords) -> None:
    """One list, added to `records.lists`, or a problem."""
    ids = item.get("contactIds") if isinstance(item, Mapping) else None
    ids = [] if isinstance(item, Mapping) and ids is None else ids
    if not (
        isinstance(item, Mapping)
        and numeric(str(item.get("listId", "")))
        and isinstance(ids, list)
        and all(numeric(str(c)) for c in ids)
    ):
        records.problems.append(f"lists[{i}]: needs a numeric listId and contactIds; skipped")
        return
    stamps = item.get("membershipTimestamps") or {}
    if not isinstance(stamps, Mapping):
        records.problems.append(f"lists[{i}]: membershipTimestamps must map contact ids to epoch ms; skipped")
        return
    list_id = int(str(item["listId"]))
    members = tuple(dict.fromkeys(int(str(c)) for c in ids))
    records.lists.append(ListEntry(list_id, str(item.get("name") or f"List {list_id}"), members, stamps))


def _read_companies(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    """`companies: [{"id", "properties"}]`, in HubSpot's shape; older snapshots have none."""
    seen: set[str] = set()
    for i, item in enumerate(section(raw, "companies", records.problems)):
        company_entry(i, item, records, seen)


def company_entry(i: int, item: Any, records: SnapshotRecords, seen: set[str]) -> None:
    """One company, added to `records.companies`, or a problem."""
    try:
        company = company_from_wire(item)
    except SkippableRecordError as exc:
        records.problems.append(f"companies[{i}]: {exc}; skipped")
        return
    if company.id in seen:
        records.problems.append(f"companies[{i}]: company {company.id} appears twice; the later one skipped")
        return
    seen.add(company.id)
    records.companies.append(CompanyEntry(item, company))


def _read_associations(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    """`associations: [{"contactId", "companyId", "primary"}]`. One to a contact or company the snapshot does
    not hold is skipped (HubSpot can hand back an association to a record deleted since); a pair given twice
    is one association, primary if either says so."""
    contacts = {e.contact.id for e in records.contacts}
    companies = {e.company.id for e in records.companies}
    pairs: dict[tuple[str, str], bool] = {}
    for i, item in enumerate(section(raw, "associations", records.problems)):
        pair = association_pair(i, item, records.problems)
        if pair is None:
            continue
        contact, company, primary = pair
        problem = association_problem(i, contact, company, contacts, companies)
        if problem:
            records.problems.append(problem)
        else:
            pairs[(contact, company)] = pairs.get((contact, company), False) or primary
    records.associations = [CompanyAssociation(c, k, p) for (c, k), p in pairs.items()]


def association_pair(i: int, item: Any, problems: list[str]) -> tuple[str, str, bool] | None:
    """One association's (contact id, company id, primary), whether they exist not yet looked at; None (with a
    problem) for a malformed one."""
    where = f"associations[{i}]"
    if not isinstance(item, Mapping):
        problems.append(f"{where}: is not an object; skipped")
        return None
    contact, company = str(item.get("contactId", "")).strip(), str(item.get("companyId", "")).strip()
    primary = item.get("primary", False)
    if not (numeric(contact) and numeric(company)):
        problems.append(f"{where}: needs a numeric contactId and companyId; skipped")
    elif not isinstance(primary, bool):
        problems.append(f"{where}: primary must be true or false; skipped")
    else:
        return str(int(contact)), str(int(company)), primary
    return None


def association_problem(
    i: int, contact: str, company: str, contacts: Container[str], companies: Container[str]
) -> str | None:
    """Why an association is skipped: its contact or its company is not in the snapshot (the contact named
    first); None when both are."""
    if contact not in contacts:
        return f"associations[{i}]: contact {contact} is not in the snapshot; skipped"
    if company not in companies:
        return f"associations[{i}]: company {company} is not in the snapshot; skipped"
    return None


# --- score's reading: core values ---------------------------------------------------------------


def read_snapshot(file: str | Path, form_types: Collection[str] = DEFAULT_FORM_TYPES) -> Snapshot:
    return parse_snapshot(load_snapshot_json(file), form_types)


def load_snapshot_json(file: str | Path) -> dict[str, Any]:
    """The snapshot file's JSON object; ConfigError naming the file (and line) when it is not one."""
    from sync.snapshot.lines import is_lines, read_document  # noqa: PLC0415 - lines builds on this module

    path = Path(file)
    if is_lines(path):
        return read_document(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON: {exc.msg} at column {exc.colno}"
        raise ConfigError([ConfigProblem(str(path), exc.lineno, "", problem)]) from exc
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(str(path), 1, "", "a snapshot must be a JSON object")])
    return raw


def parse_snapshot(raw: Mapping[str, Any], form_types: Collection[str] = DEFAULT_FORM_TYPES) -> Snapshot:
    """The snapshot's contacts and events. Submissions of a form its `forms` list as archived, or with a
    `formType` not in `form_types`, are left out (counted in `ignored_events`), as the live sync never reads
    them; a form without `formType` or `archived` is a live HubSpot form (README "What counts")."""
    records = read_records(raw)
    memberships: dict[str, set[int]] = {}
    for entry in records.lists:
        for cid in entry.members:
            memberships.setdefault(str(cid), set()).add(entry.list_id)
    contacts = [_with(e.contact, e.contact.id, frozenset(memberships.get(e.contact.id, ()))) for e in records.contacts]
    events, ignored = _scored_events(records, form_types)
    known = {c.email for c in contacts if c.email}
    by_email: dict[str, list[Event]] = {}
    unattached = 0
    for event in events:
        if event.email in known:
            by_email.setdefault(event.email, []).append(event)
        else:
            unattached += 1
    return Snapshot(
        portal_id=records.portal_id,
        contacts=contacts,
        events_by_email=by_email,
        problems=records.problems,
        unattached_events=unattached,
        ignored_events=ignored,
        companies=[e.company for e in records.companies],
        associations=records.associations,
    )


def _scored_events(records: SnapshotRecords, form_types: Collection[str]) -> tuple[list[Event], int]:
    """The events rules read, and how many accepted ones they do not (unread forms, unscored email types)."""
    unread = {f.id for f in records.forms if f.archived or f.form_type not in form_types}
    names = {f.id: f.name for f in records.forms if f.id not in unread}
    events: list[Event] = []
    ignored = 0
    for sub in records.submissions:
        if sub.form_id in unread:
            ignored += 1
        else:
            s = sub.submission
            name = current_form_name(names, sub.form_id)
            events.append(FormSubmission(s.event_id, s.at_ms, s.email, s.form_id, name, s.page_url))
    for entry in records.email_events:
        if entry.event is None:
            ignored += 1
        else:
            events.append(entry.event)
    return events, ignored
