"""Per-portal rate limiter: HubSpot's ten-second window, the search per-second limit, the daily budget.

Requests are paced so that a steady sync never sees a 429: a sliding window
of our own send times, a safety margin for requests still in flight, and the
headers HubSpot sends back (`X-HubSpot-RateLimit-Remaining` tells how much of
the app's budget other integrations use). Searches have their own per-second
limit and send no headers. The daily budget keeps `daily_reserve_pct` for the
portal's other integrations; it resets at midnight in the portal's time zone
(UTC until the portal's account details say which, `count_by`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from sync.hubspot.errors import DailyLimitError
from sync.ports import MonotonicSeconds, Sleep

log = structlog.get_logger("leadsync.hubspot")

WINDOW_S = 10.0
SEARCH_WINDOW_S = 1.0
# Requests are also spread over the window (at most a tenth of it per second), so a long run
# does not burst the whole budget and then stall, crowding out the portal's other integrations.
SPREAD_S = 1.0
# Our clock and HubSpot's differ by the time a request is in flight: count a request a
# little longer than the window and keep one slot free, so edges never tip into a 429.
EDGE_S = 0.15
SLACK = 1


@dataclass(frozen=True)
class Budget:
    per_10s: int
    daily: int
    daily_reserve_pct: float = 20.0
    search_per_second: int = 5

    @property
    def daily_usable(self) -> int:
        return int(self.daily * (1 - self.daily_reserve_pct / 100))


class RateLimiter:
    def __init__(
        self,
        budget: Budget,
        *,
        daily_used: int = 0,
        clock: MonotonicSeconds = time.monotonic,
        sleep: Sleep = time.sleep,
        today: Callable[[], str] = lambda: datetime.now(UTC).date().isoformat(),
    ) -> None:
        self.budget = budget
        self._clock = clock
        self._sleep = sleep
        self._today = today
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
        self._spread: deque[float] = deque()
        self._searches: deque[float] = deque()
        self._external = 0  # requests in the window that other integrations made, per the headers
        self._header_max: int | None = None
        self._day = today()
        self.daily_used = daily_used
        self._daily_remaining: int | None = None  # HubSpot's own count, when it sends one
        self.waited_s = 0.0

    def count_by(self, today: Callable[[], str], used_today: int) -> None:
        """From now on count the daily budget by `today` (HubSpot resets it at midnight in the portal's time zone,
        known only once its account details are read); `used_today`: what the portal already used that day."""
        with self._lock:
            self._today = today
            self._day = today()
            self.daily_used = used_today

    def _limit(self) -> int:
        limit = self.budget.per_10s if self._header_max is None else min(self.budget.per_10s, self._header_max)
        return max(1, limit - self._external - SLACK)

    def _check_daily(self) -> None:
        today = self._today()
        if today != self._day:
            self._day, self.daily_used, self._daily_remaining = today, 0, None
        reserve = self.budget.daily - self.budget.daily_usable
        spent = self.daily_used >= self.budget.daily_usable
        if self._daily_remaining is not None and self._daily_remaining <= reserve:
            spent = True
        if spent:
            raise DailyLimitError(
                "rate limiter",
                0,
                f"daily budget used up ({self.budget.daily_reserve_pct:g}% kept for other integrations)",
            )

    def acquire(self, search: bool = False) -> None:
        """Block until one more request fits the budgets; DailyLimitError when the day's share is spent."""
        with self._lock:
            self._check_daily()
            while True:
                now = self._clock()
                if search:
                    pause = _room(self._searches, now, SEARCH_WINDOW_S + EDGE_S, self.budget.search_per_second)
                else:
                    limit = self._limit()
                    pause = max(
                        _room(self._sent, now, WINDOW_S + EDGE_S, limit),
                        _room(self._spread, now, SPREAD_S, max(1, -(-limit // 10))),
                    )
                if pause <= 0:
                    (self._searches if search else self._sent).append(now)
                    if not search:
                        self._spread.append(now)
                    self.daily_used += 1
                    return
                self.waited_s += pause
                self._sleep(max(pause, 0.001))

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from HubSpot's rate-limit headers (absent on search responses)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        top = _int(lowered.get("x-hubspot-ratelimit-max"))
        remaining = _int(lowered.get("x-hubspot-ratelimit-remaining"))
        daily_remaining = _int(lowered.get("x-hubspot-ratelimit-daily-remaining"))
        with self._lock:
            if top is not None:
                self._header_max = top
            if top is not None and remaining is not None:
                now = self._clock()
                ours = sum(1 for t in self._sent if t > now - WINDOW_S)
                self._external = max(0, (top - remaining) - ours)
            if daily_remaining is not None:
                self._daily_remaining = daily_remaining

    def headroom(self) -> float:
        """The share of the ten-second budget not used right now (0 = spent)."""
        with self._lock:
            now = self._clock()
            used = sum(1 for t in self._sent if t > now - WINDOW_S)
            return max(0.0, 1 - used / max(1, self._limit()))

    def backoff(self, seconds: float) -> None:
        """After a 429 we did not foresee: hold every caller of this portal for `seconds`."""
        with self._lock:
            log.warning("rate_limit_backoff", wait_s=round(seconds, 3))
            self.waited_s += seconds
            self._sleep(seconds)


def _room(window: deque[float], now: float, span: float, limit: int) -> float:
    """0 when one more request fits `limit` per `span`, else the seconds until one does."""
    while window and window[0] <= now - span:
        window.popleft()
    return 0.0 if len(window) < limit else window[0] + span - now


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
