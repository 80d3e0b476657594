"""Contacts as last read from HubSpot; storing one again forgets what leadsync remembered writing to it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from sync.core.model import Contact
from sync.store import schema
from sync.store.base import StoreBase, chunks, normalize_email


def contact_row(portal_id: int, contact: Contact, now: datetime) -> dict[str, Any]:
    """The contacts table's row of a contact read at `now`."""
    return {
        "portal_id": portal_id,
        "id": contact.id,
        "email": normalize_email(contact.email),
        "properties": dict(contact.properties),
        "created_at_ms": contact.created_at_ms,
        "lifecycle_stage": contact.lifecycle_stage,
        "list_ids": sorted(contact.list_ids),
        "updated_at": now,
    }


class ContactStore(StoreBase):
    """The Contacts role (sync.ports)."""

    def upsert_contacts(self, portal_id: int, contacts: Sequence[Contact]) -> None:
        now = self._now()
        # Keyed by id, the last copy winning: one statement may not upsert the same row twice on PostgreSQL.
        rows = {c.id: contact_row(portal_id, c, now) for c in contacts}
        if not rows:
            return
        stmt = self._insert(schema.contacts)
        updated = ("email", "properties", "created_at_ms", "lifecycle_stage", "list_ids", "updated_at")
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.contacts.c.portal_id, schema.contacts.c.id],
            set_={name: stmt.excluded[name] for name in updated},
        )
        written = schema.written_values
        with self._writer.begin() as conn:
            conn.execute(stmt, list(rows.values()))
            # A contact freshly read from HubSpot shows what HubSpot holds now, our last writes included
            # (they bumped lastmodifieddate): what we remember writing is superseded, and must not mask an
            # edit someone made after it.
            for chunk in chunks(list(rows), 500):
                conn.execute(written.delete().where(written.c.portal_id == portal_id, written.c.contact_id.in_(chunk)))

    def get_contacts(self, portal_id: int, ids: Sequence[str]) -> list[Contact]:
        """The stored contacts among `ids`, in the order asked; unknown ids are left out."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Contact] = {}
        with self._engine.connect() as conn:
            for chunk in chunks(wanted):
                query = sa.select(schema.contacts).where(
                    schema.contacts.c.portal_id == portal_id, schema.contacts.c.id.in_(chunk)
                )
                found.update((row.id, _contact(row)) for row in conn.execute(query))
        return [found[i] for i in wanted if i in found]

    def contacts_by_email(self, portal_id: int, emails: Sequence[str]) -> list[Contact]:
        """The stored contacts with any of these emails (in any case), ordered by id."""
        wanted = sorted({normalize_email(e) for e in emails} - {""})
        found: list[Contact] = []
        with self._engine.connect() as conn:
            for chunk in chunks(wanted):
                query = sa.select(schema.contacts).where(
                    schema.contacts.c.portal_id == portal_id, schema.contacts.c.email.in_(chunk)
                )
                found.extend(_contact(row) for row in conn.execute(query))
        return sorted(found, key=lambda c: c.id)

    def iter_contact_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]:
        """Every stored contact id, in id (text) order, `batch` at a time.

        Keyset paging: each page is a short query of its own starting after the
        last id seen, so memory stays flat and no transaction stays open while
        the caller works on a page.
        """
        return self._keyset(schema.contacts.c.id, schema.contacts.c.portal_id == portal_id, batch)


def _contact(row: Row[Any]) -> Contact:
    return Contact(
        id=row.id,
        properties=dict(row.properties),
        email=row.email,
        created_at_ms=row.created_at_ms,
        lifecycle_stage=row.lifecycle_stage,
        list_ids=frozenset(row.list_ids),
    )
