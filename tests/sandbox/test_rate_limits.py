"""Rate limits per token: headers, the ten-secondly window, search per second, the daily budget."""

from __future__ import annotations

import uuid

import pytest

from sync.sandbox.limits import RateLimitSpec
from tests.fakes import ManualClock
from tests.sandbox.conftest import MakeSandbox
from tests.sandbox.support import Api

CONTACTS = "/crm/v3/objects/contacts"


def limited(make_sandbox: MakeSandbox, spec: str) -> Api:
    return Api(make_sandbox(rate_limit=spec))


def test_every_non_search_answer_carries_the_rate_limit_headers(make_sandbox: MakeSandbox) -> None:
    api = limited(make_sandbox, "professional")
    first, second = api.get(CONTACTS), api.post(CONTACTS + "/batch/read", {"inputs": [{"id": "101"}]})
    assert first.headers["X-HubSpot-RateLimit-Max"] == "190"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "625000"
    assert [r.headers["X-HubSpot-RateLimit-Remaining"] for r in (first, second)] == ["189", "188"]
    assert [r.headers["X-HubSpot-RateLimit-Daily-Remaining"] for r in (first, second)] == ["624999", "624998"]


def test_the_ten_secondly_limit_answers_hubspots_429_body(make_sandbox: MakeSandbox) -> None:
    api = limited(make_sandbox, "per10s=3")
    assert [api.get(CONTACTS).status_code for _ in range(3)] == [200, 200, 200]
    response = api.get(CONTACTS)
    assert response.status_code == 429
    body = response.json()
    uuid.UUID(body.pop("correlationId"))
    assert body == {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    assert response.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_the_window_rolls_and_refused_requests_do_not_count(make_sandbox: MakeSandbox, clock: ManualClock) -> None:
    api = limited(make_sandbox, "per10s=2")
    api.get(CONTACTS)
    clock.advance(5)
    api.get(CONTACTS)
    assert api.get(CONTACTS).status_code == 429  # refused: does not extend the window
    clock.advance(5.01)  # the first request has left the 10 s window
    assert api.get(CONTACTS).status_code == 200
    assert api.get(CONTACTS).status_code == 429
    clock.advance(5)
    assert api.get(CONTACTS).status_code == 200


def test_search_has_its_own_per_second_limit(make_sandbox: MakeSandbox, clock: ManualClock) -> None:
    api = limited(make_sandbox, "per10s=100,search=5")
    assert [api.search(None).status_code for _ in range(5)] == [200] * 5
    refused = api.search(None)
    assert refused.status_code == 429
    assert refused.json()["policyName"] == "SECONDLY"
    assert refused.json()["message"] == "You have reached your secondly limit."
    assert not [h for h in refused.headers if h.lower().startswith("x-hubspot-ratelimit")]
    assert api.get(CONTACTS).status_code == 200  # other endpoints are not held up
    clock.advance(1.01)
    assert api.search(None).status_code == 200


def test_searches_do_not_use_the_ten_second_budget(make_sandbox: MakeSandbox) -> None:
    api = limited(make_sandbox, "per10s=2,search=5")
    for _ in range(4):
        api.search(None)
    assert api.get(CONTACTS).headers["X-HubSpot-RateLimit-Remaining"] == "1"


def test_the_daily_budget_counts_searches_and_ends_with_a_daily_429(
    make_sandbox: MakeSandbox, clock: ManualClock
) -> None:
    api = limited(make_sandbox, "per10s=100,search=5,daily=3")
    assert api.get(CONTACTS).status_code == 200
    assert api.search(None).status_code == 200
    assert api.get(CONTACTS).headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    for response in (api.get(CONTACTS), api.search(None)):
        assert response.status_code == 429
        assert response.json()["policyName"] == "DAILY"
        assert response.json()["message"] == "You have reached your daily limit."
    clock.advance(86_400)  # a new UTC day
    assert api.get(CONTACTS).status_code == 200


def test_the_limits_can_change_at_run_time(make_sandbox: MakeSandbox) -> None:
    api = limited(make_sandbox, "per10s=1")
    api.get(CONTACTS)
    assert api.get(CONTACTS).status_code == 429
    assert api.admin("rate_limit", {"spec": "off"}).json() == {"rate_limit": "per10s=off,search=off,daily=off"}
    response = api.get(CONTACTS)
    assert response.status_code == 200
    assert "X-HubSpot-RateLimit-Max" not in response.headers
    assert api.admin("rate_limit", {"spec": "per10s=lots"}).status_code == 400


def test_admin_requests_are_never_limited(make_sandbox: MakeSandbox) -> None:
    api = limited(make_sandbox, "per10s=1")
    api.get(CONTACTS)
    assert all(api.admin("stats").status_code == 200 for _ in range(5))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("per10s=190,search=5,daily=625000", RateLimitSpec(190, 5, 625_000)),
        ("per10s=1000", RateLimitSpec(1000, 5, 625_000)),
        ("daily=off", RateLimitSpec(190, 5, None)),
        ("off", RateLimitSpec(None, None, None)),
        ("enterprise", RateLimitSpec(190, 5, 1_000_000)),
        ("Free", RateLimitSpec(100, 5, 250_000)),
    ],
)
def test_rate_limit_specs_parse(text: str, expected: RateLimitSpec) -> None:
    assert RateLimitSpec.parse(text) == expected


@pytest.mark.parametrize("text", ["per10s", "per10s=0", "per10s=-1", "burst=5", "per10s=1.5", "platinum"])
def test_bad_rate_limit_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad rate limit"):
        RateLimitSpec.parse(text)
