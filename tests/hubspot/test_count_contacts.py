"""The contact count: one search call, HubSpot's `total`, exact past the 10k cap a search pages through."""

from __future__ import annotations

import pytest

from sync.hubspot.portal import HubSpotPortal
from sync.sandbox.generator import generate_portal
from tests.hubspot.test_adapter_sandbox import connected


@pytest.mark.parametrize("contacts", [0, 37, 10_250])
def test_count_contacts_is_the_search_total_in_one_call(contacts: int) -> None:
    with connected(generate_portal(contacts, 1)) as (_, client):
        hub = HubSpotPortal(client, [])
        assert hub.count_contacts() == contacts
        assert dict(client.calls) == {("contacts.search", 200): 1}
