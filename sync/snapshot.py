"""A portal snapshot: one JSON file in HubSpot's own shapes (ARCHITECTURE.md).

`read_records` is the one reader of a snapshot's raw records: what it accepts, skips and says about each
skipped record is what both `score` (through `parse_snapshot`) and the sandbox (`Portal.from_snapshot`) go
by, so a snapshot scores offline as the sandbox serving it would be scored live. `read_snapshot` then turns
the accepted records into core values, ties events to contacts by email, and leaves out the events no rule
reads (counted, not reported).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    records = SnapshotRecords(portal_id=_portal_id(raw.get("portal_id")))
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


def _portal_id(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and not isinstance(value, bool) and numeric(str(value)) else None


def section(raw: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    """One section of the snapshot as a list; a section that is not one is reported and read as empty."""
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{key}: is not a list; ignored")
        return []
    return value


def _read_contacts(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    seen: set[str] = set()
    emails: set[str] = set()
    for i, item in enumerate(section(raw, "contacts", records.problems)):
        try:
            entry = _contact_entry(item)
        except SkippableRecordError as exc:
            records.problems.append(f"contacts[{i}]: {exc}; skipped")
            continue
        contact = entry.contact
        if contact.id in seen:
            records.problems.append(f"contacts[{i}]: contact {contact.id} appears twice; the later one skipped")
        elif contact.email and contact.email in emails:
            # HubSpot keeps one contact per email address; the sync ties events to contacts by it.
            records.problems.append(
                f"contacts[{i}]: contact {contact.id}: email {contact.email} is on an earlier contact; skipped"
            )
        else:
            seen.add(contact.id)
            if contact.email:
                emails.add(contact.email)
            records.contacts.append(entry)


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
        if not isinstance(item, Mapping) or item.get("id") in (None, ""):
            records.problems.append(f"forms[{i}]: needs an id; skipped")
            continue
        form_id = str(item["id"])
        form_type = str(item.get("formType") or "hubspot")
        archived = item.get("archived", False)
        if form_type not in FORM_TYPES:
            records.problems.append(
                f"forms[{i}]: formType {form_type!r} is not one of {', '.join(FORM_TYPES)}; skipped"
            )
        elif not isinstance(archived, bool):
            records.problems.append(f"forms[{i}]: archived must be true or false; skipped")
        else:
            records.forms.append(FormEntry(form_id, str(item.get("name") or ""), form_type, archived))
            continue
        skipped.add(form_id)
    return skipped


def _read_submissions(raw: Mapping[str, Any], records: SnapshotRecords, skipped_forms: set[str]) -> None:
    conversions: set[str] = set()
    for i, item in enumerate(section(raw, "form_submissions", records.problems)):
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
            continue
        conversion = str(item.get("conversionId") or "")
        if form_id in skipped_forms:
            records.problems.append(f"{where}: its form {form_id} was skipped (see forms); skipped")
        elif conversion and conversion in conversions:
            records.repeats += 1
        else:
            if conversion:
                conversions.add(conversion)
            records.submissions.append(SubmissionEntry(item, form_id, submission, where))


def _read_email_events(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    seen: set[tuple[str, int]] = set()
    for i, item in enumerate(section(raw, "email_events", records.problems)):
        try:
            event = email_event_from_wire(item)
            created = _event_created(item)
        except SkippableRecordError as exc:
            records.problems.append(f"email_events[{i}]: {exc}; skipped")
            continue
        key = (str(item["id"]).strip(), created)
        if key in seen:
            records.repeats += 1
            continue
        seen.add(key)
        records.email_events.append(EmailEventEntry(item, created, event))


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
        ids = item.get("contactIds") if isinstance(item, Mapping) else None
        ids = [] if isinstance(item, Mapping) and ids is None else ids
        if not (
            isinstance(item, Mapping)
            and numeric(str(item.get("listId", "")))
            and isinstance(ids, list)
            and all(numeric(str(c)) for c in ids)
        ):
            records.problems.append(f"lists[{i}]: needs a numeric listId and contactIds; skipped")
            continue
        stamps = item.get("membershipTimestamps") or {}
        if not isinstance(stamps, Mapping):
            records.problems.append(f"lists[{i}]: membershipTimestamps must map contact ids to epoch ms; skipped")
            continue
        list_id = int(str(item["listId"]))
        members = tuple(dict.fromkeys(int(str(c)) for c in ids))
        records.lists.append(ListEntry(list_id, str(item.get("name") or f"List {list_id}"), members, stamps))


def _read_companies(raw: Mapping[str, Any], records: SnapshotRecords) -> None:
    """`companies: [{"id", "properties"}]`, in HubSpot's shape; older snapshots have none."""
    seen: set[str] = set()
    for i, item in enumerate(section(raw, "companies", records.problems)):
        try:
            company = company_from_wire(item)
        except SkippableRecordError as exc:
            records.problems.append(f"companies[{i}]: {exc}; skipped")
            continue
        if company.id in seen:
            records.problems.append(f"companies[{i}]: company {company.id} appears twice; the later one skipped")
            continue
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
        where = f"associations[{i}]"
        if not isinstance(item, Mapping):
            records.problems.append(f"{where}: is not an object; skipped")
            continue
        contact, company = str(item.get("contactId", "")).strip(), str(item.get("companyId", "")).strip()
        primary = item.get("primary", False)
        if not (numeric(contact) and numeric(company)):
            records.problems.append(f"{where}: needs a numeric contactId and companyId; skipped")
        elif not isinstance(primary, bool):
            records.problems.append(f"{where}: primary must be true or false; skipped")
        elif str(int(contact)) not in contacts:
            records.problems.append(f"{where}: contact {int(contact)} is not in the snapshot; skipped")
        elif str(int(company)) not in companies:
            records.problems.append(f"{where}: company {int(company)} is not in the snapshot; skipped")
        else:
            key = (str(int(contact)), str(int(company)))
            pairs[key] = pairs.get(key, False) or primary
    records.associations = [CompanyAssociation(c, k, p) for (c, k), p in pairs.items()]


# --- score's reading: core values ---------------------------------------------------------------


def read_snapshot(file: str | Path, form_types: Collection[str] = DEFAULT_FORM_TYPES) -> Snapshot:
    return parse_snapshot(load_snapshot_json(file), form_types)


def load_snapshot_json(file: str | Path) -> dict[str, Any]:
    """The snapshot file's JSON object; ConfigError naming the file (and line) when it is not one."""
    path = Path(file)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigProblem(str(path), exc.lineno, "", f"not valid JSON: {exc.msg}")]) from exc
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
