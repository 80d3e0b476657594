"""The in-memory state of one sandbox portal, behind one lock: a thin front over its rooms.

The contacts live in a record index (`index.py`: records, keyset indexes, search) with their list
memberships; forms, submissions and email events in the engagement log (`engagement.py`); property
definitions in the property registry (`registry.py`). Batch and admin requests are checked whole
first (`batch.py`), then applied.

Every public method takes the lock, so HTTP handler threads see each request applied whole.
Methods return fresh JSON-ready values (never the live dicts), so the server can encode them
after the lock is released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from sync.hubspot.shapes import submission_email
from sync.sandbox import batch
from sync.sandbox.associations import COMPANY_TO_CONTACT, CONTACT_TO_COMPANY, Associations, Direction
from sync.sandbox.engagement import EngagementLog, EventQuery, event_from, form_from, list_from, submission_from
from sync.sandbox.index import ListMemberships, RecordIndex, Row
from sync.sandbox.properties import (
    COMPANY_GROUPS,
    DEFAULT_COMPANY_PROPERTIES,
    LIFECYCLE_STAGE,
    STANDARD_GROUPS,
    PropertyDef,
    PropertyGroup,
    standard_company_properties,
    standard_properties,
)
from sync.sandbox.records import CompanyRecord, ContactRecord, EmailEventRecord, FormRecord, Submission, WriteRecord
from sync.sandbox.registry import PropertyRegistry
from sync.sandbox.search import parse_search
from sync.sandbox.webhooks import ChangeEvent
from sync.sandbox.wire import JsonObject, bad_request, iso_ms, not_found, parse_ms
from sync.snapshot import numeric

MAX_BATCH = batch.MAX_BATCH
DEFAULT_PORTAL_ID = 12345678
NOT_FOUND_MESSAGE = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
COMPANY_NOT_FOUND_MESSAGE = NOT_FOUND_MESSAGE.replace("CONTACT", "COMPANY")
CONTACTS, COMPANIES = "contacts", "companies"  # the object types, as HubSpot's paths name them
# The conversion properties HubSpot sets on a contact that submits a form.
FIRST_CONVERSION_DATE, FIRST_CONVERSION_NAME = "first_conversion_date", "first_conversion_event_name"
RECENT_CONVERSION_DATE, RECENT_CONVERSION_NAME = "recent_conversion_date", "recent_conversion_event_name"
NUM_CONVERSIONS = "num_conversion_events"
_DATETIMES = frozenset({RECENT_CONVERSION_DATE, FIRST_CONVERSION_DATE})  # pushed as epoch ms, as webhooks give them
# (ids that should fail this time, their error category): the partial-failure fault's hook.
FailureChooser = Callable[[list[str]], tuple[set[str], str]]


class _Objects:
    """One CRM object type: its property registry, its records, and HubSpot's words for a missing one."""

    def __init__(self, registry: PropertyRegistry, index: RecordIndex, not_found: str) -> None:
        self.registry = registry
        self.index = index
        self.not_found = not_found


