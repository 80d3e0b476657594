"""The batch and admin requests on records, read and checked before anything is applied.

HubSpot checks a whole batch first: any invalid property or value rejects it (400) before a
record changes. These functions do that checking and hand back plans the portal then applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sync.sandbox.index import RecordIndex
from sync.sandbox.properties import CREATE_DATE, OBJECT_ID
from sync.sandbox.records import ContactRecord
from sync.sandbox.registry import PropertyRegistry
from sync.sandbox.wire import ApiError, JsonObject, bad_request, parse_ms
from sync.snapshot import numeric

MAX_BATCH = 100


@dataclass(frozen=True)
class BatchRead:
    keys: list[str]
    id_property: str | None
    properties: list[str] | None


@dataclass(frozen=True)
class Update:
    key: str
    id_property: str | None
    values: dict[str, str]


@dataclass(frozen=True)
class Upsert:
    """An admin edit: the record it edits (None: a new one, with `cid` or the next id), and its values."""

    record: ContactRecord | None
    cid: int | None
    values: dict[str, str]
    created: int | None
    modified: int | None


def inputs(body: Any) -> list[Any]:
    if not isinstance(body, Mapping):
        raise bad_request("Invalid input JSON: the batch request must be a JSON object")
    items = body.get("inputs")
    if not isinstance(items, list) or not items:
        raise bad_request("inputs must be a non-empty list")
    if len(items) > MAX_BATCH:
        raise bad_request(f"Batch size {len(items)} is larger than the maximum of {MAX_BATCH} inputs")
    return items


def batch_read(body: Any) -> BatchRead:
    items = inputs(body)
    requested = body.get("properties")
    if requested is not None and not (isinstance(requested, list) and all(isinstance(p, str) for p in requested)):
        raise bad_request("properties must be a list of property names")
    id_property = body.get("idProperty")
    if id_property is not None and not isinstance(id_property, str):
        raise bad_request("idProperty must be a property name")
    keys = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or item.get("id") in (None, ""):
            raise bad_request(f"inputs[{i}] needs an id")
        keys.append(str(item["id"]))
    return BatchRead(keys, id_property, requested)


def batch_update(body: Any, registry: PropertyRegistry) -> list[Update]:
    """The updates of a batch, each value checked as HubSpot checks a write; 400 for the whole batch if any fails."""
    updates: list[Update] = []
    problems: list[JsonObject] = []
    seen: set[tuple[str, str]] = set()
    duplicates: set[str] = set()
    for i, item in enumerate(inputs(body)):
        update = _update(i, item, registry, problems)
        identity = (
            update.id_property or OBJECT_ID,
            update.key.lower() if update.id_property == "email" else update.key,
        )
        if identity in seen:
            duplicates.add(update.key)
        seen.add(identity)
        updates.append(update)
    if duplicates:
        raise bad_request(f"Duplicate IDs found in batch input: {sorted(duplicates)}. IDs must be unique")
    if problems:
        raise bad_request(
            "Property values were not valid: " + "; ".join(p["message"] for p in problems),
            errors=problems,
        )
    return updates


def _update(i: int, item: Any, registry: PropertyRegistry, problems: list[JsonObject]) -> Update:
    if not isinstance(item, Mapping) or item.get("id") in (None, ""):
        raise bad_request(f"inputs[{i}] needs an id")
    values = item.get("properties")
    if not isinstance(values, Mapping):
        raise bad_request(f"inputs[{i}].properties must be an object")
    raw_id_property = item.get("idProperty")
    id_property = raw_id_property if isinstance(raw_id_property, str) and raw_id_property else None
    normalized: dict[str, str] = {}
    for name, raw in values.items():
        value = registry.validate(str(name), raw, problems)
        if value is not None:
            normalized[str(name)] = value
    return Update(str(item["id"]), id_property, normalized)


def item_error(category: str, message: str, ids: list[str]) -> JsonObject:
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {"ids": ids},
        "errors": [],
        "links": {},
    }


def upserts(items: Any, index: RecordIndex, registry: PropertyRegistry, noun: str = "contacts") -> list[Upsert]:
    """Admin edits as a person or an import makes them (no forward-only rule, any property), checked first."""
    if not isinstance(items, list):
        raise bad_request(f"{noun} must be a list")
    return [_upsert(f"{noun}[{i}]", item, index, registry) for i, item in enumerate(items)]


def _upsert(where: str, item: Any, index: RecordIndex, registry: PropertyRegistry) -> Upsert:
    if not isinstance(item, Mapping) or not isinstance(item.get("properties", {}), Mapping):
        raise bad_request(f"{where} must be an object with a properties object")
    values = dict(item.get("properties") or {})
    created = _admin_ms(values.pop(CREATE_DATE, None), f"{where}.{CREATE_DATE}")
    modified = _admin_ms(values.pop(index.modified, None), f"{where}.{index.modified}")
    values.pop(OBJECT_ID, None)
    normalized = registry.admin_values(values, where)
    key = normalized.get(index.unique) if index.unique else None
    owner = index.owner(key) if key else None
    raw_id = item.get("id")
    cid = owner  # no id: upsert by the unique key (email)
    if raw_id not in (None, ""):
        if not numeric(str(raw_id)):
            raise bad_request(f"{where}.id must be numeric")
        cid = int(str(raw_id))
        if owner is not None and owner != cid:
            raise ApiError(409, "CONFLICT", f"{where}: email {key} belongs to contact {owner}")
    record = None if cid is None else index.records.get(cid)
    return Upsert(record, cid, normalized, created, modified)


def _admin_ms(raw: Any, where: str) -> int | None:
    if raw is None or raw == "":
        return None
    ms = parse_ms(raw)
    if ms is None:
        raise bad_request(f"{where}: {raw!r} is not epoch ms or ISO 8601")
    return ms
