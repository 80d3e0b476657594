"""Contact-company associations through the v4 batch read: 100 ids a call, never one call per record.

A result pages on its own when a record has many associations (`paging.next.after` on that result): the
id is asked again with its `after`, together with other ids. The Primary company is the association of
HUBSPOT_DEFINED type 1 (2 read from the company's side), matched by id: HubSpot has renamed its label and
says labels are not for code. An id without associations comes back as an error of a 207 (or not at all).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest

from sync.core.model import CompanyAssociation
from sync.hubspot.client import HubSpotClient
from sync.hubspot.objects import BATCH, next_after

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
NO_ASSOCIATIONS = "NO_ASSOCIATIONS_FOUND"  # the tail of HubSpot's subCategory for an id without any


@dataclass(frozen=True)
class _Way:
    from_type: str
    to_type: str
    primary_type: int  # HUBSPOT_DEFINED typeId of the Primary association in this direction
    from_contact: bool  # whether `from` is the contact


CONTACT_TO_COMPANY = _Way("contacts", "companies", 1, True)
COMPANY_TO_CONTACT = _Way("companies", "contacts", 2, False)


class Associations:
    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    def of_contacts(self, contact_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        """Every company association of these contacts, and problems met (unreadable results)."""
        return self._read(CONTACT_TO_COMPANY, contact_ids)

    def of_companies(self, company_ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        """Every contact association of these companies, and problems met."""
        return self._read(COMPANY_TO_CONTACT, company_ids)

    def _read(self, way: _Way, ids: Sequence[str]) -> tuple[list[CompanyAssociation], list[str]]:
        found: dict[tuple[str, str], bool] = {}  # (contact, company) -> primary
        problems: list[str] = []
        queue: list[dict[str, str]] = [{"id": i} for i in dict.fromkeys(str(i) for i in ids)]
        while queue:
            inputs, queue = queue[:BATCH], queue[BATCH:]
            body = self._call(way, inputs)
            for result in body.get("results") or []:
                queue += self._take(way, result, found, problems)
            problems += _errors(body.get("errors") or [])
        return [CompanyAssociation(c, k, p) for (c, k), p in found.items()], problems

    def _call(self, way: _Way, inputs: list[dict[str, str]]) -> dict[str, Any]:
        request = BatchInputPublicFetchAssociationsBatchRequest(inputs=inputs)
        response = self.client.sdk(
            f"associations.{way.from_type}_{way.to_type}",
            self.client.associations_batch.get_page,
            way.from_type,
            way.to_type,
            batch_input_public_fetch_associations_batch_request=request,
        )
        return response.body if isinstance(response.body, dict) else {}

    def _take(
        self, way: _Way, result: Any, found: dict[tuple[str, str], bool], problems: list[str]
    ) -> list[dict[str, str]]:
        """Record one result's associations; the input to ask again for its next page, if it has one."""
        source = result.get("from") if isinstance(result, Mapping) else None
        from_id = str(source.get("id") or "").strip() if isinstance(source, Mapping) else ""
        if not from_id:
            problems.append(f"{way.from_type} associations: a result without from.id; skipped")
            return []
        for to_id, primary in _targets(way, result.get("to") or []):
            pair = (from_id, to_id) if way.from_contact else (to_id, from_id)
            found[pair] = found.get(pair, False) or primary
        after = next_after(result)
        return [{"id": from_id, "after": after}] if after else []


def _targets(way: _Way, raw: Any) -> Iterator[tuple[str, bool]]:
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping) or item.get("toObjectId") in (None, ""):
            continue
        types = item.get("associationTypes") or []
        primary = any(
            isinstance(t, Mapping)
            and t.get("category") == HUBSPOT_DEFINED
            and str(t.get("typeId")) == str(way.primary_type)
            for t in types
        )
        yield str(item["toObjectId"]), primary


def _errors(errors: list[Any]) -> list[str]:
    """Problems worth a report: an id without associations is no problem, it has none."""
    problems = []
    for error in errors:
        if not isinstance(error, Mapping) or str(error.get("subCategory") or "").endswith(NO_ASSOCIATIONS):
            continue
        ids = (error.get("context") or {}).get("fromObjectId") or []
        problems.append(f"associations of {', '.join(map(str, ids)) or 'some ids'}: {error.get('message')}")
    return problems
