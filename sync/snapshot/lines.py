"""A snapshot as JSON Lines: one record a line, read in one pass in the memory of one contact.

The first line is the header, `{"snapshot": "leadsync", "version": 1, "portal_id": ...}`. Then the records,
each in HubSpot's own shape with a `"record"` field naming its kind (not `"type"`: an email event has a
`type` of its own): the forms, lists, companies and associations, then every contact FOLLOWED BY its events
(form submissions and email events whose email is the contact's), so a reader ties a contact to its events
without an index; the events of no contact come last. The single-document form is still read everywhere.

Each record is checked as `read_records` checks it, with the same problem texts, its index counted within
its kind (`contacts[3]` is the fourth contact record), so both forms of one portal report alike. What a
one-pass reader cannot do as the document reader does: repeated events are recognised within a contact's
own events (where a repeat delivery lands), and duplicate contacts are found by a 64-bit digest of the id
and of the email, kept in a set on disk (`seen`): what is held in memory does not grow with the portal.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from sync.core.model import Company, CompanyAssociation, Contact, Event, FormSubmission, current_form_name
from sync.errors import ConfigError, ConfigProblem
from sync.hubspot.shapes import DEFAULT_FORM_TYPES, submission_email
from sync.snapshot import (
    ContactCheck,
    ContactEntry,
    EmailEventEntry,
    SnapshotRecords,
    SubmissionEntry,
    association_pair,
    association_problem,
    checked_contact,
    company_entry,
    email_event_entry,
    form_entry,
    list_entry,
    pieces,
    portal_id,
    submission_entry,
)
from sync.snapshot.seen import DigestSet

FORMAT, VERSION = "leadsync", 1
KIND = "record"  # the field naming a line's kind
# Kind -> the single-document section its records belong to, in the order a file lists them.
SECTIONS = {
    "form": "forms",
    "list": "lists",
    "company": "companies",
    "association": "associations",
    "contact": "contacts",
    "form_submission": "form_submissions",
    "email_event": "email_events",
}
HEAD_KINDS = ("form", "list", "company", "association")  # read before the first contact


def header(portal_id: int | None) -> dict[str, Any]:
    return {"snapshot": FORMAT, "version": VERSION, "portal_id": portal_id}


def is_lines(file: str | Path) -> bool:
    """True when the file is a JSON Lines snapshot: its first line alone is the header (by content, whatever
    its name)."""
    try:
        with Path(file).open(encoding="utf-8") as stream:
            first = stream.readline()
    except (OSError, UnicodeDecodeError):
        return False  # the document reader says what is wrong with it
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(head, dict) and head.get("snapshot") == FORMAT and "version" in head


def _lines(path: Path) -> Generator[tuple[int, Any], None, None]:
    """(line number, parsed record) of each non-empty line after the header; the header checked first."""
    try:
        stream = path.open(encoding="utf-8", errors="surrogateescape")  # bad bytes found at their line (numbered)
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    with stream:
        lines = numbered(path, stream)
        head = _parse(path, 1, next(lines, (1, ""))[1])
        if not isinstance(head, dict) or head.get("snapshot") != FORMAT:
            raise ConfigError([ConfigProblem(str(path), 1, "", 'the first line must be {"snapshot": "leadsync", ...}')])
        if head.get("version") != VERSION:
            raise ConfigError(
                [ConfigProblem(str(path), 1, "", f"snapshot version {head.get('version')!r}: this leadsync reads 1")]
            )
        yield 1, head
        for n, line in lines:
            if line.strip():
                yield n, _parse(path, n, line)


def numbered(path: Path, stream: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Each line of a text stream (decoded with `surrogateescape`) with its number; a line that is not UTF-8
    text is a damaged file, at that line."""
    for n, line in enumerate(stream, start=1):
        if not line.isascii():
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as exc:  # the bytes the decoder kept as surrogates
                raise ConfigError([ConfigProblem(str(path), n, "", "not UTF-8 text")]) from exc
        yield n, line


