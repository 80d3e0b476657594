"""Contacts: the object endpoints' reading and writing (objects.py), by email too, and lifecycle stages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import hubspot.crm.contacts as contact_models

from sync.core.model import Contact, PropertyUpdate, StageChange
from sync.core.wire import EMAIL, LIFECYCLE_STAGE
from sync.errors import SkippableRecordError
from sync.hubspot.client import HubSpotClient
from sync.hubspot.objects import BATCH, LIST_PAGE, SEARCH_PAGE, CrmObjects, ObjectType, RawPage
from sync.hubspot.shapes import (
    CONVERSION_PROPERTIES,
    CREATE_DATE,
    LAST_MODIFIED,
    RECENT_CONVERSION_DATE,
    contact_from_wire,
    conversion_from_wire,
)
from sync.ports import ContactPage, Conversion, ConversionPage, DeadLetter, WriteOutcome

__all__ = ["BATCH", "CONTACTS", "LIST_PAGE", "SEARCH_PAGE", "Contacts"]

CONTACTS = ObjectType(
    "contacts",
    LAST_MODIFIED,
    basic=lambda client: client.contacts_basic,
    search=lambda client: client.contacts_search,
    batch=lambda client: client.contacts_batch,
    models=contact_models,
)


def _contact_page(page: RawPage[Contact]) -> ContactPage:
    return ContactPage(page.records, page.problems, page.after, page.newest_ms)


class Contacts(CrmObjects[Contact]):
    def __init__(self, client: HubSpotClient, properties: Sequence[str]) -> None:
        # Always read what the pipeline needs to place a contact and advance cursors.
        wanted = {*properties, EMAIL, LAST_MODIFIED, LIFECYCLE_STAGE, CREATE_DATE}
        super().__init__(client, CONTACTS, sorted(wanted), contact_from_wire)

    def pages(self, after: str | None = None) -> Iterator[ContactPage]:
        """Every contact through the list endpoint (the first full backfill); resumable from `after`."""
        return (_contact_page(page) for page in self.raw_pages(after))

    def changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[ContactPage]:
        """Contacts whose lastmodifieddate is at or after `since_ms` (and at or before `until_ms`), in that
        order, each once (keyset paging past the 10k cap: CrmObjects.raw_changed_since)."""
        return (_contact_page(page) for page in self.raw_changed_since(since_ms, until_ms))

    def converted_since(self, since_ms: int) -> Iterator[ConversionPage]:
        """Contacts whose recent_conversion_date is at or after `since_ms`, oldest first, each once: the poll for
        new form submissions (one search call when there are none, whatever the number of forms). Keyset paging
        past the 10k cap, as changed_since."""
        for results in self.raw_since(RECENT_CONVERSION_DATE, since_ms, properties=CONVERSION_PROPERTIES):
            conversions: list[Conversion] = []
            problems: list[str] = []
            for raw in results:
                try:
                    conversions.append(conversion_from_wire(raw))
                except SkippableRecordError as exc:
                    problems.append(str(exc))
            yield ConversionPage(conversions, problems)

    def read(self, ids: Sequence[str], by_email: bool = False) -> list[Contact]:
        """Contacts by id (or by email); unknown ones are simply absent."""
        return self.read_raw(ids, EMAIL if by_email else None)

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
