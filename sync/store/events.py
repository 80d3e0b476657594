"""Form submissions and email events, stored once each (by kind and event id), found by email."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from sync.core.model import FORM_SUBMISSION, EmailEvent, Event, FormSubmission
from sync.store import schema
from sync.store.base import StoreBase, chunks, normalize_email


class EventStore(StoreBase):
    """The Events role (sync.ports)."""

    def add_events(self, portal_id: int, events: Sequence[Event]) -> int:
        """Store the events not seen before (by kind and event id); returns how many were new."""
        rows: dict[tuple[str, str], dict[str, object]] = {}
        for e in events:
            rows.setdefault((e.kind, e.event_id), event_row(portal_id, e))
        if not rows:
            return 0
        # RETURNING yields only the rows inserted: a reliable count where executemany's rowcount is not.
        stmt = (
            self._insert(schema.events)
            .on_conflict_do_nothing(
                index_elements=[schema.events.c.portal_id, schema.events.c.kind, schema.events.c.event_id]
            )
            .returning(schema.events.c.event_id)
        )
        with self._writer.begin() as conn:
            return len(conn.execute(stmt, list(rows.values())).all())

    def events_for_emails(self, portal_id: int, emails: Sequence[str]) -> dict[str, list[Event]]:
        """Events by lowercased email, oldest first; emails without events are left out."""
        wanted = sorted({normalize_email(e) for e in emails} - {""})
        grouped: dict[str, list[Event]] = {}
        with self._engine.connect() as conn:
            for chunk in chunks(wanted):
                query = (
                    sa.select(schema.events)
                    .where(schema.events.c.portal_id == portal_id, schema.events.c.email.in_(chunk))
                    .order_by(
                        schema.events.c.email, schema.events.c.at_ms, schema.events.c.kind, schema.events.c.event_id
                    )
                )
                for row in conn.execute(query):
                    grouped.setdefault(row.email, []).append(_event(row))
        return grouped

    def emails_with_events_since(self, portal_id: int, since_ms: int) -> list[str]:
        """Distinct lowercased emails with an event at or after `since_ms` (event time), sorted."""
        query = (
            sa.select(schema.events.c.email)
            .where(
                schema.events.c.portal_id == portal_id, schema.events.c.at_ms >= since_ms, schema.events.c.email != ""
            )
            .distinct()
            .order_by(schema.events.c.email)
        )
        with self._engine.connect() as conn:
            return list(conn.scalars(query))


def event_row(portal_id: int, event: Event) -> dict[str, object]:
    """The events table's row of an event."""
    payload: dict[str, object]
    if isinstance(event, FormSubmission):
        payload = {"form_id": event.form_id, "form_name": event.form_name, "page_url": event.page_url}
    else:
        payload = {"campaign_id": event.campaign_id, "url": event.url, "filtered": event.filtered}
        if event.category or event.soft_bounce:
            payload.update(category=event.category, soft_bounce=event.soft_bounce)
    return {
        "portal_id": portal_id,
        "kind": event.kind,
        "event_id": event.event_id,
        "email": normalize_email(event.email),
        "at_ms": event.at_ms,
        "payload": payload,
    }


def _event(row: Row[Any]) -> Event:
    payload = row.payload
    if row.kind == FORM_SUBMISSION:
        return FormSubmission(
            event_id=row.event_id,
            at_ms=row.at_ms,
            email=row.email,
            form_id=payload["form_id"],
            form_name=payload["form_name"],
            page_url=payload["page_url"],
        )
    return EmailEvent(
        event_id=row.event_id,
        kind=row.kind,
        at_ms=row.at_ms,
        email=row.email,
        campaign_id=payload["campaign_id"],
        url=payload["url"],
        filtered=bool(payload["filtered"]),
        category=str(payload.get("category", "")),
        soft_bounce=bool(payload.get("soft_bounce", False)),
    )
