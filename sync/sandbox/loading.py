"""A sandbox portal from a snapshot: the records `sync.snapshot.read_records` accepts, and its problems.

The snapshot's reader is the one `leadsync score` uses, so the sandbox serves exactly the records a
snapshot scores offline; only the custom property definitions (which `score` does not read) are read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sync.sandbox.engagement import event_from, submission_from
from sync.sandbox.index import Row
from sync.sandbox.properties import CREATE_DATE, LAST_MODIFIED, RECORD_FIELDS, PropertyDef, PropertyGroup
from sync.sandbox.records import FormRecord
from sync.sandbox.wire import ApiError, parse_ms
from sync.snapshot import ContactEntry, SnapshotRecords, read_records, section

if TYPE_CHECKING:
    from sync.sandbox.portal import Portal

SNAPSHOT_GROUP = "snapshot_properties"  # where a property only the snapshot's contacts name is defined


def load_snapshot(cls: type[Portal], raw: Mapping[str, Any], now_ms: int, default_id: int) -> tuple[Portal, list[str]]:
    """A portal of class `cls` serving the snapshot, and the problems of the records it skipped."""
    records = read_records(raw)
    portal = cls(records.portal_id if records.portal_id is not None else default_id, created_ms=0)
    problems = _define_properties(portal, raw)
    _load_records(portal, records, now_ms)
    return portal, problems + records.problems


def _define_properties(portal: Portal, raw: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for item in section(raw, "property_groups", problems):
        if isinstance(item, Mapping) and item.get("name"):
            portal.define_group(PropertyGroup(str(item["name"]), str(item.get("label") or item["name"])))
    groups = {g["name"]: PropertyGroup(g["name"], g["label"]) for g in portal.groups()}
    for i, item in enumerate(section(raw, "properties", problems)):
        try:
            portal.define_property(PropertyDef.from_wire(item, 0, groups))
        except ApiError as exc:
            problems.append(f"properties[{i}]: {exc.message}; skipped")
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


def _stamp(raw: Any, now_ms: int) -> int:
    stamp = parse_ms(raw)
    return now_ms if stamp is None else stamp
