"""The in-memory state of one sandbox portal, behind one lock.

Every public method takes the lock, so HTTP handler threads see each request applied
whole. Methods return fresh JSON-ready values (never the live dicts), so the server
can encode them after the lock is released.

Indexes kept so paging 100,000 contacts stays cheap: contact ids in order (list
endpoint and hs_object_id search), (lastmodifieddate, id) and (createdate, id) in
order (incremental search), email -> id (batch read by email), events in
(created, id) order overall and per type, submissions newest first per form.
Search results are cached per query until the next contact change.
"""

from __future__ import annotations

import dataclasses
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from sync.sandbox.properties import (
    CREATE_DATE,
    LAST_MODIFIED,
    LIFECYCLE_ORDER,
    LIFECYCLE_STAGE,
    OBJECT_ID,
    RECORD_FIELDS,
    STANDARD_GROUPS,
    Option,
    PropertyDef,
    PropertyGroup,
    standard_properties,
)
from sync.sandbox.records import (
    FORM_TYPES,
    ContactRecord,
    EmailEventRecord,
    FormRecord,
    ListRecord,
    Submission,
    WriteRecord,
    pairs,
)
from sync.sandbox.search import (
    MAX_RESULTS,
    RANGE_OPERATORS,
    Filter,
    SearchQuery,
    getter,
    group_predicate,
    int_bounds,
    parse_search,
    requested_properties,
)
from sync.sandbox.wire import (
    ApiError,
    JsonObject,
    bad_request,
    decode_cursor,
    encode_cursor,
    iso_ms,
    not_found,
    parse_ms,
)

MAX_BATCH = 100
DEFAULT_PORTAL_ID = 12345678
NOT_FOUND_MESSAGE = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
_STAGE_RANK = {stage: i for i, stage in enumerate(LIFECYCLE_ORDER)}
_SEARCH_CACHE_SIZE = 16
# How long an email events offset stays valid. HubSpot says its offsets are not meant to last and documents no
# lifetime (connectors have seen them last hours); five minutes is ample for paging a window without a pause.
DEFAULT_OFFSET_TTL_S = 300.0
_OFFSETS_KEPT = 10_000
# (ids that should fail this time, their error category): the partial-failure fault's hook.
FailureChooser = Callable[[list[str]], tuple[set[str], str]]


