"""The sandbox pushes HubSpot-style webhooks: signed v3 deliveries of contact creations and property changes.

Every change the sandbox makes to a contact is pushed, whoever made it: an admin edit, a form submission (which
sets `recent_conversion_date`, `recent_conversion_event_name` and `num_conversion_events`, as HubSpot does), and
the writes a worker makes through the API, so a receiver must recognise its own writes coming back.

As HubSpot does: up to 100 events per request, sent after a short flush interval; a delivery that fails
(no answer, or not 2xx) is sent again with growing waits, up to 10 attempts. Faults, in the syntax of
`--faults`: `duplicate=P` (an event is sent twice, the copy in a later delivery) and `reorder=P` (a delivery's
events are shuffled).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

from sync.ports import EpochSeconds
from sync.sandbox.faults import parse_rates

MAX_EVENTS = 100
MAX_ATTEMPTS = 10
MAX_BUFFER = 100_000  # events waiting to be sent; past it the oldest are lost (counted), as a sandbox may
FAULT_KINDS = ("duplicate", "reorder")
APP_ID = 4242  # the sandbox's pretend app
SUBSCRIPTION_IDS = {"creation": 101, "property_change": 102}

ChangeKind = Literal["creation", "property_change"]


@dataclass(frozen=True)
class ChangeEvent:
    """A change to a sandbox contact, as its webhook will tell it."""

    kind: ChangeKind
    object_id: int
    occurred_at_ms: int
    prop: str = ""
    value: str = ""
    source: str = "CRM_UI"  # HubSpot's changeSource: CRM_UI, INTEGRATION (an app's API write), FORM, IMPORT

    def wire(self, portal_id: int, event_id: int, attempt: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "eventId": event_id,
            "subscriptionId": SUBSCRIPTION_IDS[self.kind],
            "portalId": portal_id,
            "appId": APP_ID,
            "occurredAt": self.occurred_at_ms,
            "subscriptionType": "contact.creation" if self.kind == "creation" else "contact.propertyChange",
            "attemptNumber": attempt,
            "objectId": self.object_id,
            "changeSource": self.source,
        }
        if self.kind == "property_change":
            body["propertyName"] = self.prop
            body["propertyValue"] = self.value
        return body


@dataclass(frozen=True)
class PushFaults:
    rates: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> PushFaults:
        """'duplicate=0.1,reorder=0.2'; '' or 'off' for none."""
        return cls(parse_rates(text, FAULT_KINDS, "webhook fault"))

    def describe(self) -> str:
        return ",".join(f"{k}={v:g}" for k, v in self.rates.items()) or "off"


@dataclass
class _Delivery:
    events: list[dict[str, Any]]
    attempt: int = 1
    due: float = 0.0


def sign_v3(secret: str, url: str, body: bytes, timestamp_ms: int) -> str:
    """HubSpot's v3 signature of a POST to `url`: base64 HMAC-SHA256 of method + URI + body + timestamp."""
    message = b"POST" + url.encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


Post = Callable[[str, bytes, dict[str, str]], int]  # (url, body, headers) -> HTTP status (0: no answer)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    try:
        return requests.post(url, data=body, headers=headers, timeout=(2, 5)).status_code
    except requests.RequestException:
        return 0


