"""The records of one object type, indexed for HubSpot's reads, and the worker's writes to them.

Indexes kept so paging 100,000 records stays cheap: ids in order (list endpoint and hs_object_id
search), (lastmodifieddate, id) and (createdate, id) in order (incremental search), and the unique
key (a contact's email) -> id for batch reads by it. Search results are cached per query until the
next change. Not locked: the portal front holds the lock around every call.

With a search lag (HubSpot's indexing delay), search shows a record as it was before a change until the lag
has passed since the change (a record created within the lag is not found at all); reads by id and the list
endpoint show every change at once, as HubSpot's do.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, overload

from sync.sandbox.properties import CREATE_DATE, LIFECYCLE_ORDER, LIFECYCLE_STAGE, OBJECT_ID, PropertyDef
from sync.sandbox.records import ContactRecord, ListRecord, WriteRecord
from sync.sandbox.search import (
    MAX_RESULTS,
    RANGE_OPERATORS,
    Filter,
    SearchQuery,
    getter,
    group_predicate,
    int_bounds,
)
from sync.sandbox.wire import ApiError, JsonObject, bad_request, decode_cursor, encode_cursor, iso_ms, not_found
from sync.snapshot import numeric

_STAGE_RANK = {stage: i for i, stage in enumerate(LIFECYCLE_ORDER)}
_SEARCH_CACHE_SIZE = 16

# (id, properties, createdate ms, lastmodifieddate ms): a record as a loader hands it over.
Row = tuple[int, dict[str, str], int, int]


class RecordIndex:
    """Records of one object type; `unique` names the property HubSpot keeps unique (email), if any, and
    `record` the record class (which names the type's last-modified property)."""

    def __init__(self, unique: str | None = None, record: type[ContactRecord] = ContactRecord) -> None:
        self.unique = unique
        self.record = record
        self.modified = record.MODIFIED
        self.records: dict[int, ContactRecord] = {}
        self.ids: list[int] = []
        self._by_modified: list[tuple[int, int]] = []
        self._by_created: list[tuple[int, int]] = []
        self._by_key: dict[str, int] = {}
        self._version = 0
        self._search_cache: dict[tuple[Any, ...], tuple[int, list[int]]] = {}
        self.write_log: list[WriteRecord] = []
        self.write_counts: dict[int, int] = {}
        self.search_lag_ms = 0
        # Changes search does not show yet: per record, (when it changed, the record before it; None: not there).
        self._unindexed: dict[int, list[tuple[int, ContactRecord | None]]] = {}

    # --- building and editing ------------------------------------------------------------------

    def load(self, rows: Iterable[Row]) -> None:
        """Many records at once: indexes are sorted once at the end instead of kept sorted per insert."""
        for cid, props, created, updated in rows:
            if cid in self.records:
                raise ValueError(f"record {cid} appears twice")
            self.records[cid] = self.record(cid, props, created, updated)
            self.ids.append(cid)
            self._by_modified.append((updated, cid))
            self._by_created.append((created, cid))
            key = props.get(self.unique) if self.unique else None
            if key:
                self._by_key[key.lower()] = cid
        self.ids.sort()
        self._by_modified.sort()
        self._by_created.sort()
        self._version += 1

    def insert(self, props: Mapping[str, str], created_ms: int, updated_ms: int, cid: int | None) -> ContactRecord:
        if cid is None:
            cid = (self.ids[-1] + 1) if self.ids else 1
        if cid in self.records:
            raise ValueError(f"record {cid} exists")
        record = self.record(cid, dict(props), created_ms, updated_ms)
        self.records[cid] = record
        _append_sorted(self.ids, cid)
        insort(self._by_modified, (updated_ms, cid))
        insort(self._by_created, (created_ms, cid))
        key = record.props.get(self.unique) if self.unique else None
        if key:
            self._by_key[key.lower()] = cid
        self._version += 1
        return record

    def remove(self, cid: int) -> bool:
        """Delete a record (an admin's deletion); False when there is none."""
        record = self.records.pop(cid, None)
        if record is None:
            return False
        del self.ids[bisect_left(self.ids, cid)]
        del self._by_modified[bisect_left(self._by_modified, (record.updated_ms, cid))]
        del self._by_created[bisect_left(self._by_created, (record.created_ms, cid))]
        key = record.props.get(self.unique) if self.unique else None
        if key and self._by_key.get(key.lower()) == cid:
            del self._by_key[key.lower()]
        self._version += 1
        return True

    def changing(self, cid: int, now_ms: int, *, created: bool = False) -> None:
        """Called before a record changes at `now_ms` (or right after it was created): with a search lag, search
        keeps showing it as it was (not at all, when created) until the lag has passed."""
        if self.search_lag_ms <= 0:
            return
        record = None if created else self.records.get(cid)
        before = (
            None if record is None else self.record(record.id, dict(record.props), record.created_ms, record.updated_ms)
        )
        self._unindexed.setdefault(cid, []).append((now_ms, before))

    def touch(self, record: ContactRecord, ms: int) -> None:
        old = (record.updated_ms, record.id)
        if old[0] != ms:
            del self._by_modified[bisect_left(self._by_modified, old)]
            record.touch(ms)
            _append_sorted(self._by_modified, (ms, record.id))
        self._version += 1

    def set_created(self, record: ContactRecord, ms: int) -> None:
        if record.created_ms != ms:
            del self._by_created[bisect_left(self._by_created, (record.created_ms, record.id))]
            record.set_created(ms)
            insort(self._by_created, (ms, record.id))

    def set_value(self, record: ContactRecord, name: str, value: str) -> None:
        if name == self.unique:
            old = record.props.get(name)
            if old and self._by_key.get(old.lower()) == record.id:
                del self._by_key[old.lower()]
            if value:
                self._by_key[value.lower()] = record.id
        if value == "":
            record.props.pop(name, None)
        else:
            record.props[name] = value

    def owner(self, key: str) -> int | None:
        """The record holding this unique value (an email), if any."""
        return self._by_key.get(key.lower())

    def apply(self, record: ContactRecord, values: Mapping[str, str], now_ms: int) -> None:
        """A worker's write, as HubSpot applies it; logged when it changed anything."""
        self.changing(record.id, now_ms)
        applied: dict[str, str] = {}
        for name, value in values.items():
            if name == LIFECYCLE_STAGE and value:
                current = record.props.get(LIFECYCLE_STAGE, "")
                if current in _STAGE_RANK and value in _STAGE_RANK and _STAGE_RANK[value] < _STAGE_RANK[current]:
                    # HubSpot quirk: a backward lifecycle write answers success and changes nothing.
                    continue
            self.set_value(record, name, value)
            applied[name] = value
        if applied:
            self.touch(record, now_ms)
            self.write_log.append(WriteRecord(record.sid, applied, now_ms))
            self.write_counts[record.id] = self.write_counts.get(record.id, 0) + 1

    def check_unique(self, targets: Sequence[tuple[ContactRecord, Mapping[str, str]]]) -> None:
        """409 when a write would give a record another record's unique value."""
        if self.unique is None:
            return
        for record, values in targets:
            value = values.get(self.unique)
            owner = self._by_key.get(value.lower()) if value else None
            if owner is not None and owner != record.id:
                raise ApiError(409, "CONFLICT", f"Contact already exists. Existing ID: {owner}")

    # --- reading -------------------------------------------------------------------------------

    def find(self, key: str, id_property: str | None) -> ContactRecord | None:
        if id_property in (None, "", OBJECT_ID):
            return self.records.get(int(key)) if numeric(key) else None
        if id_property == self.unique:
            cid = self._by_key.get(key.strip().lower())
            return None if cid is None else self.records.get(cid)
        unique = f"{self.unique} or {OBJECT_ID}" if self.unique else OBJECT_ID
        raise bad_request(f"idProperty must be a unique-value property ({unique}), got {id_property!r}")

    def page(self, limit: int, after: str | None, names: Sequence[str]) -> JsonObject:
        if after is not None and not numeric(after):
            raise bad_request(f"Invalid after: {after!r}")
        start = 0 if after is None else bisect_left(self.ids, int(after))
        body: JsonObject = {"results": [self.records[i].wire(names) for i in self.ids[start : start + limit]]}
        if start + limit < len(self.ids):
            # HubSpot's cursor for this endpoint is the next record's id.
            nxt = str(self.ids[start + limit])
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return body

    def search(self, query: SearchQuery, props: Mapping[str, PropertyDef], now_ms: int | None = None) -> JsonObject:
        """A page of the query's matches; at `now_ms` with a search lag, as the lagging index shows them."""
        stale = self._stale_view(now_ms)
        matched: Sequence[ContactRecord] = (
            self._lagged_matches(query, props, stale)
            if stale
            else _Records(self.records, self._ordered_matches(query, props))
        )
        total = len(matched)
        end = min(query.after + query.limit, MAX_RESULTS, total)
        page: JsonObject = {
            "total": total,
            "results": [matched[i].wire(query.properties) for i in range(query.after, end)],
        }
        if end < total:
            # At the 10k cap HubSpot still hands out next.after=10000; following it is a 400.
            page["paging"] = {"next": {"after": str(end)}}
        return page

    def _stale_view(self, now_ms: int | None) -> dict[int, ContactRecord | None]:
        """The records search does not show as they are at `now_ms`: each as search shows it (None: not at all).
        Changes older than the lag are forgotten (search shows them now)."""
        if now_ms is None or not self._unindexed:
            return {}
        cutoff = now_ms - self.search_lag_ms
        view: dict[int, ContactRecord | None] = {}
        for cid in list(self._unindexed):
            pending = [change for change in self._unindexed[cid] if change[0] > cutoff]
            if not pending:
                del self._unindexed[cid]
                continue
            self._unindexed[cid] = pending
            view[cid] = pending[0][1]  # as it was before the oldest change search has not caught up with
        return view

    def _lagged_matches(
        self, query: SearchQuery, props: Mapping[str, PropertyDef], stale: Mapping[int, ContactRecord | None]
    ) -> list[ContactRecord]:
        """The query's matches among the records as search shows them, in the query's order."""
        current = [self.records[cid] for cid in self._ordered_matches(query, props) if cid not in stale]
        groups = [group_predicate(filters, props) for filters in query.groups or ((),)]
        old = [r for r in stale.values() if r is not None and any(check(r) for check in groups)]
        if not old:
            return current
        return _sort_records([*current, *old], getter(props[query.sort_prop]), query.descending)

    def _ordered_matches(self, query: SearchQuery, props: Mapping[str, PropertyDef]) -> list[int]:
        cached = self._search_cache.get(query.key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        ordered = self._sorted(query, *self._matches(query, props), props)
        if len(self._search_cache) >= _SEARCH_CACHE_SIZE:
            self._search_cache.pop(next(iter(self._search_cache)))
        self._search_cache[query.key] = (self._version, ordered)
        return ordered

    def _candidates(self, filters: Sequence[Filter]) -> tuple[str, list[int], bool]:
        """The narrowest index slice the group's range filters allow, the index it came from, and
        whether the slice is exactly the group's matches (every filter a range on that index)."""
        best: tuple[int, str, int, int] | None = None
        for prop in (OBJECT_ID, self.modified, CREATE_DATE):
            bounds = int_bounds(filters, prop)
            if bounds is None:
                continue
            a, b = self._slice(prop, *bounds)
            if best is None or max(0, b - a) < best[0]:
                best = (max(0, b - a), prop, a, b)
        if best is None:
            return OBJECT_ID, self.ids, not filters
        _, prop, a, b = best
        covered = all(f.prop == prop and f.op in RANGE_OPERATORS for f in filters)
        if prop == OBJECT_ID:
            return prop, self.ids[a:b], covered
        index = self._by_modified if prop == self.modified else self._by_created
        return prop, [cid for _, cid in index[a:b]], covered

    def _slice(self, prop: str, lo: int, hi: int) -> tuple[int, int]:
        if prop == OBJECT_ID:
            return bisect_left(self.ids, lo), bisect_right(self.ids, hi)
        index = self._by_modified if prop == self.modified else self._by_created
        return bisect_left(index, (lo,)), bisect_left(index, (hi + 1,))

    def _group_matches(self, filters: Sequence[Filter], props: Mapping[str, PropertyDef]) -> tuple[str, list[int]]:
        source, candidates, covered = self._candidates(filters)
        if covered:
            return source, list(candidates)
        check = group_predicate(filters, props)
        return source, [cid for cid in candidates if check(self.records[cid])]

    def _matches(self, query: SearchQuery, props: Mapping[str, PropertyDef]) -> tuple[str, list[int]]:
        """The matching ids, and the index whose order they are in (several groups: id order)."""
        groups = query.groups or ((),)
        if len(groups) == 1:
            return self._group_matches(groups[0], props)
        union: set[int] = set()
        for filters in groups:
            union.update(self._group_matches(filters, props)[1])
        return OBJECT_ID, sorted(union)

    def _sorted(
        self, query: SearchQuery, source: str, matched: list[int], props: Mapping[str, PropertyDef]
    ) -> list[int]:
        if query.sort_prop == source and not query.descending:
            return matched  # the index order is (value, id): ties already broken by id ascending
        if query.sort_prop == OBJECT_ID:
            return sorted(matched, reverse=query.descending)
        value_of = getter(props[query.sort_prop])
        return [r.id for r in _sort_records([self.records[cid] for cid in matched], value_of, query.descending)]

    def snapshot(self) -> list[JsonObject]:
        return [self.records[i].snapshot() for i in self.ids]


class ListMemberships:
    """Contact lists (ILS) and who is in them."""

    def __init__(self) -> None:
        self.lists: dict[int, ListRecord] = {}

    def set(self, list_id: int, name: str, members: Mapping[int, int]) -> None:
        self.lists[list_id] = ListRecord(list_id, name, dict(members))

    def _get(self, list_id: str) -> ListRecord:
        record = self.lists.get(int(list_id)) if numeric(list_id) else None
        if record is None:
            raise not_found(f"List {list_id} does not exist.")
        return record

    def info(self, list_id: str) -> JsonObject:
        record = self._get(list_id)
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
        record = self._get(list_id)
        ids = sorted(record.members)
        start = 0
        if after is not None:
            (last,) = decode_cursor(after, 1)
            if not numeric(last):
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

    def snapshot(self) -> list[JsonObject]:
        return [self.lists[k].snapshot() for k in sorted(self.lists)]


class _Records(Sequence[ContactRecord]):
    """Ids in order, read as their records (a page renders only the records it shows)."""

    def __init__(self, records: Mapping[int, ContactRecord], ids: Sequence[int]) -> None:
        self._records = records
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, i: int) -> ContactRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[ContactRecord]: ...

    def __getitem__(self, i: int | slice) -> ContactRecord | list[ContactRecord]:
        if isinstance(i, slice):
            return [self._records[cid] for cid in self._ids[i]]
        return self._records[self._ids[i]]


def _sort_records(
    records: Iterable[ContactRecord], value_of: Callable[[ContactRecord], Any], descending: bool
) -> list[ContactRecord]:
    """Ties are broken by hs_object_id ascending in both directions, so paging is stable; records without a value
    come last."""
    present: list[tuple[Any, ContactRecord]] = []
    missing: list[ContactRecord] = []
    for record in sorted(records, key=lambda r: r.id):
        value = value_of(record)
        if value is None:
            missing.append(record)
        else:
            present.append((value, record))
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [record for _, record in present] + missing


def _append_sorted(items: list[Any], item: Any) -> None:
    """Insert keeping order; appending is the common case (new ids, new modification times)."""
    if not items or item > items[-1]:
        items.append(item)
    else:
        insort(items, item)
