"""HubSpot webhook deliveries: a JSON array of up to 100 events, parsed into plain values and de-duplicated.

A delivery may carry events of several portals, out of order; HubSpot retries a delivery it thinks failed, so
the same event comes again, and its `eventId` is not unique across subscriptions. An event is identified by
what it says instead: (portal, object, subscription type, property, time, value).

Legacy apps name contact events `contact.creation`, `contact.propertyChange` ...; apps on the developer platform
(project apps) send `object.creation`, `object.propertyChange` ... with `objectTypeId` "0-1" for contacts. Both
are read; events on other objects, and kinds that need no rescore, are left out.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

MAX_EVENTS = 100  # HubSpot sends at most 100 events in one request
MAX_BODY = 1024 * 1024  # 100 events are a few tens of kB: anything much bigger is not HubSpot
CONTACT_TYPE_ID = "0-1"

EventKind = Literal["creation", "property_change"]
_KINDS: dict[str, EventKind] = {"creation": "creation", "propertyChange": "property_change", "restore": "creation"}


class DeliveryError(ValueError):
    """The body is not a delivery (400): not JSON, not an array, or too many events."""


@dataclass(frozen=True)
class ContactEvent:
    """A contact was created (or restored), or one of its properties changed."""

    portal_id: int
    contact_id: str
    kind: EventKind
    occurred_at_ms: int
    prop: str = ""  # the property changed (property_change)
    value: str = ""
    source: str = ""  # changeSource: CRM_UI, INTEGRATION, FORM, IMPORT ...

    @property
    def key(self) -> tuple[int, str, str, str, int, str]:
        return (self.portal_id, self.contact_id, self.kind, self.prop, self.occurred_at_ms, self.value)


@dataclass(frozen=True)
class Parsed:
    events: list[ContactEvent]
    ignored: int  # events of other objects or kinds, or malformed ones
    problems: list[str]


def parse_delivery(body: bytes) -> Parsed:
    """The contact events of a delivery body; DeliveryError when the body is not a delivery at all."""
    if len(body) > MAX_BODY:
        raise DeliveryError(f"the body is {len(body)} bytes: a delivery is at most {MAX_BODY}")
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeliveryError(f"the body is not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise DeliveryError("a delivery is a JSON array of events")
    if len(raw) > MAX_EVENTS:
        raise DeliveryError(f"a delivery has at most {MAX_EVENTS} events, this one has {len(raw)}")
    events: list[ContactEvent] = []
    problems: list[str] = []
    ignored = 0
    for i, item in enumerate(raw):
        try:
            event = _event(item)
        except ValueError as exc:
            problems.append(f"event {i}: {exc}")
            ignored += 1
            continue
        if event is None:
            ignored += 1
        else:
            events.append(event)
    return Parsed(events, ignored, problems)


def _event(item: Any) -> ContactEvent | None:
    if not isinstance(item, dict):
        raise ValueError("not an object")
    kind = str(item.get("subscriptionType") or "")
    family, _, action = kind.partition(".")
    if family == "object" and str(item.get("objectTypeId") or "") != CONTACT_TYPE_ID:
        return None
    if family not in ("contact", "object") or action not in _KINDS:
        return None  # deletions, merges, association changes: the safety-net poll sees what they change
    portal, obj, at = _whole(item.get("portalId")), _whole(item.get("objectId")), _whole(item.get("occurredAt"))
    if portal is None or obj is None or at is None:
        raise ValueError("portalId, objectId and occurredAt must be whole numbers")
    prop = item.get("propertyName")
    if _KINDS[action] == "property_change" and not (isinstance(prop, str) and prop):
        raise ValueError("a propertyChange event without a propertyName")
    value = item.get("propertyValue")
    return ContactEvent(
        portal_id=portal,
        contact_id=str(obj),
        kind=_KINDS[action],
        occurred_at_ms=at,
        prop=prop if isinstance(prop, str) and _KINDS[action] == "property_change" else "",
        value="" if value is None else str(value),
        source=str(item.get("changeSource") or ""),
    )


def _whole(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


class Seen:
    """The keys of the last `capacity` events: a repeated event is recognised in bounded memory."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[tuple[int, str, str, str, int, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, events: Iterable[ContactEvent]) -> list[ContactEvent]:
        """The events not seen before (each only once, even within one delivery)."""
        fresh: list[ContactEvent] = []
        with self._lock:
            for event in events:
                key = event.key
                if key in self._keys:
                    self._keys.move_to_end(key)
                    continue
                self._keys[key] = None
                fresh.append(event)
                if len(self._keys) > self.capacity:
                    self._keys.popitem(last=False)
        return fresh
