"""A sandbox portal from a snapshot: the records `sync.snapshot.read_records` accepts, and its problems.

The snapshot's reader is the one `leadsync score` uses, so the sandbox serves exactly the records a
snapshot scores offline; only the custom property definitions (which `score` does not read) are read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sync.sandbox.engagement import event_from, submission_from
from sync.sandbox.index import Row
from sync.sandbox.properties import (
    COMPANY_LAST_MODIFIED,
    COMPANY_RECORD_FIELDS,
    CREATE_DATE,
    LAST_MODIFIED,
    RECORD_FIELDS,
    PropertyDef,
    PropertyGroup,
)
from sync.sandbox.records import FormRecord
from sync.sandbox.wire import ApiError, parse_ms
from sync.snapshot import CompanyEntry, ContactEntry, SnapshotRecords, read_records, section

if TYPE_CHECKING:
    from sync.sandbox.portal import Portal

SNAPSHOT_GROUP = "snapshot_properties"  # where a property only the snapshot's records name is defined
CONTACTS, COMPANIES = "contacts", "companies"


def load_snapshot(cls: type[Portal], raw: Mapping[str, Any], now_ms: int, default_id: int) -> tuple[Portal, list[str]]:
    """A portal of class `cls` serving the snapshot, and the problems of the records it skipped."""
    records = read_records(raw)
    portal = cls(records.portal_id if records.portal_id is not None else default_id, created_ms=0)
    problems = _define_properties(portal, raw, CONTACTS, ("property_groups", "properties"))
    problems += _define_properties(portal, raw, COMPANIES, ("company_property_groups", "company_properties"))
    _load_records(portal, records, now_ms)
    _load_companies(portal, records)
    return portal, problems + records.problems


def _define_properties(portal: Portal, raw: Mapping[str, Any], object_type: str, keys: tuple[str, str]) -> list[str]:
    """The custom groups and properties of one object type, from the sections `keys` names."""
    group_key, property_key = keys
    problems: list[str] = []
    for item in section(raw, group_key, problems):
        if isinstance(item, Mapping) and item.get("name"):
            group = PropertyGroup(str(item["name"]), str(item.get("label") or item["name"]))
            portal.define_group(group, object_type)
    groups = {g["name"]: PropertyGroup(g["name"], g["label"]) for g in portal.groups(object_type)}
    for i, item in enumerate(section(raw, property_key, problems)):
        try:
            portal.define_property(PropertyDef.from_wire(item, 0, groups), object_type)
        except ApiError as exc:
            problems.append(f"{property_key}[{i}]: {exc.message}; skipped")
    return problems


def _load_records(portal: Portal, records: SnapshotRecords, now_ms: int) -> None:
    for form in records.forms:
        portal.add_form(FormRecord(form.id, form.name, 0, form_type=form.form_type, archived=form.archived))
    rows = [_row(portal, entry) for entry in records.contacts]
    subs = [submission_from(s.raw, None, None, s.where) for s in records.submissions]
    events = [event_from(e.raw, None, None, portal.portal_id, "email_events") for e in records.email_events]
    portal.bulk_load(rows, subs, events)
    for entry in records.lists:
        members = {cid: _stamp(entry.stamps.get(str(cid)), now_ms) for cid in entry.members}
        portal.set_list(entry.list_id, entry.name, members)


def _row(portal: Portal, entry: ContactEntry) -> Row:
    """A contact as the sandbox keeps it: values as given (empty ones dropped); unknown properties become text."""
    given = entry.raw.get("properties") or {}
    props = {str(k): str(v) for k, v in given.items() if v is not None and v != ""}
    created = parse_ms(props.pop(CREATE_DATE, None))
    props.pop(LAST_MODIFIED, None)
    for name in RECORD_FIELDS:
        props.pop(name, None)
    for name in props:
        if portal.property_def(name) is None:
            portal.define_property(PropertyDef(name, name, "string", "text", SNAPSHOT_GROUP))
    # HubSpot always has both dates; a snapshot may lack them (0: the sync reads no create date from it).
    created_ms = created if created is not None else 0
    modified_ms = entry.modified_ms if entry.modified_ms is not None else created_ms
    return int(entry.contact.id), props, created_ms, modified_ms


def _load_companies(portal: Portal, records: SnapshotRecords) -> None:
    """The companies `read_records` accepted, and the associations it kept (both ends in the snapshot)."""
    rows = [_company_row(portal, entry) for entry in records.companies]
    pairs = [(int(a.contact_id), int(a.company_id), a.primary) for a in records.associations]
    portal.bulk_load_companies(rows, _one_primary(pairs))


def _one_primary(pairs: list[tuple[int, int, bool]]) -> list[tuple[int, int, bool]]:
    """HubSpot keeps one Primary company per contact: of several marked, the lowest company id keeps it."""
    primary: dict[int, int] = {}
    for contact, company, is_primary in pairs:
        if is_primary and company < primary.get(contact, company + 1):
            primary[contact] = company
    return [(contact, company, primary.get(contact) == company) for contact, company, _ in pairs]


def _company_row(portal: Portal, entry: CompanyEntry) -> Row:
    given = entry.raw.get("properties") or {}
    props = {str(k): str(v) for k, v in given.items() if v is not None and v != ""}
    created = parse_ms(props.get(CREATE_DATE))
    modified = parse_ms(props.get(COMPANY_LAST_MODIFIED))
    for name in COMPANY_RECORD_FIELDS:
        props.pop(name, None)
    for name in props:
        if portal.property_def(name, COMPANIES) is None:
            portal.define_property(PropertyDef(name, name, "string", "text", SNAPSHOT_GROUP), COMPANIES)
    created_ms = created if created is not None else 0
    return int(entry.company.id), props, created_ms, modified if modified is not None else created_ms


def _stamp(raw: Any, now_ms: int) -> int:
    stamp = parse_ms(raw)
    return now_ms if stamp is None else stamp
