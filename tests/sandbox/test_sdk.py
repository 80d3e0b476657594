"""The real HubSpot SDK (hubspot-api-client 12) parses every sandbox answer the worker relies on."""

from __future__ import annotations

from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectId,
)
from hubspot.crm.properties import ApiException as PropertiesApiException
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate, PropertyUpdate

from sync.sandbox import Sandbox
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import DAY, T0

TIMEOUT = (2, 5)


def client(sandbox: Sandbox, token: str | None = None) -> Any:
    return HubSpot(access_token=token or sandbox.token, host=sandbox.url)


def updates(*pairs: tuple[str, dict[str, str]]) -> Any:
    inputs = [SimplePublicObjectBatchInput(id=cid, properties=props) for cid, props in pairs]
    return BatchInputSimplePublicObjectBatchInput(inputs=inputs)


def test_get_page_parses_contacts_and_the_cursor(sandbox: Sandbox) -> None:
    page = client(sandbox).crm.contacts.basic_api.get_page(
        limit=4, properties=["email", "lifecyclestage"], _request_timeout=TIMEOUT
    )
    assert [c.id for c in page.results] == ["101", "102", "103", "104"]
    assert page.results[0].properties["lifecyclestage"] == "lead"
    assert page.results[0].created_at.year == 2026
    assert page.paging.next.after == "105"


def test_do_search_parses_total_results_and_paging(sandbox: Sandbox) -> None:
    request = PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(T0)}]}],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        properties=["email"],
        limit=2,
    )
    found = client(sandbox).crm.contacts.search_api.do_search(
        public_object_search_request=request, _request_timeout=TIMEOUT
    )
    assert found.total == 6
    assert [c.id for c in found.results] == ["103", "101"]
    assert found.paging.next.after == "2"


def test_batch_read_parses_a_complete_result(sandbox: Sandbox) -> None:
    read = BatchReadInputSimplePublicObjectId(properties=["email"], inputs=[SimplePublicObjectId(id="102")])
    result = client(sandbox).crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=read, _request_timeout=TIMEOUT
    )
    assert (result.status, [c.properties["email"] for c in result.results]) == ("COMPLETE", ["andrei.pop@finbank.eu"])


def test_a_200_batch_update_is_a_plain_batch_response(sandbox: Sandbox) -> None:
    result = client(sandbox).crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=updates(("101", {"ls_score": "70"})), _request_timeout=TIMEOUT
    )
    assert type(result).__name__ == "BatchResponseSimplePublicObject"
    assert result.results[0].properties["ls_score"] == "70"


def test_a_207_batch_update_is_a_with_errors_object(sandbox: Sandbox) -> None:
    result = client(sandbox).crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=updates(("101", {"ls_score": "70"}), ("999", {"ls_score": "1"})),
        _request_timeout=TIMEOUT,
    )
    assert type(result).__name__ == "BatchResponseSimplePublicObjectWithErrors"
    assert [c.id for c in result.results] == ["101"]
    assert result.num_errors == 1
    assert (result.errors[0].category, result.errors[0].context) == ("OBJECT_NOT_FOUND", {"ids": ["999"]})


def test_a_partial_fault_is_a_with_errors_object_too(make_sandbox: MakeSandbox) -> None:
    sandbox = make_sandbox(faults="partial=1", fault_seed=1)
    result = client(sandbox).crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=updates(("101", {"ls_score": "1"}), ("102", {"ls_score": "1"})),
        _request_timeout=TIMEOUT,
    )
    assert result.errors[0].category in ("INTERNAL_ERROR", "RATE_LIMITS")


def test_a_400_batch_update_raises_with_the_status_and_body(sandbox: Sandbox) -> None:
    with pytest.raises(ApiException) as caught:
        client(sandbox).crm.contacts.batch_api.update(
            batch_input_simple_public_object_batch_input=updates(("101", {"hubspotscore": "1"})),
            _request_timeout=TIMEOUT,
        )
    assert caught.value.status == 400
    assert '"VALIDATION_ERROR"' in caught.value.body


def test_a_401_raises_with_status_401(sandbox: Sandbox) -> None:
    with pytest.raises(ApiException) as caught:
        client(sandbox, token="revoked").crm.contacts.basic_api.get_page(_request_timeout=TIMEOUT)
    assert caught.value.status == 401


def test_a_429_raises_with_status_429_and_the_headers(make_sandbox: MakeSandbox) -> None:
    api = client(make_sandbox(rate_limit="per10s=1")).crm.contacts.basic_api
    api.get_page(_request_timeout=TIMEOUT)
    with pytest.raises(ApiException) as caught:
        api.get_page(_request_timeout=TIMEOUT)
    assert caught.value.status == 429
    assert caught.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert '"TEN_SECONDLY_ROLLING"' in caught.value.body


def test_with_http_info_exposes_the_rate_limit_headers(make_sandbox: MakeSandbox) -> None:
    api = client(make_sandbox(rate_limit="professional")).crm.contacts.basic_api
    _, status, headers = api.get_page_with_http_info(limit=1, _request_timeout=TIMEOUT)
    assert status == 200
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "624999"


def test_properties_and_groups_are_created_updated_and_conflicts_raise_409(sandbox: Sandbox) -> None:
    properties = client(sandbox).crm.properties
    group = properties.groups_api.create(
        "contacts", PropertyGroupCreate(name="lead_scoring_sync", label="Lead scoring"), _request_timeout=TIMEOUT
    )
    assert group.name == "lead_scoring_sync"
    create = PropertyCreate(
        name="ls_engagement", label="Engagement", type="number", field_type="number", group_name="lead_scoring_sync"
    )
    created = properties.core_api.create("contacts", create, _request_timeout=TIMEOUT)
    assert (created.name, created.type, created.modification_metadata.read_only_value) == (
        "ls_engagement",
        "number",
        False,
    )
    with pytest.raises(PropertiesApiException) as caught:
        properties.core_api.create("contacts", create, _request_timeout=TIMEOUT)
    assert caught.value.status == 409
    patched = properties.core_api.update(
        "contacts", "ls_engagement", PropertyUpdate(label="Engagement points"), _request_timeout=TIMEOUT
    )
    assert patched.label == "Engagement points"
    stage = properties.core_api.get_by_name("contacts", "lifecyclestage", _request_timeout=TIMEOUT)
    assert [o.value for o in stage.options][:2] == ["subscriber", "lead"]
    assert len(properties.core_api.get_all("contacts", _request_timeout=TIMEOUT).results) > 20


def test_forms_parse_through_the_forms_api(sandbox: Sandbox) -> None:
    page = client(sandbox).marketing.forms.forms_api.get_page(limit=2, _request_timeout=TIMEOUT)
    assert [f.name for f in page.results] == ["Demo request", "Energy ebook"]
    assert page.paging.next.after


def test_list_memberships_parse_through_the_lists_api(sandbox: Sandbox) -> None:
    page = client(sandbox).crm.lists.memberships_api.get_page(list_id="42", limit=2, _request_timeout=TIMEOUT)
    assert [m.record_id for m in page.results] == ["103", "104"]
    assert page.results[1].membership_timestamp.timestamp() * 1000 == T0 + DAY
