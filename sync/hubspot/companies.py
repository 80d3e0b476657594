"""Companies: the object endpoints' reading and writing (objects.py) on /crm/v3/objects/companies.

Writes are refused before anything is sent unless every property is one of the company properties
leadsync ensured (its own group): a company's lifecycle stage is never written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import hubspot.crm.companies as company_models

from sync.core.model import Company, PropertyUpdate
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import UnownedWriteError
from sync.hubspot.client import HubSpotClient
from sync.hubspot.objects import CrmObjects, ObjectType, RawPage
from sync.hubspot.shapes import COMPANY_LAST_MODIFIED, CREATE_DATE, company_from_wire
from sync.ports import CompanyPage, WriteOutcome

COMPANIES = ObjectType(
    "companies",
    COMPANY_LAST_MODIFIED,
    basic=lambda client: client.companies_basic,
    search=lambda client: client.companies_search,
    batch=lambda client: client.companies_batch,
    models=company_models,
)


def _company_page(page: RawPage[Company]) -> CompanyPage:
    return CompanyPage(page.records, page.problems, page.after, page.newest_ms)


class Companies(CrmObjects[Company]):
    def __init__(self, client: HubSpotClient, properties: Sequence[str]) -> None:
        # Always read what advances the cursor and dates a company, whatever the rules read.
        super().__init__(
            client, COMPANIES, sorted({*properties, COMPANY_LAST_MODIFIED, CREATE_DATE}), company_from_wire
        )
        self.owned: frozenset[str] = frozenset()  # what ensure_company_properties made leadsync's

    def pages(self, after: str | None = None) -> Iterator[CompanyPage]:
        """Every company through the list endpoint (the first full backfill); resumable from `after`."""
        return (_company_page(page) for page in self.raw_pages(after))

    def changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[CompanyPage]:
        """Companies whose hs_lastmodifieddate is at or after `since_ms` (and at or before `until_ms`), in
        that order, each once (keyset paging past the 10k cap: CrmObjects.raw_changed_since)."""
        return (_company_page(page) for page in self.raw_changed_since(since_ms, until_ms))

    def read(self, ids: Sequence[str]) -> list[Company]:
        """Companies by id; deleted ones are simply absent."""
        return self.read_raw(ids)

    def update(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        """Write leadsync's own company properties, 100 companies a call; anything else is refused whole."""
        names = {name for u in updates for name in u.properties}
        foreign = sorted(names - (self.owned - {LIFECYCLE_STAGE}))
        if foreign:
            owned = ", ".join(sorted(self.owned)) or "none ensured yet"
            raise UnownedWriteError(
                f"refused to write company properties {', '.join(foreign)}: leadsync writes only the company "
                f"properties it owns ({owned}) and never a company's {LIFECYCLE_STAGE}; nothing was sent"
            )
        return super().update(updates)
