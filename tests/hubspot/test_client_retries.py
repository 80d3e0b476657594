"""Every retry class and every never-retried status of the requests-based calls (HUBSPOT_API.md)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import requests
import responses
from structlog.testing import capture_logs

from sync.errors import StoppedError
from sync.hubspot.client import HubSpotClient
from sync.hubspot.errors import AuthError, DailyLimitError, PortalPausedError, RejectedError, TransientError
from sync.hubspot.limits import Budget, RateLimiter
from sync.hubspot.retry import RetryPolicy

BASE = "https://api.hubapi.test"
URL = f"{BASE}/email/public/v1/events"
OK = {"events": [], "hasMore": False}


def make_client(attempts: int = 4) -> tuple[HubSpotClient, list[float]]:
    waits: list[float] = []
    limiter = RateLimiter(Budget(per_10s=1000, daily=1_000_000), sleep=lambda s: None)
    policy = RetryPolicy(attempts=attempts, base_wait=1.0, sleep=waits.append)
    return HubSpotClient("tok", BASE, limiter, policy), waits


def body(**fields: Any) -> str:
    return json.dumps({"status": "error", "correlationId": "c-1", **fields})


def call(client: HubSpotClient) -> Any:
    return client.get("email.events", "/email/public/v1/events", {"limit": 10}).body


@pytest.mark.parametrize(
    ("status", "payload", "headers", "min_wait"),
    [
        (
            429,
            body(message="You have reached your ten_secondly_rolling limit.", policyName="TEN_SECONDLY_ROLLING"),
            {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
            10.0,
        ),
        (429, body(message="You have reached your secondly limit.", policyName="SECONDLY"), {}, 1.0),
        (423, body(message="locked"), {}, 2.0),
        (477, body(message="migration in progress"), {"Retry-After": "7"}, 7.0),
        (500, body(message="internal error"), {}, 0.0),
        (502, "<html>bad gateway</html>", {}, 0.0),
        (503, body(message="unavailable"), {}, 0.0),
        (504, "", {}, 0.0),
        (521, "", {}, 0.0),
        (523, "", {}, 0.0),
        (524, "", {}, 0.0),
    ],
)
@responses.activate
def test_a_retriable_status_is_retried_then_succeeds(
    status: int, payload: str, headers: dict[str, str], min_wait: float
) -> None:
    client, waits = make_client()
    responses.get(URL, body=payload, status=status, headers=headers)
    responses.get(URL, json=OK, status=200)
    assert call(client) == OK
    assert len(responses.calls) == 2
    assert len(waits) == 1 and waits[0] >= min_wait


@pytest.mark.parametrize("status", [400, 403, 404, 409, 522, 525, 526])
@responses.activate
def test_a_status_that_is_never_retried_fails_at_once(status: int) -> None:
    client, waits = make_client()
    responses.get(URL, body=body(message="no", category="VALIDATION_ERROR"), status=status)
    with pytest.raises(RejectedError) as info:
        call(client)
    assert info.value.status == status
    assert (len(responses.calls), waits) == (1, [])


@responses.activate
def test_daily_limit_429_stops_without_retrying() -> None:
    client, waits = make_client()
    responses.get(
        URL,
        body=body(message="You have reached your daily limit.", policyName="DAILY", errorType="RATE_LIMIT"),
        status=429,
    )
    with pytest.raises(DailyLimitError):
        call(client)
    assert (len(responses.calls), waits) == (1, [])


@responses.activate
def test_401_pauses_the_portal_with_a_log_event_and_no_further_call_is_made() -> None:
    client, waits = make_client()
    responses.get(
        URL, body=body(message="Authentication credentials not found.", category="INVALID_AUTHENTICATION"), status=401
    )
    with capture_logs() as logs, pytest.raises(AuthError):
        call(client)
    assert any(e["event"] == "portal_paused" and e["reason"] == "unauthorized" for e in logs)
    with pytest.raises(PortalPausedError):
        call(client)
    assert (len(responses.calls), waits) == (1, [])
    assert "tok" not in json.dumps(logs)  # the token never reaches a log


@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("connection reset by peer"),
        requests.ReadTimeout("read timed out"),
        requests.ConnectTimeout("no route"),
    ],
)
@responses.activate
def test_dropped_connections_and_timeouts_are_retried(failure: Exception) -> None:
    client, waits = make_client()
    responses.get(URL, body=failure)
    responses.get(URL, json=OK)
    assert call(client) == OK
    assert len(waits) == 1


@responses.activate
def test_retries_give_up_after_the_policy_attempts_with_growing_waits() -> None:
    client, waits = make_client(attempts=5)
    for _ in range(5):
        responses.get(URL, body=body(message="unavailable"), status=503)
    with pytest.raises(TransientError):
        call(client)
    assert len(responses.calls) == 5
    # full jitter: each wait is drawn below 1, 2, 4, 8 seconds
    assert all(0 <= w <= 2**i for i, w in enumerate(waits)) and len(waits) == 4


@responses.activate
def test_a_cut_off_body_on_a_200_is_retried() -> None:
    client, waits = make_client()
    responses.get(URL, body='{"events": [', status=200)
    responses.get(URL, json=OK)
    assert call(client) == OK and len(waits) == 1


@responses.activate
def test_every_call_is_counted_by_endpoint_and_status() -> None:
    client, _ = make_client()
    responses.get(URL, body=body(message="unavailable"), status=503)
    responses.get(URL, json=OK)
    call(client)
    assert client.calls == {("email.events", 503): 1, ("email.events", 200): 1}


def test_no_answer_names_the_address_and_the_root_cause() -> None:
    limiter = RateLimiter(Budget(per_10s=1000, daily=1_000_000), sleep=lambda s: None)
    client = HubSpotClient("tok", "http://127.0.0.1:1", limiter, RetryPolicy(attempts=1, sleep=lambda s: None))
    with pytest.raises(TransientError) as caught:
        client.get("email.events", "/email/public/v1/events", {})
    assert "no answer from http://127.0.0.1:1: ConnectionRefusedError" in str(caught.value)


@responses.activate
def test_a_stop_cuts_a_retry_wait_short_and_ends_the_call_with_stopped_error() -> None:
    responses.get(
        URL,
        status=429,
        body=body(message="You have reached your ten_secondly_rolling limit.", policyName="TEN_SECONDLY_ROLLING"),
        headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
    )
    limiter = RateLimiter(Budget(per_10s=1000, daily=1_000_000), sleep=lambda s: None)
    stop = threading.Event()
    client = HubSpotClient("tok", BASE, limiter, RetryPolicy(attempts=8), stop=stop)  # waits on the stop flag
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    with pytest.raises(StoppedError):
        call(client)
    assert time.monotonic() - began < 2.0  # not the 10 s the 429 asked for
    assert len(responses.calls) == 1


def test_a_hanging_call_times_out_well_within_the_30_s_a_stop_may_take() -> None:
    limiter = RateLimiter(Budget(per_10s=1000, daily=1_000_000), sleep=lambda s: None)
    connect, read = HubSpotClient("tok", BASE, limiter).timeout
    assert connect + read <= 25.0
