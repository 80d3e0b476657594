"""The sandbox's webhook push: every contact change, batched like HubSpot, signed, retried, repeated on demand."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from sync.sandbox import Portal
from sync.sandbox.webhooks import MAX_ATTEMPTS, ChangeEvent, PushFaults, WebhookPusher, sign_v3
from sync.webhooks import verify

URL = "http://127.0.0.1:9/webhooks/hubspot"


class Receiver:
    """Answers each delivery with the next status of `statuses` (then 200), keeping what it was sent."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.bodies: list[list[dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            self.bodies.append(json.loads(body))
            self.headers.append(headers)
            return self.statuses.pop(0) if self.statuses else 200

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for b in self.bodies for e in b]


def wait(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("not in time")


def pusher(receiver: Receiver, **kwargs: Any) -> WebhookPusher:
    return WebhookPusher(URL, "s3cret", lambda: 77, flush_s=0.01, backoff_s=0.01, post=receiver, **kwargs)


def test_changes_are_pushed_in_signed_deliveries_of_at_most_100_events() -> None:
    receiver = Receiver()
    push = pusher(receiver).start()
    try:
        push.emit([ChangeEvent("property_change", i, 1_000, "jobtitle", "CTO") for i in range(250)])
        wait(lambda: len(receiver.events()) == 250)
    finally:
        push.close()
    assert max(len(b) for b in receiver.bodies) == 100
    first = receiver.bodies[0][0]
    assert first["subscriptionType"] == "contact.propertyChange" and first["portalId"] == 77
    assert (first["propertyName"], first["propertyValue"]) == ("jobtitle", "CTO")
    headers = {k.lower(): v for k, v in receiver.headers[0].items()}
    body = json.dumps(receiver.bodies[0]).encode()
    now_ms = int(headers["x-hubspot-request-timestamp"])
    assert verify(["s3cret"], "POST", URL, body, headers, now_ms) == "s3cret"
    assert headers["x-hubspot-signature-v3"] == sign_v3("s3cret", URL, body, now_ms)


def test_a_failed_delivery_is_retried_with_growing_waits_up_to_ten_attempts() -> None:
    receiver = Receiver(500, 0, 503)
    push = pusher(receiver, max_backoff_s=0.02).start()
    try:
        push.emit([ChangeEvent("creation", 5, 1_000)])
        wait(lambda: push.stats["deliveries"] == 1)
    finally:
        push.close()
    assert [b[0]["attemptNumber"] for b in receiver.bodies] == [0, 1, 2, 3]

    never = Receiver(*([500] * MAX_ATTEMPTS))
    push = pusher(never, max_backoff_s=0.02).start()
    try:
        push.emit([ChangeEvent("creation", 6, 1_000)])
        wait(lambda: push.stats["given_up"] == 1, 30)
    finally:
        push.close()
    assert len(never.bodies) == MAX_ATTEMPTS


def test_duplicate_and_reorder_faults_repeat_and_shuffle_events() -> None:
    receiver = Receiver()
    push = pusher(receiver, faults=PushFaults.parse("duplicate=1,reorder=1"), seed=4).start()
    try:
        push.emit([ChangeEvent("property_change", i, 1_000 + i, "jobtitle", str(i)) for i in range(20)])
        wait(lambda: len(receiver.events()) >= 40)
    finally:
        push.close()
    ids = [e["objectId"] for e in receiver.events()]
    assert sorted(set(ids)) == list(range(20)) and len(ids) >= 40
    assert ids[:20] != list(range(20))


@pytest.mark.parametrize("text", ["drop=0.1", "duplicate=2", "reorder=x"])
def test_bad_fault_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad webhook fault"):
        PushFaults.parse(text)


def test_the_portal_tells_creations_edits_submissions_and_api_writes() -> None:
    portal = Portal()
    portal.upsert_forms([{"id": "f1", "name": "Demo request"}], 1_000)
    seen: list[ChangeEvent] = []
    portal.on_change = seen.extend
    created = portal.upsert_contacts([{"properties": {"email": "a@b.co", "jobtitle": "CTO"}}], 2_000)
    cid = int(created[0]["id"])
    portal.upsert_contacts([{"id": str(cid), "properties": {"jobtitle": "CTO"}}], 3_000)  # no change: no event
    portal.add_submissions(
        [{"formId": "f1", "submittedAt": 4_000, "values": [{"name": "email", "value": "a@b.co"}]}], 4_000, lambda: "c1"
    )
    portal.batch_update({"inputs": [{"id": str(cid), "properties": {"lifecyclestage": "lead"}}]}, 5_000)
    assert [(e.kind, e.prop, e.value, e.source) for e in seen] == [
        ("creation", "", "", "CRM_UI"),
        ("property_change", "num_conversion_events", "1", "FORM"),
        ("property_change", "first_conversion_date", "4000", "FORM"),
        ("property_change", "first_conversion_event_name", "Demo request", "FORM"),
        ("property_change", "recent_conversion_date", "4000", "FORM"),
        ("property_change", "recent_conversion_event_name", "Demo request", "FORM"),
        ("property_change", "lifecyclestage", "lead", "INTEGRATION"),
    ]
    assert all(e.object_id == cid for e in seen)
