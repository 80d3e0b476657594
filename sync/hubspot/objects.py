"""What every CRM object type (contacts, companies) does the same way over the v3 object endpoints:
backfill paging, incremental keyset search past the 10k cap, batch read, batch update.

Batch updates never drop an input: each one ends applied or as a dead letter with its reason. A 207
retries the items that failed for a passing reason; a whole-batch 400 is split in halves until the bad
inputs stand alone, so one bad record never holds back 99 good ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from sync.core.conditions import parse_date_ms
from sync.core.model import PropertyUpdate
from sync.errors import RetriableError, SkippableRecordError
from sync.hubspot.client import HubSpotClient, Response
from sync.hubspot.errors import RejectedError
from sync.hubspot.refusals import OBJECT_NOT_FOUND, explain_refusal, not_found_reason
from sync.hubspot.shapes import COMPANY_LAST_MODIFIED, LAST_MODIFIED, OBJECT_ID
from sync.ports import DeadLetter, WriteOutcome

LIST_PAGE = 100  # the list endpoint's maximum
SEARCH_PAGE = 200  # the search endpoint's maximum
BATCH = 100  # batch read and update maximum
RETRIABLE_ITEM_CATEGORIES = frozenset({"RATE_LIMITS", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})

R = TypeVar("R")  # the core value a record becomes (Contact, Company)


@dataclass(frozen=True)
class ObjectType:
    """What differs between object types on the wire: the path name, the modified-date property, the SDK's
    API objects (taken from the client when called: tests hand in fakes with fewer of them) and its models."""

    name: str  # "contacts", "companies": the path, the properties API's object type, the endpoint names
    modified: str  # lastmodifieddate on contacts, hs_lastmodifieddate on companies
    basic: Callable[[HubSpotClient], Any]
    search: Callable[[HubSpotClient], Any]
    batch: Callable[[HubSpotClient], Any]
    models: ModuleType  # hubspot.crm.<type>: Filter, FilterGroup, PublicObjectSearchRequest, batch inputs


@dataclass(frozen=True)
class RawPage(Generic[R]):
    records: list[R]
    problems: list[str]  # records skipped, with the reason
    after: str | None
    newest_ms: int | None  # the latest modified date on the page


class _ItemsToRetryError(RetriableError):
    """Some inputs of a 207 failed for a passing reason: send those again."""


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CrmObjects(Generic[R]):
    """Reading and writing one object type; `parse` turns one raw record into its core value."""

    search_page = SEARCH_PAGE

    def __init__(
        self, client: HubSpotClient, kind: ObjectType, properties: Sequence[str], parse: Callable[[Any], R]
    ) -> None:
        self.client = client
        self.kind = kind
        self.properties = sorted(properties)
        self.parse = parse
        self._known_options: dict[str, list[str] | None] = {}  # per write: for the reasons of refusals

    # -- reading --

    def _raw_page(self, results: list[Any], after: str | None) -> RawPage[R]:
        records, problems, newest = [], [], None
        for raw in results:
            try:
                record = self.parse(raw)
            except SkippableRecordError as exc:
                problems.append(str(exc))
                continue
            records.append(record)
            props = raw.get("properties") or {}
            modified = parse_date_ms(str(props.get(self.kind.modified) or "")) or None
            if modified is not None and (newest is None or modified > newest):
                newest = modified
        return RawPage(records, problems, after, newest)

    def raw_pages(self, after: str | None = None) -> Iterator[RawPage[R]]:
        """Every record through the list endpoint (the first full backfill); resumable from `after`."""
        while True:
            response = self.client.sdk(
                f"{self.kind.name}.list",
                self.kind.basic(self.client).get_page,
                limit=LIST_PAGE,
                after=after,
                properties=self.properties,
            )
            body = response.body or {}
            after = next_after(body)
            yield self._raw_page(body.get("results") or [], after)
            if after is None:
                return

    def _search(self, filters: list[Any], sort: str, properties: Sequence[str] | None = None) -> dict[str, Any]:
        models = self.kind.models
        request = models.PublicObjectSearchRequest(
            filter_groups=[models.FilterGroup(filters=filters)],
            sorts=[{"propertyName": sort, "direction": "ASCENDING"}],
            properties=list(properties) if properties is not None else self.properties,
            limit=self.search_page,
            after="0",
        )
        return self._do_search(request)

    def _do_search(self, request: Any) -> dict[str, Any]:
        search = self.kind.search(self.client).do_search
        endpoint = f"{self.kind.name}.search"
        response = self.client.sdk(endpoint, search, public_object_search_request=request, search=True)
        return response.body or {}

    def count(self) -> int:
        """How many records there are: the `total` of a search with no filter, asking for one result
        (one search call; the total is exact even past the 10k cap on what a search pages through)."""
        request = self.kind.models.PublicObjectSearchRequest(filter_groups=[], properties=[OBJECT_ID], limit=1)
        return int(self._do_search(request).get("total") or 0)

    def raw_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[RawPage[R]]:
        """Records whose modified date is at or after `since_ms` (and at or before `until_ms`), in that
        order, each once (keyset paging: raw_since)."""
        for results in self.raw_since(self.kind.modified, since_ms, until_ms):
            yield self._raw_page(results, None)

    def raw_since(
        self, prop: str, since_ms: int, until_ms: int | None = None, properties: Sequence[str] | None = None
    ) -> Iterator[list[Any]]:
        """Raw records whose date property `prop` is at or after `since_ms` (and at or before `until_ms`), in
        that order, each once, a page at a time (with `properties`, else the type's own).

        Keyset paging: every request starts again from the last timestamp given (skipping the records
        of that timestamp already given) instead of paging by offset. Writes made while reading move
        records out of the result set, which would shift offsets over records not yet read; and no
        query ever reaches the 10,000-result cap. When a whole page shares one timestamp (bulk imports
        do that), that timestamp is paged by hs_object_id.
        """
        filter_of = self.kind.models.Filter
        cursor = since_ms
        given: set[str] = set()  # ids already given whose date == cursor
        while True:
            filters = [filter_of(property_name=prop, operator="GTE", value=str(cursor))]
            if until_ms is not None:
                filters.append(filter_of(property_name=prop, operator="LTE", value=str(until_ms)))
            results = self._search(filters, prop, properties).get("results") or []
            if not results:
                return
            stamped = [(_modified_ms(raw, prop), str(raw.get("id")), raw) for raw in results]
            fresh = [raw for ts, cid, raw in stamped if not (ts == cursor and cid in given)]
            if not fresh:
                # A full page on one timestamp, all given already: page that timestamp by id.
                yield from self._same_timestamp(prop, cursor, given, properties)
                cursor, given = cursor + 1, set()
                continue
            yield fresh
            last = stamped[-1][0]
            at_last = {cid for ts, cid, _ in stamped if ts == last}
            cursor, given = last, (given | at_last) if last == cursor else at_last
            if len(results) < self.search_page:
                return

    def _same_timestamp(
        self, prop: str, ts: int, skip: set[str], properties: Sequence[str] | None
    ) -> Iterator[list[Any]]:
        """All raw records whose date property == ts, keyset-paged by hs_object_id."""
        filter_of = self.kind.models.Filter
        floor = 0
        while True:
            filters = [
                filter_of(property_name=prop, operator="EQ", value=str(ts)),
                filter_of(property_name=OBJECT_ID, operator="GT", value=str(floor)),
            ]
            results = self._search(filters, OBJECT_ID, properties).get("results") or []
            if not results:
                return
            yield [r for r in results if str(r.get("id")) not in skip]
            floor = max(int(r.get("id")) for r in results)
            if len(results) < self.search_page:
                return

    def read_raw(self, ids: Sequence[str], id_property: str | None = None) -> list[R]:
        """Records by id (or by a unique property); unknown ones are simply absent."""
        found: list[R] = []
        for chunk in chunks(list(ids), BATCH):
            request = self.kind.models.BatchReadInputSimplePublicObjectId(
                properties=self.properties, inputs=[{"id": value} for value in chunk], id_property=id_property
            )
            response = self.client.sdk(
                f"{self.kind.name}.batch_read",
                self.kind.batch(self.client).read,
                batch_read_input_simple_public_object_id=request,
            )
            found.extend(self._raw_page((response.body or {}).get("results") or [], None).records)
        return found

    # -- writing --

    def update(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        """Write `updates` in batches of 100; every input ends applied or dead-lettered. An update's
        `contact_id` is the record's id, whatever the object type."""
        ids = [u.contact_id for u in updates]
        if len(set(ids)) != len(ids):
            raise ValueError("one record twice in one write: merge its updates first")
        outcome = WriteOutcome()
        self._known_options = {}
        for chunk in chunks(list(updates), BATCH):
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
        request = self.kind.models.BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": u.contact_id, "properties": dict(u.properties)} for u in items]
        )
        outcome.calls += 1
        try:
            response = self.client.sdk(
                f"{self.kind.name}.batch_update",
                self.kind.batch(self.client).update,
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
            body = self.client.sdk("properties.get", self.client.properties_core.get_by_name, self.kind.name, name).body
        except (RejectedError, RetriableError):
            return None
        options = body.get("options") if isinstance(body, dict) else None
        return [str(o.get("value")) for o in options if isinstance(o, dict)] if isinstance(options, list) else None


def next_after(body: Any) -> str | None:
    paging = body.get("paging") if isinstance(body, dict) else None
    nxt = (paging or {}).get("next") or {}
    after = nxt.get("after")
    return str(after) if after not in (None, "") else None


def _modified_ms(raw: Any, prop: str) -> int:
    """The record's value of the date property a keyset pages by (the modified date: updatedAt without one)."""
    props = raw.get("properties") or {}
    value = parse_date_ms(str(props.get(prop) or "")) if isinstance(props, dict) else None
    if value is None and prop in (LAST_MODIFIED, COMPANY_LAST_MODIFIED):
        value = parse_date_ms(str(raw.get("updatedAt") or ""))
    return value or 0