class WebhookPusher:
    """Buffers change events and delivers them, signed, from a thread of its own."""

    def __init__(
        self,
        url: str,
        secret: str,
        portal_id: Callable[[], int],
        *,
        flush_s: float = 0.2,
        faults: PushFaults | None = None,
        seed: int = 0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        clock: EpochSeconds = time.time,
        post: Post = _post,
    ) -> None:
        self.url = url
        self.secret = secret
        self.portal_id = portal_id
        self.flush_s = flush_s
        self.faults = faults or PushFaults()
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.post = post
        self._rng = random.Random(seed)
        self._buffer: deque[ChangeEvent] = deque()
        self._carry: list[dict[str, Any]] = []  # duplicates held for a later delivery
        self._retries: list[_Delivery] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._event_id = 0
        self.stats = {"events": 0, "deliveries": 0, "failed_attempts": 0, "given_up": 0, "lost": 0}

    def emit(self, events: Sequence[ChangeEvent]) -> None:
        """Queue events for delivery (never blocks on the network)."""
        if not events:
            return
        with self._cond:
            for event in events:
                if len(self._buffer) >= MAX_BUFFER:
                    self._buffer.popleft()
                    self.stats["lost"] += 1
                self._buffer.append(event)
            self._cond.notify_all()

    def start(self) -> WebhookPusher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sandbox-webhooks", daemon=True)
            self._thread.start()
        return self

    def close(self, flush_s: float = 2.0) -> None:
        """Send what is buffered (for up to `flush_s`), then stop."""
        deadline = time.monotonic() + flush_s
        while time.monotonic() < deadline:
            with self._cond:
                if not self._buffer and not self._retries and not self._carry:
                    break
            time.sleep(0.02)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer) + sum(len(d.events) for d in self._retries) + len(self._carry)

    def _loop(self) -> None:
        while not self._stop.is_set():
            delivery = self._next()
            if delivery is not None:
                self._send(delivery)

    def _next(self) -> _Delivery | None:
        """The next delivery to send: a due retry, or a batch once the flush interval has passed."""
        with self._cond:
            now = self.clock()
            due = [d for d in self._retries if d.due <= now]
            if due:
                self._retries.remove(due[0])
                return due[0]
            if not self._buffer and not self._carry:
                waits = [d.due - now for d in self._retries]
                self._cond.wait(min([self.flush_s, *waits]) if waits else 0.5)
                return None
        time.sleep(self.flush_s)  # HubSpot batches what changes within a short while
        with self._cond:
            fresh = [self._wire(self._buffer.popleft()) for _ in range(min(MAX_EVENTS, len(self._buffer)))]
            room = MAX_EVENTS - len(fresh)
            carried, self._carry = self._carry[:room], self._carry[room:]
        return self._faulted(fresh, carried) if fresh or carried else None

    def _wire(self, event: ChangeEvent) -> dict[str, Any]:
        self._event_id += 1
        self.stats["events"] += 1
        return event.wire(self.portal_id(), self._event_id, 1)

    def _faulted(self, fresh: list[dict[str, Any]], carried: list[dict[str, Any]]) -> _Delivery:
        """The delivery of these events, with a repeat of some held for a later one (a repeat is not repeated)."""
        rates = self.faults.rates
        duplicate = rates.get("duplicate", 0.0)
        if duplicate:
            with self._cond:
                self._carry += [dict(e) for e in fresh if self._rng.random() < duplicate]
        events = fresh + carried
        if rates.get("reorder", 0.0) and self._rng.random() < rates["reorder"]:
            self._rng.shuffle(events)
        return _Delivery(events)

    def _send(self, delivery: _Delivery) -> None:
        for event in delivery.events:
            event["attemptNumber"] = delivery.attempt - 1
        body = json.dumps(delivery.events).encode()
        timestamp = int(self.clock() * 1000)
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_v3(self.secret, self.url, body, timestamp),
            "X-HubSpot-Request-Timestamp": str(timestamp),
            "X-HubSpot-Signature-Version": "v3",
        }
        status = self.post(self.url, body, headers)
        if 200 <= status < 300:
            self.stats["deliveries"] += 1
            return
        self.stats["failed_attempts"] += 1
        if delivery.attempt >= MAX_ATTEMPTS:
            self.stats["given_up"] += 1
            return
        wait = min(self.max_backoff_s, self.backoff_s * 2 ** (delivery.attempt - 1))
        with self._cond:
            self._retries.append(_Delivery(delivery.events, delivery.attempt + 1, self.clock() + wait))
