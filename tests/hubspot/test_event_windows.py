"""The email events reader over loopback: windows from the oldest, newest first within each, a checkpoint at each
window's end, an expired offset restarting its window (boundedly), and a long empty stretch skipped by bisection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from sync.hubspot import engagement
from sync.hubspot.client import HubSpotClient
from sync.hubspot.engagement import EVENTS_WINDOW_MS, Engagement
from sync.hubspot.errors import RejectedError
from sync.hubspot.limits import Budget, RateLimiter
from sync.hubspot.retry import RetryPolicy
from sync.hubspot.shapes import email_event_key
from sync.ports import EventPage
from sync.sandbox import Portal, Sandbox
from sync.sandbox.records import EmailEventRecord

DAY = 86_400_000
T0 = 1_790_000_000_000
PORTAL_ID = 12345678


def portal_with(times: list[int]) -> Portal:
    portal = Portal(PORTAL_ID)
    events = [
        EmailEventRecord(f"e-{i:04d}", at, "OPEN", f"p{i % 7}@buyer.example", 501, PORTAL_ID)
        for i, at in enumerate(times)
    ]
    portal.bulk_load([], [], events)
    return portal


@contextmanager
def reader(portal: Portal, **sandbox: Any) -> Iterator[tuple[Sandbox, Engagement, list[dict[str, str]]]]:
    """The adapter's Engagement against a sandbox, and every email events query it sent (in order)."""
    queries: list[dict[str, str]] = []
    answer = portal.email_events

    def recorded(**kwargs: Any) -> Any:
        queries.append({k: str(v) for k, v in kwargs.items() if k in ("start", "end", "offset", "limit")})
        return answer(**kwargs)

    portal.email_events = recorded  # type: ignore[method-assign]
    with Sandbox(portal, rate_limit="off", **sandbox) as sb:
        limiter = RateLimiter(Budget(per_10s=1_000_000, daily=100_000_000, daily_reserve_pct=0))
        policy = RetryPolicy(attempts=3, base_wait=0.01, max_wait=0.01, sleep=lambda s: time.sleep(0.001))
        yield sb, Engagement(HubSpotClient(sb.token, sb.url, limiter, policy)), queries


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engagement, "EVENTS_PAGE", 10)


def test_windows_go_from_the_oldest_each_newest_first_and_end_with_a_checkpoint(small_pages: None) -> None:
    times = [T0 + d * DAY + i * 60_000 for d in range(3) for i in range(25)]  # 25 events a day, three days
    with reader(portal_with(times)) as (_, hub, queries):
        pages = list(hub.email_events(T0, T0 + 3 * DAY - 1))
    assert EVENTS_WINDOW_MS == DAY
    # Three windows of three pages (10, 10, 5); only each window's last page carries its end.
    assert [len(p.events) for p in pages] == [10, 10, 5] * 3
    assert [p.through_ms for p in pages] == [None, None, T0 + DAY - 1, None, None, T0 + 2 * DAY - 1, None, None,
                                             T0 + 3 * DAY - 1]  # fmt: skip
    for window in range(3):
        got = [e.at_ms for p in pages[3 * window : 3 * window + 3] for e in p.events]
        assert got == sorted(times[25 * window : 25 * window + 25], reverse=True)  # newest first within it
    # Every window is its own query: the offset never crosses a window.
    assert [(q["start"], q["end"]) for q in queries if q["offset"] == "None"] == [
        (str(T0 + d * DAY), str(T0 + (d + 1) * DAY - 1)) for d in range(3)
    ]


def test_an_expired_offset_restarts_its_window_and_nothing_is_lost(small_pages: None) -> None:
    times = [T0 + d * DAY + i * 60_000 for d in range(2) for i in range(35)]
    with reader(portal_with(times), faults="offset=0.3", fault_seed=4) as (sb, hub, _):
        with capture_logs() as logs:
            pages = list(hub.email_events(T0, T0 + 2 * DAY - 1))
        expired = requests.get(f"{sb.url}/__sandbox/stats", timeout=10).json()["faults"].get("offset", 0)
    assert expired > 0
    assert sum(1 for e in logs if e["event"] == "email_events_offset_expired") == expired
    assert {e.event_id for p in pages for e in p.events} == {
        email_event_key(f"e-{i:04d}", t) for i, t in enumerate(times)
    }
    assert [p.through_ms for p in pages if p.through_ms is not None] == [T0 + DAY - 1, T0 + 2 * DAY - 1]


def test_a_window_whose_offsets_always_expire_fails_after_a_bounded_number_of_restarts(small_pages: None) -> None:
    times = [T0 + i * 60_000 for i in range(25)] + [T0 + DAY + i * 60_000 for i in range(5)]
    with reader(portal_with(times), faults="offset=1") as (_, hub, queries):
        read: list[EventPage] = []
        with pytest.raises(RejectedError) as failed:
            read.extend(hub.email_events(T0, T0 + 2 * DAY - 1))
    assert failed.value.status == 400 and "offset" in failed.value.message
    # The first page, then a restart for each refused offset: 1 + 3 restarts, each refused on its second page.
    assert len(queries) == 2 * (1 + engagement.OFFSET_RESTARTS)
    assert all(p.through_ms is None for p in read)  # no window was complete: nothing to checkpoint


def test_a_long_empty_stretch_is_skipped_by_bisection(small_pages: None) -> None:
    times = [T0 + 400 * DAY + i * 1000 for i in range(5)]  # a quiet portal: all in one day, 400 days after start
    with reader(portal_with(times)) as (_, hub, queries):
        pages = list(hub.email_events(T0, T0 + 401 * DAY))
    assert {e.event_id for p in pages for e in p.events} == {
        email_event_key(f"e-{i:04d}", t) for i, t in enumerate(times)
    }
    # log2(400) probes and a window or two, not 400 calls; the skip is a checkpoint too.
    assert len(queries) <= 12
    assert pages[0].events == [] and pages[0].through_ms is not None
    assert T0 + 399 * DAY <= pages[0].through_ms < times[0]
    assert pages[-1].through_ms == T0 + 401 * DAY


def test_nothing_at_all_is_one_checkpoint_after_one_call() -> None:
    with reader(portal_with([])) as (_, hub, queries):
        pages = list(hub.email_events(0, T0))
    assert [(p.events, p.through_ms) for p in pages] == [([], T0)]
    assert len(queries) == 1
