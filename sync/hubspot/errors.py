"""HubSpot API failures, classified by what the caller should do next (sync.errors)."""

from __future__ import annotations

from typing import Any

from sync.errors import BudgetExhaustedError, PausedError, RetriableError, SyncError


class ApiCallError(SyncError):
    """A HubSpot call failed; `status` is the HTTP status (0: no response at all)."""

    def __init__(self, endpoint: str, status: int, message: str, body: Any = None, category: str = "") -> None:
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.body = body
        self.category = category
        super().__init__(f"{endpoint}: HTTP {status}: {message}" if status else f"{endpoint}: {message}")


class TransientError(ApiCallError, RetriableError):
    """A passing fault (5xx, 423, 477, a timeout, a reset connection): retry after a pause."""

    def __init__(self, endpoint: str, status: int, message: str, body: Any = None, wait: float | None = None) -> None:
        super().__init__(endpoint, status, message, body)
        self.wait = wait  # seconds the server asked for (Retry-After), if any


class RateLimitedError(TransientError):
    """A 429 for the ten-secondly or per-second budget: wait the interval out, then retry."""

    def __init__(self, endpoint: str, policy: str, message: str, wait: float) -> None:
        super().__init__(endpoint, 429, message, wait=wait)
        self.policy = policy


class DailyLimitError(ApiCallError, BudgetExhaustedError):
    """The account's daily budget (or our share of it) is spent: stop this portal until tomorrow."""


class AuthError(ApiCallError, PausedError):
    """401: the token is wrong, expired or revoked. The portal is paused until an operator acts."""


class PortalPausedError(PausedError):
    """The portal was paused (after a 401); no call is made until it is resumed."""


class RejectedError(ApiCallError):
    """HubSpot refused the request itself (400, 403, 404, 409 ...): retrying would give the same answer.

    The caller decides what that means: a missing property to create, a batch to split, a dead letter.
    """