class Portal:
    def __init__(self, portal_id: int = DEFAULT_PORTAL_ID, *, created_ms: int = 0, time_zone: str = "UTC") -> None:
        self.portal_id = portal_id
        self.time_zone = time_zone
        self._lock = threading.Lock()
        self._registry = PropertyRegistry(CONTACTS, standard_properties(created_ms), STANDARD_GROUPS)
        self._contacts = RecordIndex(unique="email")
        company_registry = PropertyRegistry(
            COMPANIES, standard_company_properties(created_ms), COMPANY_GROUPS, DEFAULT_COMPANY_PROPERTIES
        )
        self._objects = {
            CONTACTS: _Objects(self._registry, self._contacts, NOT_FOUND_MESSAGE),
            COMPANIES: _Objects(company_registry, RecordIndex(record=CompanyRecord), COMPANY_NOT_FOUND_MESSAGE),
        }
        self._associations = Associations()
        self._lists = ListMemberships()
        self._engagement = EngagementLog()
        # Told every change to a contact once it is applied (the webhook pusher), outside the lock.
        self.on_change: Callable[[list[ChangeEvent]], None] | None = None

    def _of(self, object_type: str) -> _Objects:
        return self._objects[object_type]

    @property
    def search_lag_seconds(self) -> float:
        """How long after a change search still shows a record as it was (HubSpot's indexing delay); 0: none."""
        return self._contacts.search_lag_ms / 1000

    @search_lag_seconds.setter
    def search_lag_seconds(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a search lag is 0 seconds or more, not {seconds:g}")
        with self._lock:
            for objects in self._objects.values():
                objects.index.search_lag_ms = round(seconds * 1000)

    @property
    def offset_ttl_seconds(self) -> float:
        """How long an email events offset stays valid after it was handed out."""
        return self._engagement.offset_ttl_seconds

    @offset_ttl_seconds.setter
    def offset_ttl_seconds(self, seconds: float) -> None:
        with self._lock:
            self._engagement.offset_ttl_seconds = seconds

    # --- building (generator, snapshot loader, admin endpoints) -------------------------

    def define_group(self, group: PropertyGroup, object_type: str = CONTACTS) -> None:
        with self._lock:
            self._of(object_type).registry.define_group(group)

    def define_property(self, prop: PropertyDef, object_type: str = CONTACTS) -> None:
        with self._lock:
            self._of(object_type).registry.define(prop)

    def redefine_property(self, prop: PropertyDef) -> None:
        """Replace a property's definition as a HubSpot admin would, HubSpot-defined ones included (an admin
        may remove a lifecycle stage, an option someone else's property lacks ...)."""
        with self._lock:
            self._registry.redefine(prop)

    def add_lifecycle_stage(self, value: str, label: str) -> None:
        """A custom lifecycle stage, as a portal's admin adds one in HubSpot's lifecycle stage settings."""
        with self._lock:
            self._registry.add_option(LIFECYCLE_STAGE, value, label)

    def add_form(self, form: FormRecord) -> None:
        with self._lock:
            self._engagement.add_form(form)

    def remove_form(self, form_id: str) -> bool:
        """A form deleted in HubSpot: no longer listed nor readable, but its submissions stay on the contacts
        (and in the snapshot, under a formId the snapshot's forms no longer name). False when there is none."""
        with self._lock:
            return self._engagement.remove_form(form_id)

    def set_list(self, list_id: int, name: str, members: Mapping[int, int]) -> None:
        with self._lock:
            self._lists.set(list_id, name, members)

    def bulk_load(
        self,
        contacts: Iterable[Row],
        submissions: Iterable[Submission] = (),
        events: Iterable[EmailEventRecord] = (),
    ) -> None:
        """Many records at once: indexes are sorted once at the end instead of kept sorted per insert."""
        with self._lock:
            self._contacts.load(contacts)
            self._engagement.load(submissions, events)

    def bulk_load_companies(self, companies: Iterable[Row], associations: Iterable[tuple[int, int, bool]]) -> None:
        """Companies and (contact id, company id, primary) associations at once; both ends must exist."""
        with self._lock:
            index = self._of(COMPANIES).index
            index.load(companies)
            for contact, company, primary in associations:
                if contact not in self._contacts.records or company not in index.records:
                    raise ValueError(f"association {contact} -> {company}: no such contact or company")
                self._associations.associate(contact, company, primary)

    # --- properties ------------------------------------------------------------------------

    def properties(self, object_type: str = CONTACTS) -> list[JsonObject]:
        with self._lock:
            return self._of(object_type).registry.wire_all()

    def property(self, name: str, object_type: str = CONTACTS) -> JsonObject:
        with self._lock:
            return self._of(object_type).registry.wire(name)

    def property_def(self, name: str, object_type: str = CONTACTS) -> PropertyDef | None:
        with self._lock:
            return self._of(object_type).registry.get(name)

    def create_property(self, raw: Any, now_ms: int, object_type: str = CONTACTS) -> JsonObject:
        with self._lock:
            return self._of(object_type).registry.create(raw, now_ms)

    def update_property(self, name: str, raw: Any, now_ms: int, object_type: str = CONTACTS) -> JsonObject:
        with self._lock:
            return self._of(object_type).registry.update(name, raw, now_ms)

    def groups(self, object_type: str = CONTACTS) -> list[JsonObject]:
        with self._lock:
            return self._of(object_type).registry.groups_wire()

    def group(self, name: str, object_type: str = CONTACTS) -> JsonObject:
        with self._lock:
            return self._of(object_type).registry.group_wire(name)

    def create_group(self, raw: Any, object_type: str = CONTACTS) -> JsonObject:
        with self._lock:
            return self._of(object_type).registry.create_group(raw)

    # --- contacts --------------------------------------------------------------------------

    def list_contacts(
        self, limit: int, after: str | None, requested: Sequence[str] | None, object_type: str = CONTACTS
    ) -> JsonObject:
        """A page of the list endpoint (of contacts, or of the object type named)."""
        objects = self._of(object_type)
        with self._lock:
            return objects.index.page(limit, after, objects.registry.requested(requested))

    def get_contact(
        self, key: str, requested: Sequence[str] | None, id_property: str | None, object_type: str = CONTACTS
    ) -> JsonObject:
        objects = self._of(object_type)
        with self._lock:
            record = objects.index.find(key, id_property)
            if record is None:
                raise not_found(f"Object not found.  objectId are usually numeric. ({key})")
            return record.wire(objects.registry.requested(requested))

    def search(self, body: Any, object_type: str = CONTACTS, now_ms: int | None = None) -> JsonObject:
        """A search as HubSpot answers it; at `now_ms`, changes made within the search lag are not shown yet."""
        objects = self._of(object_type)
        with self._lock:
            props = objects.registry.props
            return objects.index.search(parse_search(body, props, objects.registry.defaults), props, now_ms)

    def batch_read(self, body: Any, object_type: str = CONTACTS) -> tuple[list[JsonObject], list[str]]:
        """Results in input order, and the input ids that matched nothing."""
        request = batch.batch_read(body)
        objects = self._of(object_type)
        with self._lock:
            names = objects.registry.requested(request.properties)
            results: list[JsonObject] = []
            missing: list[str] = []
            seen: set[int] = set()
            for key in request.keys:
                record = objects.index.find(key, request.id_property)
                if record is None:
                    missing.append(key)
                elif record.id not in seen:
                    seen.add(record.id)
                    results.append(record.wire(names))
            return results, missing

    def batch_update(
        self,
        body: Any,
        now_ms: int,
        choose_failures: FailureChooser | None = None,
        object_type: str = CONTACTS,
    ) -> tuple[list[JsonObject], list[JsonObject]]:
        """Apply a batch update HubSpot's way; returns (results, per-item errors).

        Any invalid property or value rejects the whole batch (400) before anything is
        applied; unknown ids and injected failures are per-item errors and the rest apply.
        """
        objects = self._of(object_type)
        with self._lock:
            updates = batch.batch_update(body, objects.registry)
            targets: list[tuple[ContactRecord, dict[str, str]]] = []
            missing: list[str] = []
            for update in updates:
                record = objects.index.find(update.key, update.id_property)
                if record is None:
                    missing.append(update.key)
                else:
                    targets.append((record, update.values))
            objects.index.check_unique(targets)
            failed, category = (
                choose_failures([r.sid for r, _ in targets]) if choose_failures and targets else (set(), "")
            )
            results: list[JsonObject] = []
            changes: list[ChangeEvent] = []
            for record, values in targets:
                if record.sid not in failed:
                    before = {name: record.props.get(name, "") for name in values}
                    objects.index.apply(record, values, now_ms)
                    results.append(record.wire(tuple(values)))
                    changes += _changes(record, before, now_ms, "INTEGRATION")
            errors = [batch.item_error("OBJECT_NOT_FOUND", objects.not_found, missing)] if missing else []
            if failed:
                errors.append(_failure_error(category, [r.sid for r, _ in targets if r.sid in failed]))
        if object_type == CONTACTS:
            self._changed(changes)
        return results, errors

    def upsert_contacts(self, items: Any, now_ms: int, object_type: str = CONTACTS) -> list[JsonObject]:
        """Admin: create or edit contacts (or companies) as a person or an import would (no forward-only rule,
        any property)."""
        objects = self._of(object_type)
        changes: list[ChangeEvent] = []
        with self._lock:
            plans = batch.upserts(items, objects.index, objects.registry, object_type)
            out: list[JsonObject] = []
            for plan in plans:
                before = {name: plan.record.props.get(name, "") for name in plan.values} if plan.record else None
                record = _upsert(objects.index, plan, now_ms)
                out.append(record.snapshot())
                if before is None:
                    changes.append(ChangeEvent("creation", record.id, record.created_ms))
                else:
                    changes += _changes(record, before, now_ms, "CRM_UI")
        if object_type == CONTACTS:
            self._changed(changes)
        return out

    def remove_company(self, company_id: int) -> bool:
        """Admin: delete a company. Its associations stay: HubSpot can hand back an association to a record
        deleted since, and readers must cope. False when there is none."""
        with self._lock:
            return self._of(COMPANIES).index.remove(company_id)

    # --- associations ----------------------------------------------------------------------

    def associate(self, items: Any) -> int:
        """Admin: `[{"contactId", "companyId", "primary"?}]`, both ends existing; checked whole, then applied."""
        if not isinstance(items, list):
            raise bad_request("associations must be a list")
        with self._lock:
            pairs = [self._association(i, item) for i, item in enumerate(items)]
            for contact, company, primary in pairs:
                self._associations.associate(contact, company, primary)
            return len(pairs)

    def _association(self, i: int, item: Any) -> tuple[int, int, bool]:
        where = f"associations[{i}]"
        if not isinstance(item, Mapping):
            raise bad_request(f"{where} must be an object")
        contact, company = str(item.get("contactId", "")), str(item.get("companyId", ""))
        primary = item.get("primary", False)
        if not (numeric(contact) and numeric(company)) or not isinstance(primary, bool):
            raise bad_request(f"{where} needs numeric contactId and companyId and a boolean primary")
        if int(contact) not in self._contacts.records:
            raise not_found(f"{where}: contact {contact} does not exist")
        if int(company) not in self._of(COMPANIES).index.records:
            raise not_found(f"{where}: company {company} does not exist")
        return int(contact), int(company), primary

    def dissociate(self, contact_id: int, company_id: int) -> bool:
        with self._lock:
            return self._associations.remove(contact_id, company_id)

    def rename_primary_label(self, label: str) -> None:
        """HubSpot renamed the Primary association's label before; the type id stayed."""
        with self._lock:
            self._associations.primary_label = label

    def set_association_page_size(self, size: int) -> None:
        with self._lock:
            self._associations.page_size = size

    def read_associations(self, from_type: str, body: Any) -> tuple[list[JsonObject], list[JsonObject]]:
        """The v4 batch read from contacts to companies or back: results, and an error per id without any."""
        direction: Direction = CONTACT_TO_COMPANY if from_type == CONTACTS else COMPANY_TO_CONTACT
        with self._lock:
            return self._associations.batch_read(direction, body)

    # --- write log -------------------------------------------------------------------------

    def write_log(self, since: int = 0, object_type: str = CONTACTS) -> list[WriteRecord]:
        with self._lock:
            return self._of(object_type).index.write_log[since:]

    def write_counts(self, object_type: str = CONTACTS) -> dict[str, int]:
        with self._lock:
            return {str(cid): n for cid, n in sorted(self._of(object_type).index.write_counts.items())}

    def reset_writes(self) -> None:
        with self._lock:
            for objects in self._objects.values():
                objects.index.write_log.clear()
                objects.index.write_counts.clear()

    def contact_count(self) -> int:
        with self._lock:
            return len(self._contacts.records)

    def company_count(self) -> int:
        with self._lock:
            return len(self._of(COMPANIES).index.records)

    def contact_properties(self, cid: str, object_type: str = CONTACTS) -> dict[str, str] | None:
        """A test's view of one contact (or company): every stored value, record fields included."""
        with self._lock:
            record = self._of(object_type).index.records.get(int(cid)) if numeric(cid) else None
            return None if record is None else dict(record.snapshot()["properties"])

    # --- forms, submissions, email events, lists ---------------------------------------

    def forms(
        self, limit: int, after: str | None, form_types: Collection[str] = ("hubspot",), archived: bool = False
    ) -> JsonObject:
        """The forms of `form_types` that are archived or not (as `archived` says), paged by form id."""
        with self._lock:
            return self._engagement.forms_page(limit, after, form_types, archived)

    def form(self, form_id: str) -> JsonObject:
        with self._lock:
            return self._engagement.form(form_id).wire()

    def submissions(self, form_id: str, limit: int, after: str | None) -> JsonObject:
        with self._lock:
            return self._engagement.submissions_page(form_id, limit, after)

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
        query = EventQuery(start, end, event_type, exclude_filtered, offset, limit)
        with self._lock:
            return self._engagement.events_page(query, now_ms, expire_offset)

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
            return self._lists.info(list_id)

    def memberships(self, list_id: str, limit: int, after: str | None) -> JsonObject:
        with self._lock:
            return self._lists.memberships(list_id, limit, after)

    # --- admin: events arrive ------------------------------------------------------------

    def add_submissions(self, items: Any, now_ms: int, new_id: Callable[[], str]) -> int:
        if not isinstance(items, list):
            raise bad_request("form_submissions must be a list")
        subs = [submission_from(item, now_ms, new_id, f"form_submissions[{i}]") for i, item in enumerate(items)]
        changes: list[ChangeEvent] = []
        with self._lock:
            for sub in subs:
                self._engagement.add_submission(sub)
                changes += self._converted(sub, now_ms)
        self._changed(changes)
        return len(subs)

    def _converted(self, sub: Submission, now_ms: int) -> list[ChangeEvent]:
        """HubSpot's conversion properties on the contact whose email the submission gives (none: no contact is
        made), changed at `now_ms` like any property change: the first and the most recent conversion (date and
        form name) and the number of form submissions. Returns the changes, for the webhook push."""
        email = submission_email(sub.wire()["values"])
        cid = self._contacts.owner(email) if email else None
        record = self._contacts.records.get(cid) if cid is not None else None
        if record is None:
            return []
        name = self._engagement.forms[sub.form_id].name
        values = {NUM_CONVERSIONS: str(self._engagement.submissions_of(email))}
        first = parse_ms(record.props.get(FIRST_CONVERSION_DATE))
        if first is None or sub.submitted_at < first:
            values |= {FIRST_CONVERSION_DATE: iso_ms(sub.submitted_at), FIRST_CONVERSION_NAME: name}
        recent = parse_ms(record.props.get(RECENT_CONVERSION_DATE))
        if recent is None or sub.submitted_at >= recent:
            values |= {RECENT_CONVERSION_DATE: iso_ms(sub.submitted_at), RECENT_CONVERSION_NAME: name}
        before = {key: record.props.get(key, "") for key in values}
        self._contacts.changing(record.id, now_ms)
        for key, value in values.items():
            self._contacts.set_value(record, key, value)
        self._contacts.touch(record, now_ms)
        return _changes(record, before, sub.submitted_at, "FORM")

    def _changed(self, changes: list[ChangeEvent]) -> None:
        if changes and self.on_change is not None:
            self.on_change(changes)

    def add_email_events(self, items: Any, now_ms: int, new_id: Callable[[], str]) -> int:
        if not isinstance(items, list):
            raise bad_request("email_events must be a list")
        events = [
            event_from(item, now_ms, new_id, self.portal_id, f"email_events[{i}]") for i, item in enumerate(items)
        ]
        with self._lock:
            for event in events:
                self._engagement.add_event(event)
        return len(events)

    def upsert_lists(self, items: Any, now_ms: int) -> int:
        if not isinstance(items, list):
            raise bad_request("lists must be a list")
        with self._lock:
            for i, item in enumerate(items):
                self._lists.set(*list_from(item, now_ms, f"lists[{i}]"))
        return len(items)

    def upsert_forms(self, items: Any, now_ms: int) -> int:
        if not isinstance(items, list):
            raise bad_request("forms must be a list")
        forms = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not item.get("id") or not item.get("name"):
                raise bad_request(f"forms[{i}] needs an id and a name")
            forms.append(form_from(item, now_ms, f"forms[{i}]"))
        for form in forms:
            self.add_form(form)
        return len(forms)

    # --- snapshots -------------------------------------------------------------------------

    def snapshot(self) -> JsonObject:
        """The whole state in the snapshot format (ARCHITECTURE.md), plus the definitions of custom properties."""
        with self._lock:
            engagement = self._engagement.snapshot()
            custom = self._registry.snapshot()
            companies = self._of(COMPANIES)
            company_custom = companies.registry.snapshot()
            return {
                "portal_id": self.portal_id,
                "contacts": self._contacts.snapshot(),
                "forms": engagement["forms"],
                "form_submissions": engagement["form_submissions"],
                "email_events": engagement["email_events"],
                "lists": self._lists.snapshot(),
                "property_groups": custom["property_groups"],
                "properties": custom["properties"],
                "companies": companies.index.snapshot(),
                "associations": self._associations.snapshot(),
                "company_property_groups": company_custom["property_groups"],
                "company_properties": company_custom["properties"],
            }

    @classmethod
    def from_snapshot(cls, raw: Mapping[str, Any], now_ms: int) -> tuple[Portal, list[str]]:
        """A portal serving a snapshot, and the records it had to skip (as `read_snapshot` skips them)."""
        from sync.sandbox.loading import load_snapshot  # noqa: PLC0415 - the loader builds Portals: a cycle

        return load_snapshot(cls, raw, now_ms, DEFAULT_PORTAL_ID)


def _upsert(index: RecordIndex, plan: batch.Upsert, now_ms: int) -> ContactRecord:
    modified = plan.modified if plan.modified is not None else now_ms
    if plan.record is None:
        values = {k: v for k, v in plan.values.items() if v}
        created = plan.created if plan.created is not None else now_ms
        record = index.insert(values, created, modified, plan.cid)
        index.changing(record.id, now_ms, created=True)
        return record
    index.changing(plan.record.id, now_ms)
    for name, value in plan.values.items():
        index.set_value(plan.record, name, value)
    if plan.created is not None:
        index.set_created(plan.record, plan.created)
    index.touch(plan.record, modified)
    return plan.record


def _changes(record: ContactRecord, before: Mapping[str, str], at_ms: int, source: str) -> list[ChangeEvent]:
    """The property changes a write made (a value it left as it was changes nothing); datetimes as epoch ms,
    as webhooks give them."""
    out: list[ChangeEvent] = []
    for name, old in before.items():
        new = record.props.get(name, "")
        if new != old:
            ms = parse_ms(new) if name in _DATETIMES else None
            value = str(ms) if ms is not None else new
            out.append(ChangeEvent("property_change", record.id, at_ms, name, value, source))
    return out


def _failure_error(category: str, ids: list[str]) -> JsonObject:
    message = (
        "Too many concurrent updates to these records; retry them."
        if category == "RATE_LIMITS"
        else "An internal error occurred while updating these records; retry them."
    )
    return batch.item_error(category, message, ids)
