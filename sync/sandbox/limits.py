"""HubSpot's rate limits, per token: a rolling 10-second window, search per second, a daily budget.

- Every non-search API request counts in the 10-second window and the daily budget.
- Search counts in its own 1-second window (5/s) and in the daily budget, not in the 10 s window.
- A request refused with 429 counts nowhere.
- The day resets at midnight UTC (HubSpot resets at midnight in the account's time zone).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

TEN_SECONDLY = "TEN_SECONDLY_ROLLING"
SECONDLY = "SECONDLY"
DAILY = "DAILY"
MESSAGES = {
    TEN_SECONDLY: "You have reached your ten_secondly_rolling limit.",
    SECONDLY: "You have reached your secondly limit.",
    DAILY: "You have reached your daily limit.",
}
WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class RateLimitSpec:
    """None for a limit means unlimited."""

    per_10s: int | None = 190
    search_per_second: int | None = 5
    daily: int | None = 625_000

    @classmethod
    def parse(cls, text: str) -> RateLimitSpec:
        """'per10s=190,search=5,daily=625000', a tier name, or 'off'; keys left out keep Professional's values."""
        text = text.strip().lower()
        if text in TIERS:
            return TIERS[text]
        values: dict[str, int | None] = {}
        for part in text.split(","):
            key, sep, raw = part.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or key not in _KEYS:
                raise ValueError(
                    f"bad rate limit {part.strip()!r}: use per10s=N,search=N,daily=N (N or 'off'), "
                    f"or one of {', '.join(TIERS)}"
                )
            if raw == "off":
                values[_KEYS[key]] = None
            elif raw.isascii() and raw.isdigit() and int(raw) > 0:
                values[_KEYS[key]] = int(raw)
            else:
                raise ValueError(f"bad rate limit {part.strip()!r}: the value must be a positive integer or 'off'")
        return cls(**values)

    def describe(self) -> str:
        def show(value: int | None) -> str:
            return "off" if value is None else str(value)

        return f"per10s={show(self.per_10s)},search={show(self.search_per_second)},daily={show(self.daily)}"


_KEYS = {"per10s": "per_10s", "search": "search_per_second", "daily": "daily"}
OFF = RateLimitSpec(None, None, None)
PROFESSIONAL = RateLimitSpec()
TIERS = {
    "off": OFF,
    "free": RateLimitSpec(100, 5, 250_000),
    "starter": RateLimitSpec(100, 5, 250_000),
    "professional": PROFESSIONAL,
    "enterprise": RateLimitSpec(190, 5, 1_000_000),
}


@dataclass(frozen=True)
class Verdict:
    """`policy` is None when the request may go on; `headers` go on the answer either way."""

    policy: str | None
    headers: dict[str, str]


class _Budget:
    def __init__(self) -> None:
        self.window: deque[float] = deque()
        self.search: deque[float] = deque()
        self.day = -1
        self.used_today = 0


class RateLimiter:
    def __init__(self, spec: RateLimitSpec, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._spec = spec
        self._budgets: dict[str, _Budget] = {}

    @property
    def spec(self) -> RateLimitSpec:
        return self._spec

    def configure(self, spec: RateLimitSpec) -> None:
        """A new spec starts every window afresh."""
        with self._lock:
            self._spec = spec
            self._budgets.clear()

    def admit(self, token: str, *, search: bool, count: bool = True) -> Verdict:
        """Whether a request may go on (counting it when it may); count=False only reads the headers."""
        spec = self._spec
        now = self._clock()
        with self._lock:
            budget = self._budgets.setdefault(token, _Budget())
            day = int(now // 86_400)
            if day != budget.day:
                budget.day, budget.used_today = day, 0
            _expire(budget.window, now - WINDOW_SECONDS)
            _expire(budget.search, now - 1.0)
            policy: str | None = None
            if spec.daily is not None and budget.used_today >= spec.daily:
                policy = DAILY
            elif search and spec.search_per_second is not None and len(budget.search) >= spec.search_per_second:
                policy = SECONDLY
            elif not search and spec.per_10s is not None and len(budget.window) >= spec.per_10s:
                policy = TEN_SECONDLY
            if policy is None and count:
                budget.used_today += 1
                (budget.search if search else budget.window).append(now)
            # HubSpot quirk: search answers carry no rate-limit headers.
            headers = {} if search else self._headers(spec, budget)
        return Verdict(policy, headers)

    @staticmethod
    def _headers(spec: RateLimitSpec, budget: _Budget) -> dict[str, str]:
        headers: dict[str, str] = {}
        if spec.per_10s is not None:
            headers["X-HubSpot-RateLimit-Max"] = str(spec.per_10s)
            headers["X-HubSpot-RateLimit-Remaining"] = str(max(0, spec.per_10s - len(budget.window)))
            headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(int(WINDOW_SECONDS * 1000))
        if spec.daily is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(spec.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, spec.daily - budget.used_today))
        return headers


def _expire(window: deque[float], cutoff: float) -> None:
    while window and window[0] <= cutoff:
        window.popleft()
