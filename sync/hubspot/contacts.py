"""Contacts: backfill paging, incremental search past the 10k cap, batch read, batch update.

Batch updates never drop an input: each one ends applied or as a dead letter
with its reason. A 207 retries the items that failed for a passing reason; a
whole-batch 400 is split in halves until the bad inputs stand alone, so one
bad contact never holds back 99 good ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicObjectSearchRequest,
)

from sync.core.conditions import parse_date_ms
from sync.core.model import Contact, PropertyUpdate, StageChange
from sync.core.wire import EMAIL, LIFECYCLE_STAGE
from sync.errors import RetriableError, SkippableRecordError
from sync.hubspot.client import HubSpotClient, Response
from sync.hubspot.errors import RejectedError
from sync.hubspot.refusals import OBJECT_NOT_FOUND, explain_refusal, not_found_reason
from sync.hubspot.shapes import CREATE_DATE, LAST_MODIFIED, OBJECT_ID, contact_from_wire
from sync.ports import ContactPage, DeadLetter, WriteOutcome

LIST_PAGE = 100  # the list endpoint's maximum
SEARCH_PAGE = 200  # the search endpoint's maximum
BATCH = 100  # batch read and update maximum
RETRIABLE_ITEM_CATEGORIES = frozenset({"RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})


class _ItemsToRetryError(RetriableError):
    """Some inputs of a 207 failed for a passing reason: send those again."""


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Contacts:
    search_page = SEARCH_PAGE

    def __init__(self, client: HubSpotClient, properties: Sequence[str]) -> None:
        self.client = client
        # Always read what the pipeline needs to place a contact and advance cursors.
        self.properties = sorted({*properties, EMAIL, LAST_MODIFIED, LIFECYCLE_STAGE, CREATE_DATE})
        self._known_options: dict[str, list[str] | None] = {}  # per write: for the reasons of refusals

    # -- reading --

    def _page(self, results: list[Any], after: str | None) -> ContactPage:
        contacts, problems, newest = [], [], None
        for raw in results:
            try:
                contact = contact_from_wire(raw)
            except SkippableRecordError as exc:
                problems.append(str(exc))
                continue
            contacts.append(contact)
            modified = parse_date_ms(contact.properties.get(LAST_MODIFIED))
            if modified is not None and (newest is None or modified > newest):
                newest = modified
        return ContactPage(contacts, problems, after, newest)

    def pages(self, after: str | None = None) -> Iterator[ContactPage]:
        """Every contact through the list endpoint (the first full backfill); resumable from `after`."""
        while True:
            response = self.client.sdk(
                "contacts.list",
                self.client.contacts_basic.get_page,
                limit=LIST_PAGE,
                after=after,
                properties=self.properties,
            )
            body = response.body or {}
            after = _next_after(body)
            yield self._page(body.get("results") or [], after)
            if after is None:
                return

    def _search(self, filters: list[Filter], sort: str, after: int) -> dict[str, Any]:
        request = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=filters)],
            sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
            properties=self.properties,
            limit=self.search_page,
            after=str(after),
        )
        response = self.client.sdk(
            "contacts.search", self.client.contacts_search.do_search, public_object_search_request=request, search=True
        )
        return response.body or {}

    def changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[ContactPage]:
        """Contacts whose lastmodifieddate is at or after `since_ms` (and at or before `until_ms`), in that
        order, each once.

        Keyset paging: every request starts again from the last timestamp given (skipping the contacts
        of that timestamp already given) instead of paging by offset. Writes made while reading move
        contacts out of the result set, which would shift offsets over contacts not yet read; and no
        query ever reaches the 10,000-result cap. When a whole page shares one timestamp (bulk imports
        do that), that timestamp is paged by hs_object_id.
        """
        cursor = since_ms
        given: set[str] = set()  # ids already given whose lastmodifieddate == cursor
        while True:
            filters = [Filter(property_name=LAST_MODIFIED, operator="GTE", value=str(cursor))]
            if until_ms is not None:
                filters.append(Filter(property_name=LAST_MODIFIED, operator="LTE", value=str(until_ms)))
            results = self._search(filters, LAST_MODIFIED, 0).get("results") or []
            if not results:
                return
            stamped = [(_modified_ms(raw), str(raw.get("id")), raw) for raw in results]
            fresh = [raw for ts, cid, raw in stamped if not (ts == cursor and cid in given)]
            if not fresh:
                # A full page on one timestamp, all given already: page that timestamp by id.
                yield from self._same_timestamp(cursor, skip=given)
                cursor, given = cursor + 1, set()
                continue
            yield self._page(fresh, None)
            last = stamped[-1][0]
            at_last = {cid for ts, cid, _ in stamped if ts == last}
            cursor, given = last, (given | at_last) if last == cursor else at_last
            if len(results) < self.search_page:
                return

    def _same_timestamp(self, ts: int, skip: set[str]) -> Iterator[ContactPage]:
        """All contacts with lastmodifieddate == ts, keyset-paged by hs_object_id."""
        floor = 0
        while True:
            filters = [
                Filter(property_name=LAST_MODIFIED, operator="EQ", value=str(ts)),
                Filter(property_name=OBJECT_ID, operator="GT", value=str(floor)),
            ]
            results = self._search(filters, OBJECT_ID, 0).get("results") or []
            if not results:
                return
            yield self._page([r for r in results if str(r.get("id")) not in skip], None)
            floor = max(int(r.get("id")) for r in results)
            if len(results) < self.search_page:
                return

    def read(self, ids: Sequence[str], by_email: bool = False) -> list[Contact]:
        """Contacts by id (or by email); unknown ones are simply absent."""
        found: list[Contact] = []
        for chunk in _chunks(list(ids), BATCH):
            request = BatchReadInputSimplePublicObjectId(
                properties=self.properties,
                inputs=[{"id": value} for value in chunk],
                id_property=EMAIL if by_email else None,
            )
            response = self.client.sdk(
                "contacts.batch_read",
                self.client.contacts_batch.read,
                batch_read_input_simple_public_object_id=request,
            )
            found.extend(self._page((response.body or {}).get("results") or [], None).contacts)
        return found

    # -- writing --

    def update(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        """Write `updates` in batches of 100; every input ends applied or dead-lettered."""
        ids = [u.contact_id for u in updates]
        if len(set(ids)) != len(ids):
            raise ValueError("one contact twice in one write: merge its updates first")
        outcome = WriteOutcome()
        self._known_options = {}
        for chunk in _chunks(list(updates), BATCH):
            self._write_with_item_retries(list(chunk), outcome)
        return outcome

    def _write_with_item_retries(self, chunk: list[PropertyUpdate], outcome: WriteOutcome) -> None:
        pending = {u.contact_id: u for u in chunk}
        try:
            for attempt in self.client.policy.retrying(self.client.stop):
                with attempt:
                    self._write(list(pending.values()), pending, outcome)
                    if pending:
                        raise _ItemsToRetryError(f"{len(pending)} items of a 207 to send again")
        except _ItemsToRetryError:
            for update in pending.values():
                outcome.dead.append(DeadLetter(update.contact_id, update.properties, "still failing after retries"))

    def _write(self, items: list[PropertyUpdate], pending: dict[str, PropertyUpdate], outcome: WriteOutcome) -> None:
        """One batch update; removes from `pending` what was applied or is dead, splits a rejected batch."""
        request = BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": u.contact_id, "properties": dict(u.properties)} for u in items]
        )
        outcome.calls += 1
        try:
            response = self.client.sdk(
                "contacts.batch_update",
                self.client.contacts_batch.update,
                batch_input_simple_public_object_batch_input=request,
            )
        except RejectedError as exc:
            # HubSpot fails a whole batch for one invalid property or option: split to find it.
            if exc.status == 400 and len(items) > 1:
                half = len(items) // 2
                self._write(items[:half], pending, outcome)
                self._write(items[half:], pending, outcome)
                return
            for update in items:
                pending.pop(update.contact_id, None)
                reason = explain_refusal(exc.body, exc.message, update.properties, self._options)
                outcome.dead.append(DeadLetter(update.contact_id, update.properties, reason, exc.status))
            return
        self._settle(items, response, pending, outcome)

    def _settle(
        self, items: list[PropertyUpdate], response: Response, pending: dict[str, PropertyUpdate], outcome: WriteOutcome
    ) -> None:
        body = response.body or {}
        for result in body.get("results") or []:
            cid = str(result.get("id"))
            if pending.pop(cid, None) is not None:
                outcome.applied.append(cid)
        for error in body.get("errors") or []:
            category = str(error.get("category") or "")
            context = error.get("context") or {}
            failed = [str(i) for i in context.get("ids") or []] or [
                u.contact_id for u in items if u.contact_id in pending
            ]
            if category in RETRIABLE_ITEM_CATEGORIES:
                continue  # stays pending: sent again
            for cid in failed:
                update = pending.pop(cid, None)
                if update is None:
                    continue
                said = str(error.get("message") or "rejected")
                reason = not_found_reason(said) if category == OBJECT_NOT_FOUND else f"{category}: {said}"
                outcome.dead.append(
                    DeadLetter(cid, update.properties, reason, 404 if category == OBJECT_NOT_FOUND else 0)
                )
        # Anything neither applied nor rejected stays pending and is sent again; it is never assumed applied.

    def _options(self, name: str) -> list[str] | None:
        """The options HubSpot has now for an enumeration property (for a refusal's reason); None if unknown."""
        if name not in self._known_options:
            self._known_options[name] = self._read_options(name)
        return self._known_options[name]

    def _read_options(self, name: str) -> list[str] | None:
        try:
            body = self.client.sdk("properties.get", self.client.properties_core.get_by_name, "contacts", name).body
        except (RejectedError, RetriableError):
            return None
        options = body.get("options") if isinstance(body, dict) else None
        return [str(o.get("value")) for o in options if isinstance(o, dict)] if isinstance(options, list) else None

    def set_stages(self, changes: Sequence[StageChange]) -> WriteOutcome:
        """Write lifecycle stages; backward moves as a clear, then a set, then a read-back check.

        HubSpot keeps the old stage without an error when a backward value is written directly.
        """
        outcome = WriteOutcome()
        clears = [c for c in changes if c.clear_first]
        # Read the stages first: should the set fail after the clear, the old stage goes back.
        before = {c.id: c.lifecycle_stage for c in self.read([c.contact_id for c in clears])} if clears else {}
        cleared = self.update([PropertyUpdate(c.contact_id, {LIFECYCLE_STAGE: ""}) for c in clears])
        outcome.dead += cleared.dead
        outcome.calls += cleared.calls
        blocked = {d.contact_id for d in cleared.dead}
        todo = [c for c in changes if c.contact_id not in blocked]
        written = self.update([PropertyUpdate(c.contact_id, {LIFECYCLE_STAGE: c.stage}) for c in todo])
        outcome.add(written)
        failed_after_clear = [d.contact_id for d in written.dead if before.get(d.contact_id)]
        if failed_after_clear:
            restored = self.update([PropertyUpdate(cid, {LIFECYCLE_STAGE: before[cid]}) for cid in failed_after_clear])
            outcome.calls += restored.calls
            outcome.dead += restored.dead  # could not even restore: reported, never silent
        wanted = {c.contact_id: c.stage for c in clears if c.contact_id in set(written.applied)}
        if wanted:
            for contact in self.read(list(wanted)):
                if contact.lifecycle_stage != wanted.pop(contact.id, contact.lifecycle_stage):
                    outcome.applied.remove(contact.id)
                    outcome.dead.append(
                        DeadLetter(
                            contact.id,
                            {LIFECYCLE_STAGE: contact.lifecycle_stage},
                            f"HubSpot kept lifecyclestage={contact.lifecycle_stage!r} after clear and set",
                        )
                    )
            for cid, stage in wanted.items():  # not found on read-back
                outcome.applied.remove(cid)
                outcome.dead.append(DeadLetter(cid, {LIFECYCLE_STAGE: stage}, "contact not found on read-back"))
        return outcome


def _next_after(body: Any) -> str | None:
    paging = body.get("paging") if isinstance(body, dict) else None
    nxt = (paging or {}).get("next") or {}
    after = nxt.get("after")
    return str(after) if after not in (None, "") else None


def _modified_ms(raw: Any) -> int:
    props = raw.get("properties") or {}
    value = parse_date_ms(str(props.get(LAST_MODIFIED) or "")) if isinstance(props, dict) else None
    if value is None:
        value = parse_date_ms(str(raw.get("updatedAt") or ""))
    return value or 0