def _parse(path: Path, n: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        # One line of a file written in one go is not worth going on past: the file is damaged (at its last
        # line, most often cut short by an interrupted write).
        problem = f"not valid JSON: {exc.msg} at column {exc.colno}"
        raise ConfigError([ConfigProblem(str(path), n, "", problem)]) from exc


def _kind(path: Path, n: int, item: Any) -> str:
    """The record's kind (its `record` field, taken off it): a line without a known one is a damaged file."""
    kind = item.pop(KIND, None) if isinstance(item, dict) else None
    if kind not in SECTIONS:
        raise ConfigError(
            [ConfigProblem(str(path), n, "", f"a record needs a {KIND!r} field, one of {', '.join(SECTIONS)}")]
        )
    return str(kind)


def _misplaced(path: Path, n: int, kind: str) -> ConfigError:
    return ConfigError(
        [
            ConfigProblem(
                str(path), n, "", f"a {kind} after the first contact: forms, lists, companies and associations come "
                "before the contacts, so that one pass reads them first",
            )
        ]
    )  # fmt: skip


def read_document(file: str | Path) -> dict[str, Any]:
    """The JSON Lines snapshot as the single document it stands for: what the sandbox, `explain` and the
    other whole-portal readers take (they hold the portal anyway)."""
    path = Path(file)
    lines = _lines(path)
    _, head = next(lines)
    raw: dict[str, Any] = {"portal_id": head.get("portal_id")}
    contacts = False
    for n, item in lines:
        kind = _kind(path, n, item)
        contacts = contacts or kind not in HEAD_KINDS
        if contacts and kind in HEAD_KINDS:
            raise _misplaced(path, n, kind)
        raw.setdefault(SECTIONS[kind], []).append(item)
    return raw


@dataclass
class _Group:
    """A contact and the events that follow it in the file; `index` and `mark` place it among the records and
    the problems of the pass that read it."""

    contact: Contact | None = None
    index: int = -1
    mark: int = 0
    submissions: list[FormSubmission] = field(default_factory=list)
    email_events: list[Event] = field(default_factory=list)
    conversions: set[str] = field(default_factory=set)
    seen: set[tuple[str, int]] = field(default_factory=set)

    def matches(self, email: str) -> bool:
        return self.contact is not None and bool(self.contact.email) and self.contact.email == email

    @property
    def events(self) -> list[Event]:
        return [*self.submissions, *self.email_events]


@dataclass
class Tally:
    """What a pass over records keeps besides the contacts: the problems and repeats (`records`), each kind's
    records so far (a record's index), the events of no contact, those of forms not read."""

    records: SnapshotRecords
    index: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    unattached: int = 0
    ignored: int = 0
    open: _Group | None = None  # the contact whose events are being read

    def next_index(self, kind: str) -> int:
        i = self.index[kind]
        self.index[kind] = i + 1
        return i


R = TypeVar("R")
Accept = Callable[[int, Any, list[str]], ContactEntry | None]  # (index, record, problems) -> the entry, or None


class SnapshotStream:
    """A JSON Lines snapshot read contact by contact.

    Opening it reads the header and the records before the first contact (forms, lists, companies,
    associations: held, they are small beside the contacts). `inputs()` then yields each contact (with its
    list memberships) and its scored events, once; `problems`, `unattached_events` and `ignored_events` are
    complete when it is done. A large file is read on every core (`sync.snapshot.pieces`), to the same
    contacts, events and problems in the same order."""

    count: int | None = None  # not known before the end

    def __init__(self, file: str | Path, form_types: Collection[str] = DEFAULT_FORM_TYPES) -> None:
        self.path = Path(file)
        self.form_types = form_types
        self._lines = _lines(self.path)
        _, head = next(self._lines)
        self.portal_id = portal_id(head.get("portal_id"))
        self.records = SnapshotRecords(self.portal_id)
        self.tally = Tally(self.records)
        self._skipped_forms: set[str] = set()
        self._pending: tuple[int, str, Any] | None = None  # the first record after the head
        self._read_head()
        unread = {f.id for f in self.records.forms if f.archived or f.form_type not in form_types}
        self._unread = unread
        self._names = {f.id: f.name for f in self.records.forms if f.id not in unread}
        self.companies: list[Company] = [e.company for e in self.records.companies]
        self.associations: list[CompanyAssociation] = []
        self._memberships: dict[str, frozenset[int]] = {}
        self._associate()
        self._members()

    @property
    def problems(self) -> list[str]:
        return self.records.problems

    @property
    def unattached_events(self) -> int:
        return self.tally.unattached

    @property
    def ignored_events(self) -> int:
        return self.tally.ignored

    @property
    def first_line(self) -> int | None:
        """The line of the first record after the head (None when there is none): where the contacts start."""
        return self._pending[0] if self._pending is not None else None

    def _read_head(self) -> None:
        self._raw_associations: list[tuple[int, str, str, bool]] = []
        seen_companies: set[str] = set()
        for n, item in self._lines:
            kind = _kind(self.path, n, item)
            if kind not in HEAD_KINDS:
                self._pending = (n, kind, item)
                return
            i = self.tally.next_index(kind)
            if kind == "form":
                form_entry(i, item, self.records, self._skipped_forms)
            elif kind == "list":
                list_entry(i, item, self.records)
            elif kind == "company":
                company_entry(i, item, self.records, seen_companies)
            else:
                pair = association_pair(i, item, self.problems)
                if pair is not None:
                    self._raw_associations.append((i, *pair))

    def _associate(self) -> None:
        """The associations to companies the snapshot holds; whether their contacts are there is known only at
        the end (they come after), when the others are reported."""
        companies = {c.id for c in self.companies}
        pairs: dict[tuple[str, str], bool] = {}
        for _, contact, company, primary in self._raw_associations:
            if company in companies:
                pairs[(contact, company)] = pairs.get((contact, company), False) or primary
        self.associations = [CompanyAssociation(c, k, p) for (c, k), p in pairs.items()]
        self._unseen = {contact for _, contact, _, _ in self._raw_associations}

    def _members(self) -> None:
        memberships: dict[str, set[int]] = {}
        for entry in self.records.lists:
            for cid in entry.members:
                memberships.setdefault(str(cid), set()).add(entry.list_id)
        self._memberships = {cid: frozenset(ids) for cid, ids in memberships.items()}

    def inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        """Each contact and its scored events, in file order."""
        for _, pair in self.results(_pair):
            yield pair

    def results(self, work: pieces.Work[R]) -> Iterator[tuple[str, R]]:
        """Each contact's id and `work(contact, events)`, in file order. A large file is read on every core, where
        the workers do the work too: `work` must be pure, and what it returns is sent back (the smaller the
        better: a contact and its events cost more to send than to score)."""
        ids, emails = DigestSet(), DigestSet()
        check = ContactCheck(_compact, ids, emails)
        try:
            if (reader := pieces.reader(self)) is not None:  # on every core
                self._lines.close()
                for contact_id, value in reader.results(check, work):
                    self._unseen.discard(contact_id)
                    yield contact_id, value
            else:
                for contact, group in self.groups(self._pending_and_rest(), self.tally, check.accept):
                    self._unseen.discard(contact.id)
                    yield contact.id, work(contact, group.events)
        finally:
            ids.close()
            emails.close()
        self._report_associations()

    def groups(
        self, records: Iterable[tuple[int, str, Any]], tally: Tally, accept: Accept
    ) -> Iterator[tuple[Contact, _Group]]:
        """Each accepted contact of `records` with (in its group) the events that follow it; what else is read
        is counted in `tally`."""
        group = _Group()
        for n, kind, item in records:
            if kind == "contact":
                if group.contact is not None:
                    yield group.contact, group
                i = tally.next_index("contact")
                group = _Group(self._contact(accept(i, item, tally.records.problems)), i, len(tally.records.problems))
                tally.open = group
            elif kind == "form_submission":
                self._submission(tally, group, item)
            elif kind == "email_event":
                self._email_event(tally, group, item)
            else:
                raise _misplaced(self.path, n, kind)
        if group.contact is not None:
            yield group.contact, group

    def read_piece(self, data: bytes, work: pieces.Work[R]) -> pieces.Piece[R]:
        """In a worker: a piece of the file (the bytes from a contact's line) read and checked as `results` reads
        it, but for the check of a contact against those before the piece; numbered from the piece's start."""
        tally = Tally(SnapshotRecords(self.portal_id))
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")  # as `_lines` reads
        records = self._records(numbered(self.path, text))
        piece: pieces.Piece[R] = pieces.Piece(lines=data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n"))
        try:
            for c, group in self.groups(records, tally, checked_contact):
                events = group.events
                try:
                    value = work(c, events)
                except Exception as exc:  # the work's own failure, not the file's: raised after what came before
                    piece.failure = f"{type(exc).__name__}: {exc}"
                    break
                piece.groups.append((group.index, group.mark, c.id, c.email, len(events), value))
        except ConfigError as exc:
            piece.error = exc.problems  # the exception itself does not pickle
            unread = tally.open
            if unread is not None and unread.contact is not None:  # checked against the others all the same
                piece.unread = (unread.index, unread.mark, unread.contact.id, unread.contact.email)
        piece.problems, piece.repeats = tally.records.problems, tally.records.repeats
        piece.counts, piece.unattached, piece.ignored = tally.index, tally.unattached, tally.ignored
        return piece

    def _records(self, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str, Any]]:
        for n, line in lines:
            if line.strip():
                item = _parse(self.path, n, line)
                yield n, _kind(self.path, n, item), item

    def _pending_and_rest(self) -> Iterator[tuple[int, str, Any]]:
        if self._pending is not None:
            yield self._pending
            self._pending = None
        for n, item in self._lines:
            yield n, _kind(self.path, n, item), item

    def _contact(self, entry: ContactEntry | None) -> Contact | None:
        if entry is None:
            return None
        c = entry.contact
        lists = self._memberships.get(c.id, frozenset())
        return Contact(c.id, c.properties, c.email, c.created_at_ms, c.lifecycle_stage, lists)

    def _submission(self, tally: Tally, group: _Group, item: Any) -> None:
        i = tally.next_index("form_submission")
        entry: SubmissionEntry | None = submission_entry(i, item, tally.records, self._skipped_forms, group.conversions)
        if entry is None:
            return
        if entry.form_id in self._unread:
            tally.ignored += 1
            return
        s = entry.submission
        if not group.matches(s.email):
            tally.unattached += 1
            return
        name = current_form_name(self._names, s.form_id)
        group.submissions.append(FormSubmission(s.event_id, s.at_ms, s.email, s.form_id, name, s.page_url))

    def _email_event(self, tally: Tally, group: _Group, item: Any) -> None:
        entry: EmailEventEntry | None = email_event_entry(
            tally.next_index("email_event"), item, tally.records, group.seen
        )
        if entry is None:
            return
        if entry.event is None:
            tally.ignored += 1
        elif group.matches(entry.event.email):
            group.email_events.append(entry.event)
        else:
            tally.unattached += 1

    def _report_associations(self) -> None:
        companies = {c.id for c in self.companies}
        for i, contact, company, _ in self._raw_associations:
            problem = association_problem(i, contact, company, _Absent(self._unseen), companies)
            if problem:
                self.problems.append(problem)


def _pair(contact: Contact, events: list[Event]) -> tuple[Contact, list[Event]]:
    return contact, events


class _Absent:
    """The contacts seen: every one but those still `unseen`."""

    def __init__(self, unseen: set[str]) -> None:
        self.unseen = unseen

    def __contains__(self, contact: object) -> bool:
        return contact not in self.unseen


def _compact(text: str) -> int:
    """What the duplicate check keeps of an id or an email: 8 bytes (a collision among a million contacts is
    about one chance in 10^7)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


# --- writing ----------------------------------------------------------------------------------------


def write_document(raw: Mapping[str, Any], out: IO[str]) -> dict[str, int]:
    """Writes a single-document snapshot as JSON Lines, every record as it is (the bad ones too: the reader
    reports them), each contact's events after it; returns the records written by kind."""
    contacts = _items(raw, "contacts")
    own: dict[str, list[tuple[str, Any]]] = {}
    emails = {_contact_email(c) for c in contacts} - {""}
    unattached: list[tuple[str, Any]] = []
    events = [("form_submission", e) for e in _items(raw, "form_submissions")]
    events += [("email_event", e) for e in _items(raw, "email_events")]
    for kind, event in events:
        email = _event_email(kind, event)
        (own.setdefault(email, []) if email in emails else unattached).append((kind, event))
    head = {kind: _items(raw, SECTIONS[kind]) for kind in HEAD_KINDS}
    pairs = ((c, own.pop(email, []) if (email := _contact_email(c)) else []) for c in contacts)
    write_lines(out, raw.get("portal_id"), head, pairs, unattached)
    counts = {kind: len(_items(raw, SECTIONS[kind])) for kind in SECTIONS}
    return counts


def _items(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    return value if isinstance(value, list) else []


def _contact_email(item: Any) -> str:
    props = item.get("properties") if isinstance(item, Mapping) else None
    value = props.get("email") if isinstance(props, Mapping) else None
    return value.strip().lower() if isinstance(value, str) else ""


def _event_email(kind: str, item: Any) -> str:
    """The address tying an event to its contact, as the reader will take it ("" when it has none)."""
    if not isinstance(item, Mapping):
        return ""
    if kind == "email_event":
        recipient = item.get("recipient")
        return recipient.strip().lower() if isinstance(recipient, str) else ""
    values = item.get("values")
    return submission_email(values) if isinstance(values, list) else ""


def write_lines(
    out: IO[str],
    portal_id: int | None,
    head: Mapping[str, Iterable[Mapping[str, Any]]],
    contacts: Iterable[tuple[Mapping[str, Any], Iterable[tuple[str, Mapping[str, Any]]]]],
    unattached: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> int:
    """Writes a JSON Lines snapshot: the header, the `head` records by kind (form, list, company,
    association), each contact followed by its (kind, event) records, the events of no contact; returns the
    lines written."""
    lines = 1
    out.write(json.dumps(header(portal_id), ensure_ascii=False) + "\n")
    for kind in HEAD_KINDS:
        for item in head.get(kind, ()):
            out.write(_line(kind, item))
            lines += 1
    for contact, events in contacts:
        out.write(_line("contact", contact))
        lines += 1
        for kind, event in events:
            out.write(_line(kind, event))
            lines += 1
    for kind, event in unattached:
        out.write(_line(kind, event))
        lines += 1
    return lines


def _line(kind: str, item: Mapping[str, Any]) -> str:
    return json.dumps({KIND: kind, **item}, ensure_ascii=False) + "\n"
