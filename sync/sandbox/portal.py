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

from sync.sandbox import batch
from sync.sandbox.engagement import EngagementLog, EventQuery, event_from, form_from, list_from, submission_from
from sync.sandbox.index import ListMemberships, RecordIndex, Row
from sync.sandbox.properties import LIFECYCLE_STAGE, STANDARD_GROUPS, PropertyDef, PropertyGroup, standard_properties
from sync.sandbox.records import ContactRecord, EmailEventRecord, FormRecord, Submission, WriteRecord
from sync.sandbox.registry import PropertyRegistry
from sync.sandbox.search import parse_search
from sync.sandbox.wire import JsonObject, bad_request, not_found
from sync.snapshot import numeric

MAX_BATCH = batch.MAX_BATCH
DEFAULT_PORTAL_ID = 12345678
NOT_FOUND_MESSAGE = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."
# (ids that should fail this time, their error category): the partial-failure fault's hook.
FailureChooser = Callable[[list[str]], tuple[set[str], str]]


class Portal:
    def __init__(self, portal_id: int = DEFAULT_PORTAL_ID, *, created_ms: int = 0, time_zone: str = "UTC") -> None:
        self.portal_id = portal_id
        self.time_zone = time_zone
        self._lock = threading.Lock()
        self._registry = PropertyRegistry("contacts", standard_properties(created_ms), STANDARD_GROUPS)
        self._contacts = RecordIndex(unique="email")
        self._lists = ListMemberships()
        self._engagement = EngagementLog()

    @property
    def offset_ttl_seconds(self) -> float:
        """How long an email events offset stays valid after it was handed out."""
        return self._engagement.offset_ttl_seconds

    @offset_ttl_seconds.setter
    def offset_ttl_seconds(self, seconds: float) -> None:
        with self._lock:
            self._engagement.offset_ttl_seconds = seconds

    # --- building (generator, snapshot loader, admin endpoints) -------------------------

    def define_group(self, group: PropertyGroup) -> None:
        with self._lock:
            self._registry.define_group(group)

    def define_property(self, prop: PropertyDef) -> None:
        with self._lock:
            self._registry.define(prop)

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

    # --- properties ------------------------------------------------------------------------

    def properties(self) -> list[JsonObject]:
        with self._lock:
            return self._registry.wire_all()

    def property(self, name: str) -> JsonObject:
        with self._lock:
            return self._registry.wire(name)

    def property_def(self, name: str) -> PropertyDef | None:
        with self._lock:
            return self._registry.get(name)

    def create_property(self, raw: Any, now_ms: int) -> JsonObject:
        with self._lock:
            return self._registry.create(raw, now_ms)

    def update_property(self, name: str, raw: Any, now_ms: int) -> JsonObject:
        with self._lock:
            return self._registry.update(name, raw, now_ms)

    def groups(self) -> list[JsonObject]:
        with self._lock:
            return self._registry.groups_wire()

    def group(self, name: str) -> JsonObject:
        with self._lock:
            return self._registry.group_wire(name)

    def create_group(self, raw: Any) -> JsonObject:
        with self._lock:
            return self._registry.create_group(raw)

    # --- contacts --------------------------------------------------------------------------

    def list_contacts(self, limit: int, after: str | None, requested: Sequence[str] | None) -> JsonObject:
        with self._lock:
            return self._contacts.page(limit, after, self._registry.requested(requested))

    def get_contact(self, key: str, requested: Sequence[str] | None, id_property: str | None) -> JsonObject:
        with self._lock:
            record = self._contacts.find(key, id_property)
            if record is None:
                raise not_found(f"Object not found.  objectId are usually numeric. ({key})")
            return record.wire(self._registry.requested(requested))

    def search(self, body: Any) -> JsonObject:
        with self._lock:
            return self._contacts.search(parse_search(body, self._registry.props), self._registry.props)

    def batch_read(self, body: Any) -> tuple[list[JsonObject], list[str]]:
        """Results in input order, and the input ids that matched nothing."""
        request = batch.batch_read(body)
        with self._lock:
            names = self._registry.requested(request.properties)
            results: list[JsonObject] = []
            missing: list[str] = []
            seen: set[int] = set()
            for key in request.keys:
                record = self._contacts.find(key, request.id_property)
                if record is None:
                    missing.append(key)
                elif record.id not in seen:
                    seen.add(record.id)
                    results.append(record.wire(names))
            return results, missing

    def batch_update(
        self, body: Any, now_ms: int, choose_failures: FailureChooser | None = None
    ) -> tuple[list[JsonObject], list[JsonObject]]:
        """Apply a batch update HubSpot's way; returns (results, per-item errors).

        Any invalid property or value rejects the whole batch (400) before anything is
        applied; unknown ids and injected failures are per-item errors and the rest apply.
        """
        with self._lock:
            updates = batch.batch_update(body, self._registry)
            targets: list[tuple[ContactRecord, dict[str, str]]] = []
            missing: list[str] = []
            for update in updates:
                record = self._contacts.find(update.key, update.id_property)
                if record is None:
                    missing.append(update.key)
                else:
                    targets.append((record, update.values))
            self._contacts.check_unique(targets)
            failed, category = (
                choose_failures([r.sid for r, _ in targets]) if choose_failures and targets else (set(), "")
            )
            results: list[JsonObject] = []
            for record, values in targets:
                if record.sid not in failed:
                    self._contacts.apply(record, values, now_ms)
                    results.append(record.wire(tuple(values)))
            errors = [batch.item_error("OBJECT_NOT_FOUND", NOT_FOUND_MESSAGE, missing)] if missing else []
            if failed:
                errors.append(_failure_error(category, [r.sid for r, _ in targets if r.sid in failed]))
            return results, errors

    def upsert_contacts(self, items: Any, now_ms: int) -> list[JsonObject]:
        """Admin: create or edit contacts as a person or an import would (no forward-only rule, any property)."""
        with self._lock:
            plans = batch.upserts(items, self._contacts, self._registry)
            return [self._upsert(plan, now_ms).snapshot() for plan in plans]

    def _upsert(self, plan: batch.Upsert, now_ms: int) -> ContactRecord:
        modified = plan.modified if plan.modified is not None else now_ms
        if plan.record is None:
            values = {k: v for k, v in plan.values.items() if v}
            created = plan.created if plan.created is not None else now_ms
            return self._contacts.insert(values, created, modified, plan.cid)
        for name, value in plan.values.items():
            self._contacts.set_value(plan.record, name, value)
        if plan.created is not None:
            self._contacts.set_created(plan.record, plan.created)
        self._contacts.touch(plan.record, modified)
        return plan.record

    # --- write log -------------------------------------------------------------------------

    def write_log(self, since: int = 0) -> list[WriteRecord]:
        with self._lock:
            return self._contacts.write_log[since:]

    def write_counts(self) -> dict[str, int]:
        with self._lock:
            return {str(cid): n for cid, n in sorted(self._contacts.write_counts.items())}

    def reset_writes(self) -> None:
        with self._lock:
            self._contacts.write_log.clear()
            self._contacts.write_counts.clear()

    def contact_count(self) -> int:
        with self._lock:
            return len(self._contacts.records)

    def contact_properties(self, cid: str) -> dict[str, str] | None:
        """A test's view of one contact: every stored value, record fields included."""
        with self._lock:
            record = self._contacts.records.get(int(cid)) if numeric(cid) else None
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
        with self._lock:
            for sub in subs:
                self._engagement.add_submission(sub)
        return len(subs)

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
            return {
                "portal_id": self.portal_id,
                "contacts": self._contacts.snapshot(),
                "forms": engagement["forms"],
                "form_submissions": engagement["form_submissions"],
                "email_events": engagement["email_events"],
                "lists": self._lists.snapshot(),
                "property_groups": custom["property_groups"],
                "properties": custom["properties"],
            }

    @classmethod
    def from_snapshot(cls, raw: Mapping[str, Any], now_ms: int) -> tuple[Portal, list[str]]:
        """A portal serving a snapshot, and the records it had to skip (as `read_snapshot` skips them)."""
        from sync.sandbox.loading import load_snapshot  # noqa: PLC0415 - the loader builds Portals: a cycle

        return load_snapshot(cls, raw, now_ms, DEFAULT_PORTAL_ID)


def _failure_error(category: str, ids: list[str]) -> JsonObject:
    message = (
        "Too many concurrent updates to these records; retry them."
        if category == "RATE_LIMITS"
        else "An internal error occurred while updating these records; retry them."
    )
    return batch.item_error(category, message, ids)