class Portal:
    def __init__(self, portal_id: int = DEFAULT_PORTAL_ID, *, created_ms: int = 0, time_zone: str = "UTC") -> None:
        self.portal_id = portal_id
        self.time_zone = time_zone
        self._lock = threading.Lock()
        self._props: dict[str, PropertyDef] = {p.name: p for p in standard_properties(created_ms)}
        self._groups: dict[str, PropertyGroup] = {g.name: g for g in STANDARD_GROUPS}
        self._contacts: dict[int, ContactRecord] = {}
        self._ids: list[int] = []
        self._by_modified: list[tuple[int, int]] = []
        self._by_created: list[tuple[int, int]] = []
        self._by_email: dict[str, int] = {}
        self._forms: dict[str, FormRecord] = {}
        self._submissions: dict[str, list[Submission]] = {}
        self._events: list[EmailEventRecord] = []
        self._events_by_type: dict[str, list[EmailEventRecord]] = {}
        self._event_ids: set[tuple[str, int]] = set()  # (id, created): HubSpot's ids repeat across times
        # The email events' offsets handed out: token -> its query, position and when (they expire).
        self._offsets: dict[str, _IssuedOffset] = {}
        self._offset_serial = 0
        self.offset_ttl_seconds = DEFAULT_OFFSET_TTL_S
        self._conversion_ids: set[str] = set()
        self._lists: dict[int, ListRecord] = {}
        self._version = 0
        self._search_cache: dict[tuple[Any, ...], tuple[int, list[int]]] = {}
        self._write_log: list[WriteRecord] = []
        self._write_counts: dict[int, int] = {}

    # --- building (generator, snapshot loader, admin endpoints) -------------------------

    def define_group(self, group: PropertyGroup) -> None:
        with self._lock:
            self._groups.setdefault(group.name, group)

    def define_property(self, prop: PropertyDef) -> None:
        with self._lock:
            if prop.group_name not in self._groups:
                self._groups[prop.group_name] = PropertyGroup(prop.group_name, prop.group_name.replace("_", " "))
            self._props.setdefault(prop.name, prop)

    def redefine_property(self, prop: PropertyDef) -> None:
        """Replace a property's definition as a HubSpot admin would, HubSpot-defined ones included (an admin
        may remove a lifecycle stage, an option someone else's property lacks ...)."""
        with self._lock:
            self._props[prop.name] = prop

    def add_lifecycle_stage(self, value: str, label: str) -> None:
        """A custom lifecycle stage, as a portal's admin adds one in HubSpot's lifecycle stage settings."""
        with self._lock:
            prop = self._props[LIFECYCLE_STAGE]
            option = Option(label, value, len(prop.options))
            self._props[LIFECYCLE_STAGE] = dataclasses.replace(prop, options=(*prop.options, option))

    def add_form(self, form: FormRecord) -> None:
        with self._lock:
            self._forms[form.id] = form
            self._submissions.setdefault(form.id, [])

    def remove_form(self, form_id: str) -> bool:
        """A form deleted in HubSpot: no longer listed nor readable, but its submissions stay on the contacts
        (and in the snapshot, under a formId the snapshot's forms no longer name). False when there is none."""
        with self._lock:
            return self._forms.pop(form_id, None) is not None

    def set_list(self, list_id: int, name: str, members: Mapping[int, int]) -> None:
        with self._lock:
            self._lists[list_id] = ListRecord(list_id, name, dict(members))

    def bulk_load(
        self,
        contacts: Iterable[tuple[int, dict[str, str], int, int]],
        submissions: Iterable[Submission] = (),
        events: Iterable[EmailEventRecord] = (),
    ) -> None:
        """Many records at once: indexes are sorted once at the end instead of kept sorted per insert."""
        with self._lock:
            for cid, props, created, updated in contacts:
                if cid in self._contacts:
                    raise ValueError(f"contact {cid} appears twice")
                record = ContactRecord(cid, props, created, updated)
                self._contacts[cid] = record
                self._ids.append(cid)
                self._by_modified.append((updated, cid))
                self._by_created.append((created, cid))
                email = props.get("email")
                if email:
                    self._by_email[email.lower()] = cid
            self._ids.sort()
            self._by_modified.sort()
            self._by_created.sort()
            for sub in submissions:
                self._submissions.setdefault(sub.form_id, []).append(sub)
                self._conversion_ids.add(sub.conversion_id)
            for subs in self._submissions.values():
                subs.sort(key=_submission_key)
            for event in events:
                self._events.append(event)
                self._event_ids.add((event.id, event.created))
            self._events.sort(key=_event_key)
            self._events_by_type = {}
            for event in self._events:
                self._events_by_type.setdefault(event.type, []).append(event)
            self._version += 1

    def _insert(self, props: Mapping[str, str], created_ms: int, updated_ms: int, cid: int | None) -> ContactRecord:
        if cid is None:
            cid = (self._ids[-1] + 1) if self._ids else 1
        if cid in self._contacts:
            raise ValueError(f"contact {cid} exists")
        record = ContactRecord(cid, dict(props), created_ms, updated_ms)
        self._contacts[cid] = record
        if not self._ids or cid > self._ids[-1]:
            self._ids.append(cid)
        else:
            insort(self._ids, cid)
        insort(self._by_modified, (updated_ms, cid))
        insort(self._by_created, (created_ms, cid))
        email = record.props.get("email")
        if email:
            self._by_email[email.lower()] = cid
        self._version += 1
        return record

    def _touch(self, record: ContactRecord, ms: int) -> None:
        old = (record.updated_ms, record.id)
        if old[0] != ms:
            del self._by_modified[bisect_left(self._by_modified, old)]
            record.touch(ms)
            entry = (ms, record.id)
            if not self._by_modified or entry > self._by_modified[-1]:
                self._by_modified.append(entry)
            else:
                insort(self._by_modified, entry)
        self._version += 1

    def _set_created(self, record: ContactRecord, ms: int) -> None:
        if record.created_ms != ms:
            del self._by_created[bisect_left(self._by_created, (record.created_ms, record.id))]
            record.set_created(ms)
            insort(self._by_created, (ms, record.id))

    def _set_value(self, record: ContactRecord, name: str, value: str) -> None:
        if name == "email":
            old = record.props.get("email")
            if old and self._by_email.get(old.lower()) == record.id:
                del self._by_email[old.lower()]
            if value:
                self._by_email[value.lower()] = record.id
        if value == "":
            record.props.pop(name, None)
        else:
            record.props[name] = value

    def _add_submission(self, sub: Submission) -> None:
        if sub.form_id not in self._forms:
            raise not_found(f"Form {sub.form_id} does not exist")
        if sub.conversion_id in self._conversion_ids:
            raise ApiError(409, "CONFLICT", f"Submission {sub.conversion_id} already exists")
        self._conversion_ids.add(sub.conversion_id)
        insort(self._submissions[sub.form_id], sub, key=_submission_key)

    def _add_event(self, event: EmailEventRecord) -> None:
        if (event.id, event.created) in self._event_ids:
            raise ApiError(409, "CONFLICT", f"Email event {event.id} created {event.created} already exists")
        self._event_ids.add((event.id, event.created))
        insort(self._events, event, key=_event_key)
        insort(self._events_by_type.setdefault(event.type, []), event, key=_event_key)

    # --- properties ------------------------------------------------------------------------

    def properties(self) -> list[JsonObject]:
        with self._lock:
            return [p.to_wire() for p in self._props.values()]

    def property(self, name: str) -> JsonObject:
        with self._lock:
            prop = self._props.get(name)
            if prop is None:
                raise not_found(f"Unable to find property {name} for object type contacts", subCategory="NOT_FOUND")
            return prop.to_wire()

    def property_def(self, name: str) -> PropertyDef | None:
        with self._lock:
            return self._props.get(name)

    def create_property(self, raw: Any, now_ms: int) -> JsonObject:
        with self._lock:
            name = raw.get("name") if isinstance(raw, Mapping) else None
            if isinstance(name, str) and name in self._props:
                raise ApiError(
                    409, "CONFLICT", f"Property named '{name}' already exists.", subCategory="PROPERTY_EXISTS"
                )
            prop = PropertyDef.from_wire(raw, now_ms, self._groups)
            self._props[prop.name] = prop
            return prop.to_wire()

    def update_property(self, name: str, raw: Any, now_ms: int) -> JsonObject:
        with self._lock:
            prop = self._props.get(name)
            if prop is None:
                raise not_found(f"Unable to find property {name} for object type contacts", subCategory="NOT_FOUND")
            updated = prop.patched(raw, now_ms, self._groups)
            self._props[name] = updated
            return updated.to_wire()

    def groups(self) -> list[JsonObject]:
        with self._lock:
            return [g.to_wire() for g in self._groups.values()]

    def group(self, name: str) -> JsonObject:
        with self._lock:
            group = self._groups.get(name)
            if group is None:
                raise not_found(f"Unable to find property group {name} for object type contacts")
            return group.to_wire()

    def create_group(self, raw: Any) -> JsonObject:
        if not isinstance(raw, Mapping) or not raw.get("name") or not raw.get("label"):
            raise bad_request("A property group needs a name and a label")
        name = str(raw["name"])
        with self._lock:
            if name in self._groups:
                raise ApiError(409, "CONFLICT", f"Property group named '{name}' already exists.")
            order = raw.get("displayOrder", -1)
            if not isinstance(order, int) or isinstance(order, bool):
                raise bad_request(f"displayOrder must be an integer, got {order!r}")
            group = PropertyGroup(name, str(raw["label"]), order)
            self._groups[name] = group
            return group.to_wire()

    # --- contacts --------------------------------------------------------------------------

    def list_contacts(self, limit: int, after: str | None, requested: Sequence[str] | None) -> JsonObject:
        start = 0
        if after is not None and not _numeric(after):
            raise bad_request(f"Invalid after: {after!r}")
        with self._lock:
            names = requested_properties(requested, self._props)
            if after is not None:
                start = bisect_left(self._ids, int(after))
            ids = self._ids[start : start + limit]
            results = [self._contacts[i].wire(names) for i in ids]
            body: JsonObject = {"results": results}
            if start + limit < len(self._ids):
                # HubSpot's cursor for this endpoint is the next record's id.
                nxt = str(self._ids[start + limit])
                body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
            return body

    def get_contact(self, key: str, requested: Sequence[str] | None, id_property: str | None) -> JsonObject:
        with self._lock:
            record = self._find(key, id_property)
            if record is None:
                raise not_found(f"Object not found.  objectId are usually numeric. ({key})")
            return record.wire(requested_properties(requested, self._props))

    def _find(self, key: str, id_property: str | None) -> ContactRecord | None:
        if id_property in (None, "", OBJECT_ID):
            return self._contacts.get(int(key)) if _numeric(key) else None
        if id_property == "email":
            cid = self._by_email.get(key.strip().lower())
            return None if cid is None else self._contacts.get(cid)
        raise bad_request(f"idProperty must be a unique-value property (email or hs_object_id), got {id_property!r}")

    def search(self, body: Any) -> JsonObject:
        with self._lock:
            query = parse_search(body, self._props)
            ordered = self._ordered_matches(query)
            total = len(ordered)
            end = min(query.after + query.limit, MAX_RESULTS, total)
            page: JsonObject = {
                "total": total,
                "results": [self._contacts[i].wire(query.properties) for i in ordered[query.after : end]],
            }
            if end < total:
                # At the 10k cap HubSpot still hands out next.after=10000; following it is a 400.
                page["paging"] = {"next": {"after": str(end)}}
            return page

    def _ordered_matches(self, query: SearchQuery) -> list[int]:
        cached = self._search_cache.get(query.key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        ordered = self._compute_matches(query)
        if len(self._search_cache) >= _SEARCH_CACHE_SIZE:
            self._search_cache.pop(next(iter(self._search_cache)))
        self._search_cache[query.key] = (self._version, ordered)
        return ordered

    def _candidates(self, filters: Sequence[Filter]) -> tuple[str, list[int], bool]:
        """The narrowest index slice the group's range filters allow, the index it came from, and
        whether the slice is exactly the group's matches (every filter a range on that index)."""
        best: tuple[int, str, int, int] | None = None
        for prop in (OBJECT_ID, LAST_MODIFIED, CREATE_DATE):
            bounds = int_bounds(filters, prop)
            if bounds is None:
                continue
            lo, hi = bounds
            if prop == OBJECT_ID:
                a, b = bisect_left(self._ids, lo), bisect_right(self._ids, hi)
            else:
                index = self._by_modified if prop == LAST_MODIFIED else self._by_created
                a, b = bisect_left(index, (lo,)), bisect_left(index, (hi + 1,))
            size = max(0, b - a)
            if best is None or size < best[0]:
                best = (size, prop, a, b)
        if best is None:
            return OBJECT_ID, self._ids, not filters
        _, prop, a, b = best
        covered = all(f.prop == prop and f.op in RANGE_OPERATORS for f in filters)
        if prop == OBJECT_ID:
            return prop, self._ids[a:b], covered
        index = self._by_modified if prop == LAST_MODIFIED else self._by_created
        return prop, [cid for _, cid in index[a:b]], covered

    def _compute_matches(self, query: SearchQuery) -> list[int]:
        contacts = self._contacts
        groups = query.groups or ((),)
        source = OBJECT_ID
        matched: list[int] = []
        if len(groups) == 1:
            source, candidates, covered = self._candidates(groups[0])
            if covered:
                matched = list(candidates)
            else:
                check = group_predicate(groups[0], self._props)
                matched = [cid for cid in candidates if check(contacts[cid])]
        else:
            union: set[int] = set()
            for filters in groups:
                _, candidates, covered = self._candidates(filters)
                if covered:
                    union.update(candidates)
                else:
                    check = group_predicate(filters, self._props)
                    union.update(cid for cid in candidates if check(contacts[cid]))
            matched = sorted(union)
        if query.sort_prop == source and not query.descending:
            return matched  # the index order is (value, id): ties already broken by id ascending
        if query.sort_prop == OBJECT_ID:
            return sorted(matched, reverse=query.descending)
        # Ties are broken by hs_object_id ascending in both directions, so paging is stable;
        # contacts without a value come last.
        value_of = getter(self._props[query.sort_prop])
        present: list[tuple[Any, int]] = []
        missing: list[int] = []
        for cid in sorted(matched):
            value = value_of(contacts[cid])
            if value is None:
                missing.append(cid)
            else:
                present.append((value, cid))
        present.sort(key=lambda pair: pair[0], reverse=query.descending)
        return [cid for _, cid in present] + missing

    def batch_read(self, body: Any) -> tuple[list[JsonObject], list[str]]:
        """Results in input order, and the input ids that matched nothing."""
        inputs = _inputs(body)
        requested = body.get("properties")
        if requested is not None and not (isinstance(requested, list) and all(isinstance(p, str) for p in requested)):
            raise bad_request("properties must be a list of property names")
        id_property = body.get("idProperty")
        if id_property is not None and not isinstance(id_property, str):
            raise bad_request("idProperty must be a property name")
        keys = []
        for i, item in enumerate(inputs):
            if not isinstance(item, Mapping) or item.get("id") in (None, ""):
                raise bad_request(f"inputs[{i}] needs an id")
            keys.append(str(item["id"]))
        with self._lock:
            names = requested_properties(requested, self._props)
            results: list[JsonObject] = []
            missing: list[str] = []
            seen: set[int] = set()
            for key in keys:
                record = self._find(key, id_property)
                if record is None:
                    missing.append(key)
                elif record.id not in seen:
                    seen.add(record.id)
                    results.append(record.wire(names))
            return results, missing

    def batch_update(  # noqa: C901, PLR0912, PLR0915
        self, body: Any, now_ms: int, choose_failures: FailureChooser | None = None
    ) -> tuple[list[JsonObject], list[JsonObject]]:
        """Apply a batch update HubSpot's way; returns (results, per-item errors).

        Any invalid property or value rejects the whole batch (400) before anything is
        applied; unknown ids and injected failures are per-item errors and the rest apply.
        """
        inputs = _inputs(body)
        with self._lock:
            planned: list[tuple[str, str | None, dict[str, str]]] = []
            problems: list[JsonObject] = []
            seen: set[tuple[str, str]] = set()
            duplicates: set[str] = set()
            for i, item in enumerate(inputs):
                if not isinstance(item, Mapping) or item.get("id") in (None, ""):
                    raise bad_request(f"inputs[{i}] needs an id")
                values = item.get("properties")
                if not isinstance(values, Mapping):
                    raise bad_request(f"inputs[{i}].properties must be an object")
                raw_id_property = item.get("idProperty")
                id_property = raw_id_property if isinstance(raw_id_property, str) and raw_id_property else None
                key = str(item["id"])
                identity = (id_property or OBJECT_ID, key.lower() if id_property == "email" else key)
                if identity in seen:
                    duplicates.add(key)
                seen.add(identity)
                normalized: dict[str, str] = {}
                for name, raw in values.items():
                    value = self._validate(str(name), raw, problems)
                    if value is not None:
                        normalized[str(name)] = value
                planned.append((key, id_property, normalized))
            if duplicates:
                raise bad_request(f"Duplicate IDs found in batch input: {sorted(duplicates)}. IDs must be unique")
            if problems:
                raise bad_request(
                    "Property values were not valid: " + "; ".join(p["message"] for p in problems),
                    errors=problems,
                )
            targets: list[tuple[ContactRecord, dict[str, str]]] = []
            missing: list[str] = []
            for key, id_property, values in planned:
                record = self._find(key, id_property)
                if record is None:
                    missing.append(key)
                else:
                    targets.append((record, values))
            self._check_emails(targets)
            failed: set[str] = set()
            category = "INTERNAL_ERROR"
            if choose_failures is not None and targets:
                failed, category = choose_failures([r.sid for r, _ in targets])
            results: list[JsonObject] = []
            for record, values in targets:
                if record.sid in failed:
                    continue
                self._apply(record, values, now_ms)
                results.append(record.wire(tuple(values)))
            errors: list[JsonObject] = []
            if missing:
                errors.append(
                    _item_error(
                        "OBJECT_NOT_FOUND",
                        NOT_FOUND_MESSAGE,
                        missing,
                    )
                )
            if failed:
                ids = [r.sid for r, _ in targets if r.sid in failed]
                message = (
                    "Too many concurrent updates to these records; retry them."
                    if category == "RATE_LIMITS"
                    else "An internal error occurred while updating these records; retry them."
                )
                errors.append(_item_error(category, message, ids))
            return results, errors

    def _validate(self, name: str, raw: Any, problems: list[JsonObject]) -> str | None:
        prop = self._props.get(name)
        if prop is None:
            problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            return None
        if prop.read_only:
            problems.append(
                _problem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
            )
            return None
        try:
            return prop.normalize(raw)
        except ValueError as exc:
            code = {"number": "INVALID_NUMBER", "enumeration": "INVALID_OPTION", "bool": "INVALID_BOOLEAN"}.get(
                prop.type, "INVALID_VALUE"
            )
            problems.append(_problem(name, code, f"{exc} (property {name})"))
            return None

    def _check_emails(self, targets: Sequence[tuple[ContactRecord, dict[str, str]]]) -> None:
        for record, values in targets:
            email = values.get("email")
            if email:
                owner = self._by_email.get(email.lower())
                if owner is not None and owner != record.id:
                    raise ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {owner}")

    def _apply(self, record: ContactRecord, values: Mapping[str, str], now_ms: int) -> None:
        applied: dict[str, str] = {}
        for name, value in values.items():
            if name == LIFECYCLE_STAGE and value:
                current = record.props.get(LIFECYCLE_STAGE, "")
                if current in _STAGE_RANK and value in _STAGE_RANK and _STAGE_RANK[value] < _STAGE_RANK[current]:
                    # HubSpot quirk: a backward lifecycle write answers success and changes nothing.
                    continue
            self._set_value(record, name, value)
            applied[name] = value
        if applied:
            self._touch(record, now_ms)
            self._write_log.append(WriteRecord(record.sid, applied, now_ms))
            self._write_counts[record.id] = self._write_counts.get(record.id, 0) + 1

    def upsert_contacts(self, items: Any, now_ms: int) -> list[JsonObject]:  # noqa: C901, PLR0912
        """Admin: create or edit contacts as a person or an import would (no forward-only rule, any property)."""
        if not isinstance(items, list):
            raise bad_request("contacts must be a list")
        with self._lock:
            plans: list[tuple[ContactRecord | None, int | None, dict[str, str], int | None, int | None]] = []
            for i, item in enumerate(items):
                if not isinstance(item, Mapping) or not isinstance(item.get("properties", {}), Mapping):
                    raise bad_request(f"contacts[{i}] must be an object with a properties object")
                values = dict(item.get("properties") or {})
                created = _admin_ms(values.pop(CREATE_DATE, None), f"contacts[{i}].createdate")
                modified = _admin_ms(values.pop(LAST_MODIFIED, None), f"contacts[{i}].lastmodifieddate")
                values.pop(OBJECT_ID, None)
                normalized: dict[str, str] = {}
                for name, raw in values.items():
                    prop = self._props.get(str(name))
                    if prop is None:
                        raise bad_request(f"contacts[{i}]: property {name!r} does not exist")
                    try:
                        normalized[str(name)] = prop.normalize(raw)
                    except ValueError as exc:
                        raise bad_request(f"contacts[{i}]: {exc}") from None
                raw_id = item.get("id")
                email = normalized.get("email")
                owner = self._by_email.get(email.lower()) if email else None
                cid: int | None = None
                if raw_id not in (None, ""):
                    if not _numeric(str(raw_id)):
                        raise bad_request(f"contacts[{i}].id must be numeric")
                    cid = int(str(raw_id))
                    if owner is not None and owner != cid:
                        raise ApiError(409, "CONFLICT", f"contacts[{i}]: email {email} belongs to contact {owner}")
                else:
                    cid = owner  # no id: upsert by email
                record = None if cid is None else self._contacts.get(cid)
                plans.append((record, cid, normalized, created, modified))
            out: list[JsonObject] = []
            for found, cid, normalized, created, modified in plans:
                if found is None:
                    record = self._insert(
                        {k: v for k, v in normalized.items() if v},
                        created if created is not None else now_ms,
                        modified if modified is not None else now_ms,
                        cid,
                    )
                else:
                    record = found
                    for name, value in normalized.items():
                        self._set_value(record, name, value)
                    if created is not None:
                        self._set_created(record, created)
                    self._touch(record, modified if modified is not None else now_ms)
                out.append(record.snapshot())
            return out

    # --- write log -------------------------------------------------------------------------

    def write_log(self, since: int = 0) -> list[WriteRecord]:
        with self._lock:
            return self._write_log[since:]

    def write_counts(self) -> dict[str, int]:
        with self._lock:
            return {str(cid): n for cid, n in sorted(self._write_counts.items())}

    def reset_writes(self) -> None:
        with self._lock:
            self._write_log.clear()
            self._write_counts.clear()

    def contact_count(self) -> int:
        with self._lock:
            return len(self._contacts)

    def contact_properties(self, cid: str) -> dict[str, str] | None:
        """A test's view of one contact: every stored value, record fields included."""
        with self._lock:
            record = self._contacts.get(int(cid)) if _numeric(cid) else None
            return None if record is None else dict(record.snapshot()["properties"])

    # --- forms, submissions, email events, lists ---------------------------------------

    def forms(
        self, limit: int, after: str | None, form_types: Collection[str] = ("hubspot",), archived: bool = False
    ) -> JsonObject:
        """The forms of `form_types` that are archived or not (as `archived` says), paged by form id."""
        with self._lock:
            forms = [f for f in self._forms.values() if f.form_type in form_types and f.archived == archived]
            start = 0
            if after is not None:
                (form_id,) = decode_cursor(after, 1)
                start = next((i for i, f in enumerate(forms) if f.id == form_id), len(forms))
            page = forms[start : start + limit]
            body: JsonObject = {"results": [f.wire() for f in page]}
            if start + limit < len(forms):
                token = encode_cursor(forms[start + limit].id)
                body["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
            return body

    def form(self, form_id: str) -> JsonObject:
        with self._lock:
            form = self._forms.get(form_id)
            if form is None:
                raise not_found(f"Form {form_id} does not exist")
            return form.wire()

    def submissions(self, form_id: str, limit: int, after: str | None) -> JsonObject:
        with self._lock:
            if form_id not in self._forms:
                raise not_found(f"Form {form_id} does not exist")
            subs = self._submissions[form_id]
            start = 0
            if after is not None:
                at, conversion = decode_cursor(after, 2)
                if not _numeric(at.lstrip("-")):
                    raise bad_request(f"Invalid paging token 'after': {after!r}")
                # A key cursor, not an offset: a submission arriving meanwhile cannot shift the pages.
                start = bisect_right(subs, (-int(at), conversion), key=_submission_key)
            page = subs[start : start + limit]
            body: JsonObject = {"results": [s.wire() for s in page]}
            if page and start + limit < len(subs):
                last = page[-1]
                token = encode_cursor(last.submitted_at, last.conversion_id)
                body["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
            return body

    def email_events(
        self,
        *,
        start: int | None,
        end: int | None,
        event_type: str | None,
        exclude_filtered: bool,
        offset: str | None,
        limit: int,
        now_ms: int,
        expire_offset: bool = False,
    ) -> JsonObject:
        """Events created in [start, end], newest first, as HubSpot lists them.

        The offset is short-lived and tied to its query, as HubSpot's is: it is valid only for the same start,
        end, type and filter, for `offset_ttl_seconds` after it was handed out; otherwise (or when a fault expires
        it) the answer is a 400 and the client starts the query again without one.
        """
        with self._lock:
            kind = event_type.upper() if event_type else None
            query = (start, end, kind, exclude_filtered)
            events = self._events if kind is None else self._events_by_type.get(kind, [])
            low = 0 if start is None else bisect_left(events, start, key=_event_created)
            high = len(events) if end is None else bisect_right(events, end, key=_event_created)
            if offset is not None:
                issued = self._offsets.get(offset)
                expired = issued is not None and now_ms - issued.issued_ms > self.offset_ttl_seconds * 1000
                if expire_offset or expired:
                    self._offsets.pop(offset, None)
                if expire_offset or expired or issued is None or issued.query != query:
                    raise bad_request(
                        f"Invalid offset {offset!r}: an offset is valid for a short time and only for the query "
                        "that returned it; start the query again without one"
                    )
                # A key position, not a count: an event arriving meanwhile cannot shift the pages.
                high = min(high, bisect_left(events, issued.after, key=_event_key))
            page: list[EmailEventRecord] = []
            has_more = False
            for index in range(high - 1, low - 1, -1):
                event = events[index]
                if exclude_filtered and event.filtered:
                    continue
                if len(page) == limit:
                    has_more = True
                    break
                page.append(event)
            token = ""
            if has_more:
                self._offset_serial += 1
                token = encode_cursor(self._offset_serial, page[-1].created, page[-1].id)
                self._issue_offset(token, _IssuedOffset(query, _event_key(page[-1]), now_ms), now_ms)
            return {"events": [e.wire() for e in page], "hasMore": has_more, "offset": token}

    def _issue_offset(self, token: str, issued: _IssuedOffset, now_ms: int) -> None:
        if len(self._offsets) >= _OFFSETS_KEPT:  # forget expired ones (and, past twice the cap, the oldest)
            ttl_ms = self.offset_ttl_seconds * 1000
            self._offsets = {k: v for k, v in self._offsets.items() if now_ms - v.issued_ms <= ttl_ms}
            while len(self._offsets) >= 2 * _OFFSETS_KEPT:
                self._offsets.pop(next(iter(self._offsets)))
        self._offsets[token] = issued

    def account_info(self) -> JsonObject:
        """The portal a token belongs to (GET /account-info/v3/details)."""
        return {
            "portalId": self.portal_id,
            "accountType": "STANDARD",
            "timeZone": self.time_zone,
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "dataHostingLocation": "na1",
            "uiDomain": "app.hubspot.com",
            "utcOffset": "+00:00",
            "utcOffsetMilliseconds": 0,
        }

    def list_info(self, list_id: str) -> JsonObject:
        with self._lock:
            record = self._lists.get(int(list_id)) if _numeric(list_id) else None
            if record is None:
                raise not_found(f"List {list_id} does not exist.")
            return {
                "list": {
                    "listId": str(record.list_id),
                    "name": record.name,
                    "objectTypeId": "0-1",
                    "processingType": "MANUAL",
                    "size": len(record.members),
                }
            }

    def memberships(self, list_id: str, limit: int, after: str | None) -> JsonObject:
        with self._lock:
            record = self._lists.get(int(list_id)) if _numeric(list_id) else None
            if record is None:
                raise not_found(f"List {list_id} does not exist.")
            ids = sorted(record.members)
            start = 0
            if after is not None:
                (last,) = decode_cursor(after, 1)
                if not _numeric(last):
                    raise bad_request(f"Invalid paging token 'after': {after!r}")
                start = bisect_right(ids, int(last))
            page = ids[start : start + limit]
            body: JsonObject = {
                "results": [{"recordId": str(i), "membershipTimestamp": iso_ms(record.members[i])} for i in page],
                "total": len(ids),
            }
            if page and start + limit < len(ids):
                body["paging"] = {"next": {"after": encode_cursor(page[-1])}}
            return body

    # --- admin: events arrive ------------------------------------------------------------

    def add_submissions(self, items: Any, now_ms: int, new_id: Callable[[], str]) -> int:
        if not isinstance(items, list):
            raise bad_request("form_submissions must be a list")
        subs = [_submission_from(item, now_ms, new_id, f"form_submissions[{i}]") for i, item in enumerate(items)]
        with self._lock:
            for sub in subs:
                self._add_submission(sub)
        return len(subs)

    def add_email_events(self, items: Any, now_ms: int, new_id: Callable[[], str]) -> int:
        if not isinstance(items, list):
            raise bad_request("email_events must be a list")
        events = [
            _event_from(item, now_ms, new_id, self.portal_id, f"email_events[{i}]") for i, item in enumerate(items)
        ]
        with self._lock:
            for event in events:
                self._add_event(event)
        return len(events)

    def upsert_lists(self, items: Any, now_ms: int) -> int:
        if not isinstance(items, list):
            raise bad_request("lists must be a list")
        with self._lock:
            for i, item in enumerate(items):
                list_id, name, members = _list_from(item, now_ms, f"lists[{i}]")
                self._lists[list_id] = ListRecord(list_id, name, members)
        return len(items)

    def upsert_forms(self, items: Any, now_ms: int) -> int:
        if not isinstance(items, list):
            raise bad_request("forms must be a list")
        forms = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not item.get("id") or not item.get("name"):
                raise bad_request(f"forms[{i}] needs an id and a name")
            forms.append(_form_from(item, now_ms, f"forms[{i}]"))
        for form in forms:
            self.add_form(form)
        return len(forms)

    # --- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> JsonObject:
        """The whole state in the snapshot format (ARCHITECTURE.md), plus the definitions of custom properties."""
        with self._lock:
            standard = {p.name for p in standard_properties(0)}
            standard_groups = {g.name for g in STANDARD_GROUPS}
            return {
                "portal_id": self.portal_id,
                "contacts": [self._contacts[i].snapshot() for i in self._ids],
                "forms": [f.snapshot() for f in self._forms.values()],
                "form_submissions": [s.snapshot() for subs in self._submissions.values() for s in reversed(subs)],
                "email_events": [e.wire() for e in self._events],
                "lists": [self._lists[k].snapshot() for k in sorted(self._lists)],
                "property_groups": [
                    {"name": g.name, "label": g.label} for g in self._groups.values() if g.name not in standard_groups
                ],
                "properties": [p.snapshot() for p in self._props.values() if p.name not in standard],
            }

    @classmethod
    def from_snapshot(cls, raw: Mapping[str, Any], now_ms: int) -> tuple[Portal, list[str]]:  # noqa: C901, PLR0912, PLR0915
        """A portal serving a snapshot, and the records it had to skip (as `read_snapshot` would)."""
        problems: list[str] = []
        portal_id = str(raw.get("portal_id", ""))
        portal = cls(int(portal_id) if _numeric(portal_id) else DEFAULT_PORTAL_ID, created_ms=0)
        for item in _records(raw, "property_groups", problems):
            if isinstance(item, Mapping) and item.get("name"):
                portal.define_group(PropertyGroup(str(item["name"]), str(item.get("label") or item["name"])))
        for i, item in enumerate(_records(raw, "properties", problems)):
            try:
                portal.define_property(PropertyDef.from_wire(item, 0, portal._groups))
            except ApiError as exc:
                problems.append(f"properties[{i}]: {exc.message}; skipped")
        contacts = _snapshot_contacts(portal, _records(raw, "contacts", problems), problems)
        for i, item in enumerate(_records(raw, "forms", problems)):
            if not isinstance(item, Mapping) or item.get("id") is None:
                problems.append(f"forms[{i}]: needs an id; skipped")
                continue
            try:
                portal.add_form(_form_from(item, 0, f"forms[{i}]"))
            except ApiError as exc:
                problems.append(f"{exc.message}; skipped")
        subs: list[Submission] = []
        seen_conversions: set[str] = set()
        for i, item in enumerate(_records(raw, "form_submissions", problems)):
            try:
                sub = _submission_from(item, None, None, f"form_submissions[{i}]")
            except ApiError as exc:
                problems.append(f"{exc.message}; skipped")
                continue
            if sub.form_id not in portal._forms:
                problems.append(f"form_submissions[{i}]: form {sub.form_id} is not in the snapshot; skipped")
            elif sub.sends_conversion_id and sub.conversion_id in seen_conversions:
                problems.append(f"form_submissions[{i}]: conversionId {sub.conversion_id} repeats; skipped")
            else:
                seen_conversions.add(sub.conversion_id)
                subs.append(sub)
        events: list[EmailEventRecord] = []
        seen_events: set[tuple[str, int]] = set()
        for i, item in enumerate(_records(raw, "email_events", problems)):
            try:
                event = _event_from(item, None, None, portal.portal_id, f"email_events[{i}]")
            except ApiError as exc:
                problems.append(f"{exc.message}; skipped")
                continue
            if (event.id, event.created) in seen_events:
                problems.append(f"email_events[{i}]: id {event.id} created {event.created} repeats; skipped")
                continue
            seen_events.add((event.id, event.created))
            events.append(event)
        portal.bulk_load(contacts, subs, events)
        for i, item in enumerate(_records(raw, "lists", problems)):
            try:
                list_id, name, members = _list_from(item, now_ms, f"lists[{i}]")
            except ApiError as exc:
                problems.append(f"{exc.message}; skipped")
                continue
            portal.set_list(list_id, name, members)
        return portal, problems


def _numeric(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts superscripts and other scripts' digits, which int() may refuse."""
    return text.isascii() and text.isdigit()


def _records(raw: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        problems.append(f"{key}: is not a list; ignored")
        return []
    return value


def _snapshot_contacts(  # noqa: C901
    portal: Portal, items: list[Any], problems: list[str]
) -> list[tuple[int, dict[str, str], int, int]]:
    """Snapshot contacts -> rows for bulk_load. Values are kept as given; unknown properties become text properties."""
    rows: list[tuple[int, dict[str, str], int, int]] = []
    seen: set[int] = set()
    emails: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"contacts[{i}]: is not an object; skipped")
            continue
        cid = str(item.get("id") or "").strip()
        if not _numeric(cid):
            problems.append(f"contacts[{i}]: needs a numeric id; skipped")
            continue
        if int(cid) in seen:
            problems.append(f"contacts[{i}]: contact {cid} appears twice; the later one skipped")
            continue
        props_raw = item.get("properties") or {}
        if not isinstance(props_raw, Mapping):
            problems.append(f"contacts[{i}]: properties is not an object; skipped")
            continue
        props = {str(k): str(v) for k, v in props_raw.items() if v is not None and v != ""}
        created = parse_ms(props.pop(CREATE_DATE, None))
        modified = parse_ms(props.pop(LAST_MODIFIED, None))
        for name in RECORD_FIELDS:
            props.pop(name, None)
        if created is None or modified is None:
            problems.append(f"contacts[{i}]: contact {cid} needs ISO or ms createdate and lastmodifieddate; skipped")
            continue
        email = props.get("email", "").lower()
        if email and email in emails:
            problems.append(f"contacts[{i}]: email {email} is on an earlier contact; skipped")
            continue
        for name in props:
            if portal.property_def(name) is None:
                portal.define_property(PropertyDef(name, name, "string", "text", "snapshot_properties"))
        emails.add(email)
        seen.add(int(cid))
        rows.append((int(cid), props, created, modified))
    return rows


def _inputs(body: Any) -> list[Any]:
    if not isinstance(body, Mapping):
        raise bad_request("Invalid input JSON: the batch request must be a JSON object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad_request("inputs must be a non-empty list")
    if len(inputs) > MAX_BATCH:
        raise bad_request(f"Batch size {len(inputs)} is larger than the maximum of {MAX_BATCH} inputs")
    return inputs


def _item_error(category: str, message: str, ids: list[str]) -> JsonObject:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    }


def _problem(name: str, code: str, message: str) -> JsonObject:
    return {"message": message, "code": code, "context": {"propertyName": [name]}}


def _admin_ms(raw: Any, where: str) -> int | None:
    if raw is None or raw == "":
        return None
    ms = parse_ms(raw)
    if ms is None:
        raise bad_request(f"{where}: {raw!r} is not epoch ms or ISO 8601")
    return ms


def _submission_key(sub: Submission) -> tuple[int, str]:
    return (-sub.submitted_at, sub.conversion_id)


def _event_key(event: EmailEventRecord) -> tuple[int, str]:
    return (event.created, event.id)


def _event_created(event: EmailEventRecord) -> int:
    return event.created


@dataclasses.dataclass(frozen=True)
class _IssuedOffset:
    query: tuple[int | None, int | None, str | None, bool]  # start, end, type, excludeFilteredEvents
    after: tuple[int, str]  # the (created, id) of the last event handed out: the next page is older
    issued_ms: int


def _submission_from(item: Any, now_ms: int | None, new_id: Callable[[], str] | None, where: str) -> Submission:
    if not isinstance(item, Mapping) or not item.get("formId"):
        raise bad_request(f"{where}: needs a formId")
    submitted = item.get("submittedAt")
    at = now_ms if submitted is None and now_ms is not None else parse_ms(submitted)
    if at is None:
        raise bad_request(f"{where}: submittedAt {submitted!r} is not epoch ms")
    # An admin post without conversionId gets one; `"conversionId": null` (or a snapshot's submission without
    # one) is a submission HubSpot sends without it: the sandbox keys it by an id of its own it never sends.
    sent = bool(item.get("conversionId")) or ("conversionId" not in item and new_id is not None)
    conversion = item.get("conversionId") or (new_id() if new_id else f"nocid:{where}")
    values = item.get("values") or []
    if not isinstance(values, list):
        raise bad_request(f"{where}: values must be a list")
    page = str(item.get("pageUrl") or "")
    return Submission(str(item["formId"]), str(conversion), at, pairs(values), page, sends_conversion_id=sent)


def _form_from(item: Mapping[str, Any], now_ms: int, where: str) -> FormRecord:
    form_type = str(item.get("formType") or "hubspot")
    if form_type not in FORM_TYPES:
        raise bad_request(f"{where}: formType {form_type!r} is not one of {', '.join(FORM_TYPES)}")
    archived = item.get("archived", False)
    if not isinstance(archived, bool):
        raise bad_request(f"{where}: archived must be true or false")
    return FormRecord(str(item["id"]), str(item.get("name") or ""), now_ms, form_type=form_type, archived=archived)


_EVENT_FIELDS = frozenset({"id", "created", "type", "recipient", "emailCampaignId", "portalId", "filteredEvent"})


def _event_from(
    item: Any, now_ms: int | None, new_id: Callable[[], str] | None, portal_id: int, where: str
) -> EmailEventRecord:
    if not isinstance(item, Mapping) or not item.get("type") or not item.get("recipient"):
        raise bad_request(f"{where}: needs a type and a recipient")
    created_raw = item.get("created")
    created = now_ms if created_raw is None and now_ms is not None else parse_ms(created_raw)
    if created is None:
        raise bad_request(f"{where}: created {created_raw!r} is not epoch ms")
    event_id = item.get("id") or (new_id() if new_id else None)
    if not event_id:
        raise bad_request(f"{where}: needs an id")
    campaign = item.get("emailCampaignId", 0)
    return EmailEventRecord(
        str(event_id),
        created,
        str(item["type"]).upper(),
        str(item["recipient"]),
        int(campaign) if _numeric(str(campaign)) else 0,
        int(item["portalId"]) if _numeric(str(item.get("portalId", ""))) else portal_id,
        bool(item.get("filteredEvent", False)),
        {k: v for k, v in item.items() if k not in _EVENT_FIELDS},
    )


def _list_from(item: Any, now_ms: int, where: str) -> tuple[int, str, dict[int, int]]:
    if not isinstance(item, Mapping) or not _numeric(str(item.get("listId", ""))):
        raise bad_request(f"{where}: needs a numeric listId")
    ids = item.get("contactIds") or []
    if not isinstance(ids, list) or not all(_numeric(str(c)) for c in ids):
        raise bad_request(f"{where}: contactIds must be a list of numeric ids")
    stamps = item.get("membershipTimestamps") or {}
    if not isinstance(stamps, Mapping):
        raise bad_request(f"{where}: membershipTimestamps must map contact ids to epoch ms")
    members: dict[int, int] = {}
    for cid in ids:
        stamp = parse_ms(stamps.get(str(cid)))
        members[int(str(cid))] = now_ms if stamp is None else stamp
    list_id = int(str(item["listId"]))
    return list_id, str(item.get("name") or f"List {list_id}"), members
