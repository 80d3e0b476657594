"""Contact-company associations and their v4 batch read, in both directions.

A contact may have several companies and at most one of them Primary; a company many contacts. Each
association carries HubSpot's unlabeled type and, when Primary, the Primary type too, as the v4 API
lists them. Not locked: the portal front holds the lock around every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sync.sandbox import batch
from sync.sandbox.wire import JsonObject, bad_request, decode_cursor, encode_cursor
from sync.snapshot import numeric

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
DEFAULT_PAGE_SIZE = 500  # associations per input before the result pages (HubSpot's page is of this order)


@dataclass(frozen=True)
class Direction:
    """One way of reading associations: the object types named, and the type ids HubSpot gives them."""

    from_type: str  # "contacts" or "companies"
    from_noun: str  # HubSpot's singulars, in its messages
    to_noun: str
    primary_type: int
    unlabeled_type: int


CONTACT_TO_COMPANY = Direction("contacts", "contact", "company", 1, 279)
COMPANY_TO_CONTACT = Direction("companies", "company", "contact", 2, 280)


class Associations:
    def __init__(self) -> None:
        self._by_contact: dict[int, dict[int, bool]] = {}  # contact -> company -> primary
        self._by_company: dict[int, set[int]] = {}
        self.primary_label = "Primary"  # what HubSpot calls typeId 1; it has been renamed before
        self.page_size = DEFAULT_PAGE_SIZE

    def associate(self, contact: int, company: int, primary: bool) -> None:
        """Associate (again); a new Primary takes the flag from the contact's old one, as HubSpot allows one."""
        companies = self._by_contact.setdefault(contact, {})
        if primary:
            for other in companies:
                companies[other] = False
        companies[company] = primary or companies.get(company, False)
        self._by_company.setdefault(company, set()).add(contact)

    def remove(self, contact: int, company: int) -> bool:
        companies = self._by_contact.get(contact, {})
        if company not in companies:
            return False
        del companies[company]
        if not companies:
            del self._by_contact[contact]
        members = self._by_company[company]
        members.discard(contact)
        if not members:
            del self._by_company[company]
        return True

    def count(self) -> int:
        return sum(len(c) for c in self._by_contact.values())

    def snapshot(self) -> list[JsonObject]:
        return [
            {"contactId": str(contact), "companyId": str(company), "primary": primary}
            for contact in sorted(self._by_contact)
            for company, primary in sorted(self._by_contact[contact].items())
        ]

    # --- the v4 batch read ---------------------------------------------------------------------

    def batch_read(self, direction: Direction, body: Any) -> tuple[list[JsonObject], list[JsonObject]]:
        """Results for the inputs that have associations (in input order) and one error per input without."""
        items = batch.inputs(body)
        results: list[JsonObject] = []
        errors: list[JsonObject] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or item.get("id") in (None, ""):
                raise bad_request(f"inputs[{i}] needs an id")
            key = str(item["id"])
            after = item.get("after")
            targets = self._targets(direction, int(key)) if numeric(key) else []
            if not targets:
                errors.append(_none_found(direction, key))
                continue
            results.append(self._result(direction, key, targets, None if after in (None, "") else str(after)))
        return results, errors

    def _targets(self, direction: Direction, key: int) -> list[tuple[int, bool]]:
        if direction is CONTACT_TO_COMPANY:
            return sorted(self._by_contact.get(key, {}).items())
        return sorted((contact, self._by_contact[contact][key]) for contact in self._by_company.get(key, ()))

    def _result(self, direction: Direction, key: str, targets: list[tuple[int, bool]], after: str | None) -> JsonObject:
        start = 0
        if after is not None:
            (last,) = decode_cursor(after, 1)
            if not numeric(last):
                raise bad_request(f"Invalid paging token 'after' for {key}: {after!r}")
            start = next((n for n, (oid, _) in enumerate(targets) if oid > int(last)), len(targets))
        page = targets[start : start + self.page_size]
        types = _types(direction, self.primary_label)
        result: JsonObject = {
            "from": {"id": key},
            # HubSpot sends toObjectId as a number here, though its spec types it as a string.
            "to": [{"toObjectId": oid, "associationTypes": types(primary)} for oid, primary in page],
        }
        if page and start + self.page_size < len(targets):
            result["paging"] = {"next": {"after": encode_cursor(page[-1][0])}}
        return result


def _types(direction: Direction, primary_label: str) -> Callable[[bool], list[JsonObject]]:
    unlabeled: JsonObject = {"category": HUBSPOT_DEFINED, "typeId": direction.unlabeled_type, "label": None}
    primary: JsonObject = {"category": HUBSPOT_DEFINED, "typeId": direction.primary_type, "label": primary_label}
    return lambda is_primary: [dict(unlabeled), dict(primary)] if is_primary else [dict(unlabeled)]


def _none_found(direction: Direction, key: str) -> JsonObject:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": f"No {direction.to_noun} is associated with {direction.from_noun} {key}.",
        "context": {"fromObjectId": [key]},
        "errors": [],
        "links": {},
    }
