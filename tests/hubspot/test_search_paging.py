"""The incremental pull's keyset paging, against a small in-memory search (pages of 20, a cap of 50).

The sandbox tests do the same at HubSpot's real sizes; this one explores many timestamp layouts fast.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.hubspot.client import Response
from sync.hubspot.contacts import Contacts
from sync.hubspot.errors import RejectedError

CAP, PAGE = 50, 20


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeSearch:
    """HubSpot's search semantics for the two queries the pull makes, with a small result cap."""

    def __init__(self, stamps: dict[int, int], next_past_cap: bool) -> None:
        self.stamps = stamps  # contact id -> lastmodifieddate (ms)
        self.next_past_cap = next_past_cap  # HubSpot offers `next` up to the 400; also cope without it
        self.requests = 0
        self.contacts_search = self
        self.policy = None

    def do_search(self, **_: Any) -> None:  # the method object handed to sdk(); never called directly
        raise AssertionError

    def sdk(self, endpoint: str, method: Any, *, public_object_search_request: Any, search: bool = False) -> Response:
        self.requests += 1
        req = public_object_search_request
        after = int(req.after)
        if after >= CAP:
            raise RejectedError(endpoint, 400, "paging past 10,000 results")
        rows = list(self.stamps.items())
        for f in req.filter_groups[0].filters:
            value = int(f.value)
            index = 1 if f.property_name == "lastmodifieddate" else 0
            op = {"GTE": int.__ge__, "GT": int.__gt__, "EQ": int.__eq__, "LTE": int.__le__}[f.operator]
            rows = [r for r in rows if op(r[index], value)]
        key = req.sorts[0]["propertyName"]
        rows.sort(key=(lambda r: (r[1], r[0])) if key == "lastmodifieddate" else (lambda r: r[0]))
        total = len(rows)
        page = rows[:CAP][after : after + req.limit]
        body: dict[str, Any] = {
            "total": total,
            "results": [{"id": str(i), "properties": {"lastmodifieddate": iso(ts)}} for i, ts in page],
        }
        if after + req.limit < (total if self.next_past_cap else min(total, CAP)):
            body["paging"] = {"next": {"after": str(after + req.limit)}}
        return Response(200, {}, body)


def pull(stamps: dict[int, int], since: int, next_past_cap: bool = True) -> tuple[Counter[str], int]:
    fake = FakeSearch(stamps, next_past_cap)
    contacts = Contacts(fake, [])  # type: ignore[arg-type]
    contacts.search_page = PAGE
    seen: Counter[str] = Counter(c.id for page in contacts.changed_since(since) for c in page.contacts)
    return seen, fake.requests


@settings(max_examples=200, deadline=None)
@given(st.data(), st.booleans())
def test_every_contact_changed_since_the_cursor_comes_exactly_once(data: st.DataObject, next_past_cap: bool) -> None:
    # Few distinct timestamps: many ties, windows that are all one timestamp, ties across the cap.
    spread = data.draw(st.integers(min_value=0, max_value=12))
    raw = data.draw(st.lists(st.integers(min_value=0, max_value=spread), max_size=400))
    since = data.draw(st.integers(min_value=0, max_value=spread))
    stamps = {i + 1: 1_700_000_000_000 + ts * 1000 for i, ts in enumerate(raw)}
    seen, _ = pull(stamps, 1_700_000_000_000 + since * 1000, next_past_cap)
    wanted = {str(i) for i, ts in stamps.items() if ts >= 1_700_000_000_000 + since * 1000}
    assert set(seen) == wanted
    assert all(n == 1 for n in seen.values())


@pytest.mark.parametrize("next_past_cap", [True, False])
def test_more_contacts_on_one_timestamp_than_the_cap_are_paged_by_id(next_past_cap: bool) -> None:
    stamps = dict.fromkeys(range(1, 131), 1700000000000) | dict.fromkeys(range(131, 141), 1700000005000)
    seen, requests = pull(stamps, 0, next_past_cap)
    assert len(seen) == 140 and set(seen.values()) == {1}
    assert requests < 40  # no endless restart at the shared timestamp
