"""A portal snapshot: one JSON file in HubSpot's own shapes (ARCHITECTURE.md).

`read_snapshot` turns it into core values, ties events to contacts by email,
and reports every unusable record instead of failing the whole file.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync.core.model import Contact, Event, current_form_name
from sync.errors import ConfigError, ConfigProblem, SkippableRecordError
from sync.hubspot.shapes import DEFAULT_FORM_TYPES, contact_from_wire, email_event_from_wire, submission_from_wire


@dataclass
class Snapshot:
    portal_id: int | None
    contacts: list[Contact]
    events_by_email: dict[str, list[Event]]
    problems: list[str] = field(default_factory=list)
    unattached_events: int = 0
    ignored_events: int = 0

    def scoring_inputs(self) -> Iterator[tuple[Contact, list[Event]]]:
        for contact in self.contacts:
            yield contact, self.events_by_email.get(contact.email, []) if contact.email else []


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


def _records(raw: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{key}: is not a list; ignored")
        return []
    return value


def parse_snapshot(raw: Mapping[str, Any], form_types: Collection[str] = DEFAULT_FORM_TYPES) -> Snapshot:  # noqa: C901, PLR0912, PLR0915
    """The snapshot's contacts and events. Submissions of a form its `forms` list as archived, or with a
    `formType` not in `form_types`, are left out (counted in `ignored_events`), as the live sync never reads
    them; a form without `formType` or `archived` is a live HubSpot form (README "What counts")."""
    problems: list[str] = []
    memberships: dict[str, set[int]] = {}
    for i, item in enumerate(_records(raw, "lists", problems)):
        try:
            list_id = int(item["listId"])
            members = [str(cid) for cid in item.get("contactIds") or []]
        except (KeyError, TypeError, ValueError):
            problems.append(f"lists[{i}]: needs a numeric listId and contactIds; skipped")
            continue
        for cid in members:
            memberships.setdefault(cid, set()).add(list_id)

    contacts: list[Contact] = []
    seen: set[str] = set()
    for i, item in enumerate(_records(raw, "contacts", problems)):
        cid = str(item.get("id", "")) if isinstance(item, Mapping) else ""
        try:
            contact = contact_from_wire(item, frozenset(memberships.get(cid, ())))
        except SkippableRecordError as exc:
            problems.append(f"contacts[{i}]: {exc}; skipped")
            continue
        if contact.id in seen:
            problems.append(f"contacts[{i}]: contact {contact.id} appears twice; the later one skipped")
            continue
        seen.add(contact.id)
        contacts.append(contact)

    form_names: dict[str, str] = {}
    unread_forms: set[str] = set()  # archived, or of a type not read
    for item in _records(raw, "forms", problems):
        if isinstance(item, Mapping) and item.get("id") is not None:
            if item.get("archived") is True or str(item.get("formType") or "hubspot") not in form_types:
                unread_forms.add(str(item["id"]))
            else:
                form_names[str(item["id"])] = str(item.get("name") or "")

    events: list[Event] = []
    ignored = 0
    for i, item in enumerate(_records(raw, "form_submissions", problems)):
        form_id = str(item.get("formId", "")) if isinstance(item, Mapping) else ""
        if form_id in unread_forms:
            ignored += 1
            continue
        try:
            if not form_id:
                raise SkippableRecordError("submission", "has no formId")
            events.append(submission_from_wire(item, form_id, current_form_name(form_names, form_id)))
        except SkippableRecordError as exc:
            problems.append(f"form_submissions[{i}]: {exc}; skipped")
    for i, item in enumerate(_records(raw, "email_events", problems)):
        try:
            email_event = email_event_from_wire(item)
        except SkippableRecordError as exc:
            problems.append(f"email_events[{i}]: {exc}; skipped")
            continue
        if email_event is None:
            ignored += 1
        else:
            events.append(email_event)

    known = {c.email for c in contacts if c.email}
    by_email: dict[str, list[Event]] = {}
    unattached = 0
    for event in events:
        if event.email in known:
            by_email.setdefault(event.email, []).append(event)
        else:
            unattached += 1
    portal = raw.get("portal_id")
    return Snapshot(
        portal_id=int(portal) if isinstance(portal, int | str) and str(portal).isdigit() else None,
        contacts=contacts,
        events_by_email=by_email,
        problems=problems,
        unattached_events=unattached,
        ignored_events=ignored,
    )
