"""Stored email events: keyed by HubSpot's id and created time, bounces keep their category (schema v6)."""

from __future__ import annotations

import sqlalchemy as sa

from sync.core.model import EMAIL_BOUNCE, EMAIL_OPEN, EMAIL_UNBOUNCE, EmailEvent, FormSubmission
from sync.hubspot.shapes import email_event_from_wire
from sync.ports import StateStore
from sync.store import schema
from sync.store.state import SqlStateStore

PORTAL = 7
VERSION = schema.migrations.index(schema._v5_event_identity) + 1


def test_a_bounce_keeps_its_category_and_softness_through_the_store(store: StateStore) -> None:
    soft = email_event_from_wire(
        {"id": "b", "type": "BOUNCE", "recipient": "a@x.com", "created": 5_000, "category": "MAILBOX_FULL"}
    )
    hard = email_event_from_wire(
        {"id": "b", "type": "BOUNCE", "recipient": "a@x.com", "created": 9_000, "category": "UNKNOWN_USER"}
    )
    lifted = email_event_from_wire({"id": "u", "type": "UNBOUNCE", "recipient": "a@x.com", "created": 12_000})
    assert soft is not None and hard is not None and lifted is not None
    assert store.add_events(PORTAL, [soft, hard, lifted]) == 3  # one id, two times: two events
    assert store.add_events(PORTAL, [soft, hard, lifted]) == 0
    assert store.events_for_emails(PORTAL, ["a@x.com"]) == {"a@x.com": [soft, hard, lifted]}
    assert (soft.soft_bounce, hard.soft_bounce, lifted.kind) == (True, False, EMAIL_UNBOUNCE)


def test_the_migration_rekeys_stored_email_events_and_rereads_bounces_and_unsubscribes(store_url: str) -> None:
    store = SqlStateStore(store_url)
    rows = [
        (EMAIL_OPEN, "e-1", 1_000, {"campaign_id": "c", "url": "", "filtered": False}),
        (EMAIL_BOUNCE, "e-2", 2_000, {"campaign_id": "c", "url": "", "filtered": False}),
        ("email_unsubscribe", "e-3", 3_000, {"campaign_id": "c", "url": "", "filtered": False}),
        ("form_submission", "cv-1", 4_000, {"form_id": "f", "form_name": "Demo", "page_url": ""}),
    ]
    with schema.writer(store.engine).begin() as conn:  # the store as the version before left it
        conn.execute(sa.delete(schema.schema_migrations).where(schema.schema_migrations.c.version >= VERSION))
        for kind, eid, at_ms, payload in rows:
            conn.execute(
                sa.insert(schema.events).values(
                    portal_id=PORTAL, kind=kind, event_id=eid, email="a@x.com", at_ms=at_ms, payload=payload
                )
            )
    store.set_cursor(PORTAL, "email_events_ms", "99000")
    store.set_cursor(PORTAL, "form:f", "99000")
    store.close()
    reopened = SqlStateStore(store_url)  # migrates
    try:
        events = reopened.events_for_emails(PORTAL, ["a@x.com"])["a@x.com"]
        assert [(e.kind, e.event_id) for e in events] == [(EMAIL_OPEN, "e-1:1000"), ("form_submission", "cv-1")]
        assert isinstance(events[0], EmailEvent) and isinstance(events[1], FormSubmission)
        # The next pull reads the email events again, from the start; the form checkpoints stay.
        assert reopened.get_cursor(PORTAL, "email_events_ms") is None
        assert reopened.get_cursor(PORTAL, "form:f") == "99000"
        reread = email_event_from_wire({"id": "e-1", "type": "OPEN", "recipient": "a@x.com", "created": 1_000})
        assert reread is not None and reopened.add_events(PORTAL, [reread]) == 0  # the same event, not a new one
        assert schema.migrate(reopened.engine) == []
    finally:
        reopened.close()
