"""The per-portal rate limiter on a fake clock: pacing, search per second, daily reserve, header adaptation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sync.hubspot.errors import DailyLimitError
from sync.hubspot.limits import EDGE_S, SLACK, Budget, RateLimiter
from tests.fakes import ManualClock


def limiter(
    per_10s: int = 100, daily: int = 1_000_000, reserve: float = 20.0, today: Callable[[], str] = lambda: "2026-11-01"
) -> tuple[RateLimiter, ManualClock]:
    clock = ManualClock(1000.0)
    return RateLimiter(Budget(per_10s, daily, reserve, 5), clock=clock.monotonic, sleep=clock.sleep, today=today), clock


def granted_in(lim: RateLimiter, clock: ManualClock, seconds: float) -> int:
    """How many requests the limiter lets through in `seconds`, each taking a millisecond."""
    start, count = clock.monotonic(), 0
    while True:
        lim.acquire()
        if clock.monotonic() - start >= seconds:
            return count
        count += 1
        clock.advance(0.001)


def test_a_tenth_of_the_budget_goes_at_once_then_requests_are_spread() -> None:
    lim, clock = limiter(per_10s=100)
    for _ in range(10):
        lim.acquire()
    assert clock.slept == 0
    lim.acquire()
    assert clock.slept == pytest.approx(1.0)


@pytest.mark.parametrize("seconds", [10, 60])
def test_sustained_rate_stays_within_the_budget_and_near_it(seconds: int) -> None:
    lim, clock = limiter(per_10s=100)
    sent: list[float] = []
    start = clock.monotonic()
    while clock.monotonic() - start < seconds:
        lim.acquire()
        sent.append(clock.monotonic())
        clock.advance(0.001)  # each request takes a millisecond
    for i, t in enumerate(sent):  # any 10-second window holds at most the budget
        assert sum(1 for u in sent[i:] if u < t + 10) <= 100
    assert len(sent) / (seconds / 10) >= 0.9 * 100


def test_searches_are_limited_per_second_apart_from_other_calls() -> None:
    lim, clock = limiter()
    for _ in range(5):
        lim.acquire(search=True)
    assert clock.slept == 0
    lim.acquire(search=True)
    assert clock.slept == pytest.approx(1 + EDGE_S)
    lim.acquire()  # a non-search call is not held by the search window
    assert clock.slept == pytest.approx(1 + EDGE_S)


def test_the_daily_reserve_is_kept_for_other_integrations() -> None:
    lim, _ = limiter(per_10s=10_000, daily=100, reserve=20)
    for _ in range(80):
        lim.acquire()
    with pytest.raises(DailyLimitError):
        lim.acquire()


def test_hubspots_daily_remaining_header_counts_other_integrations_too() -> None:
    lim, _ = limiter(daily=1000, reserve=20)
    lim.acquire()
    lim.observe({"X-HubSpot-RateLimit-Daily": "1000", "X-HubSpot-RateLimit-Daily-Remaining": "200"})
    with pytest.raises(DailyLimitError):
        lim.acquire()


def test_the_day_rolls_over() -> None:
    day = ["2026-11-23"]
    lim, _ = limiter(per_10s=10_000, daily=10, reserve=0, today=lambda: day[0])
    for _ in range(10):
        lim.acquire()
    day[0] = "2026-11-24"
    lim.acquire()
    assert lim.daily_used == 1


def test_other_integrations_seen_in_headers_shrink_our_share() -> None:
    lim, clock = limiter(per_10s=100)
    lim.acquire()
    # HubSpot says 41 of 100 are used in the window; we sent 1: others sent 40.
    lim.observe({"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "59"})
    assert granted_in(lim, clock, 9.9) <= 100 - 40 - SLACK


def test_a_lower_max_in_the_headers_wins_over_the_config() -> None:
    lim, clock = limiter(per_10s=190)
    lim.observe({"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Remaining": "100"})
    assert 90 <= granted_in(lim, clock, 9.9) <= 100 - SLACK
