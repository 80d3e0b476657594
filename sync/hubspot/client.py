"""One place where leadsync talks HTTP to HubSpot.

Every call, through the SDK or the `requests.Session`, goes the same way: the
portal gate (paused after a 401), the rate limiter, a (connect, read) timeout,
classification of the answer by status into the error classes of
`sync.hubspot.errors`, and the one retry policy around it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import structlog
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.companies.exceptions import ApiException as CompaniesApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.lists.exceptions import ApiException as ListsApiException
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.marketing.forms.exceptions import ApiException as FormsApiException

from sync.hubspot.errors import (
    ApiCallError,
    AuthError,
    DailyLimitError,
    PortalPausedError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from sync.hubspot.limits import RateLimiter
from sync.hubspot.retry import RetryPolicy

log = structlog.get_logger("leadsync.hubspot")

# The SDK raises a different ApiException class per API module; all carry .status, .body, .headers.
SDK_ERRORS = (
    ContactsApiException,
    PropertiesApiException,
    ListsApiException,
    FormsApiException,
    CompaniesApiException,
    AssociationsApiException,
)
NEVER_RETRIED_5XX = frozenset({522, 525, 526})
# A call that hangs holds a stop until it times out: short enough that SIGTERM ends a run within 30 s.
READ_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any


class HubSpotClient:
    """The SDK API objects (built once) and a requests.Session, behind one call path."""

    def __init__(
        self,
        token: str,
        base_url: str,
        limiter: RateLimiter,
        policy: RetryPolicy | None = None,
        *,
        timeout: tuple[float, float] = (5.0, READ_TIMEOUT_S),
        portal: str = "",
        stop: threading.Event | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        # The stop flag of the run using this client (Cycle.run sets it): a stop cuts retry waits short.
        self.stop = stop or threading.Event()
        self.log = log.bind(portal=portal) if portal else log
        # urllib3 must not retry on its own: retries happen in one place (RetryPolicy), counted and paced.
        sdk = HubSpot(access_token=token, host=self.base_url, retry=urllib3.Retry(total=0, redirect=0))
        # Each attribute access on the SDK builds a new connection pool: take the API objects once.
        crm = sdk.crm
        self.contacts_basic = crm.contacts.basic_api
        self.contacts_search = crm.contacts.search_api
        self.contacts_batch = crm.contacts.batch_api
        self.companies_basic = crm.companies.basic_api
        self.companies_search = crm.companies.search_api
        self.companies_batch = crm.companies.batch_api
        self.associations_batch = crm.associations.v4.batch_api
        self.properties_core = crm.properties.core_api
        self.properties_groups = crm.properties.groups_api
        self.list_memberships = crm.lists.memberships_api
        self.lists_api = crm.lists.lists_api
        self.forms_api = sdk.marketing.forms.forms_api
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self.paused: str | None = None
        self.calls: Counter[tuple[str, int]] = Counter()  # (endpoint, status), 0 for no answer

    # -- the call path --

    def sdk(
        self, endpoint: str, method: Callable[..., Any], *args: Any, search: bool = False, **kwargs: Any
    ) -> Response:
        """Call one SDK method (raw response: the JSON is parsed here, headers kept)."""

        def once() -> Response:
            self._gate()
            self.limiter.acquire(search=search)
            try:
                raw = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
                data = raw.data  # read inside: a reset while reading the body is a passing fault too
            except SDK_ERRORS as exc:
                if not exc.status:  # the SDK turns TLS errors into status 0: no answer at all
                    self.calls[(endpoint, 0)] += 1
                    raise TransientError(endpoint, 0, f"no answer from {self.base_url}: {exc.reason}") from exc
                raise self._failed(endpoint, int(exc.status), exc.body, dict(exc.headers or {})) from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self.calls[(endpoint, 0)] += 1
                raise TransientError(endpoint, 0, f"no answer from {self.base_url}: {_root_cause(exc)}") from exc
            return self._ok(endpoint, raw.status, dict(raw.headers), data)

        return self.call(once)

    def get(self, endpoint: str, path: str, params: Mapping[str, Any]) -> Response:
        """A GET through the requests.Session, for the endpoints the SDK lacks."""

        def once() -> Response:
            self._gate()
            self.limiter.acquire()
            try:
                raw = self.session.get(f"{self.base_url}{path}", params=dict(params), timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                self.calls[(endpoint, 0)] += 1
                raise TransientError(endpoint, 0, f"no answer from {self.base_url}: {_root_cause(exc)}") from exc
            if not 200 <= raw.status_code <= 299:
                raise self._failed(endpoint, raw.status_code, raw.content, dict(raw.headers))
            return self._ok(endpoint, raw.status_code, dict(raw.headers), raw.content)

        return self.call(once)

    def call(self, once: Callable[[], Response]) -> Response:
        for attempt in self.policy.retrying(self.stop):
            with attempt:
                return once()
        raise AssertionError("unreachable: the retry policy re-raises the last error")  # pragma: no cover

    # -- classification --

    def _gate(self) -> None:
        if self.paused is not None:
            raise PortalPausedError(f"portal paused: {self.paused}")

    def _ok(self, endpoint: str, status: int, headers: dict[str, str], data: bytes) -> Response:
        self.calls[(endpoint, status)] += 1
        self.limiter.observe(headers)
        try:
            body = json.loads(data) if data else None
        except ValueError as exc:
            raise TransientError(endpoint, status, "the answer is not JSON (cut off?)") from exc
        return Response(status, headers, body)

    def _failed(self, endpoint: str, status: int, raw_body: Any, headers: Mapping[str, str]) -> ApiCallError:
        """The error to raise for a non-2xx answer (HUBSPOT_API.md: what to retry, what never)."""
        self.calls[(endpoint, status)] += 1
        self.limiter.observe(headers)
        body = _parse(raw_body)
        message = str(body.get("message") or f"HTTP {status}") if isinstance(body, dict) else f"HTTP {status}"
        category = str(body.get("category") or "") if isinstance(body, dict) else ""
        lowered = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            policy = str(body.get("policyName") or "") if isinstance(body, dict) else ""
            if policy == "DAILY":
                self.log.error("daily_limit_reached", endpoint=endpoint, message=message)
                self.limiter.daily_used = max(self.limiter.daily_used, self.limiter.budget.daily)  # no more today
                return DailyLimitError(endpoint, status, message, body)
            if policy == "SECONDLY" or ("secondly limit" in message and "ten" not in message):
                return RateLimitedError(endpoint, policy or "SECONDLY", message, wait=1.0)
            interval = _number(lowered.get("x-hubspot-ratelimit-interval-milliseconds"))
            wait = (interval or 10_000) / 1000
            self.log.warning("rate_limited", endpoint=endpoint, policy=policy, wait_s=wait)
            return RateLimitedError(endpoint, policy or "TEN_SECONDLY_ROLLING", message, wait=wait)
        if status == 401:
            self.paused = "HubSpot answered 401: the token is invalid, expired or lacks access"
            self.log.error("portal_paused", reason="unauthorized", endpoint=endpoint, message=message)
            return AuthError(endpoint, status, message, body, category)
        if status == 423:
            return TransientError(endpoint, status, message, body, wait=2.0)
        if status == 477:
            return TransientError(endpoint, status, message, body, wait=_number(lowered.get("retry-after")) or 2.0)
        if status >= 500 and status not in NEVER_RETRIED_5XX:
            return TransientError(endpoint, status, message, body)
        return RejectedError(endpoint, status, message, body, category)

    def resume(self) -> None:
        """Lift a pause (an operator fixed the token)."""
        self.paused = None


def _parse(raw: Any) -> Any:
    if isinstance(raw, bytes | str) and raw:
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _root_cause(exc: BaseException) -> str:
    """The innermost reason a request got no answer ("ConnectionRefusedError", "ReadTimeoutError"...)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = exc.__cause__ or exc.__context__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return type(exc).__name__
