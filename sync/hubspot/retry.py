"""The one retry policy of every HubSpot call (HUBSPOT_API.md, "What to retry").

Retried: 429 (wait out the interval), 423, 477, 5xx but 522/525/526, timeouts and
dropped connections, with exponential backoff and full jitter. Never retried:
the DAILY limit, 401 (the portal pauses), and requests HubSpot rejects (400,
403, 404, 409, 522, 525, 526). Applied once around each call, never in loops.

A wait between attempts (up to a minute, under 429s and timeouts) watches the
caller's stop flag: a stop ends the wait at once with StoppedError.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay

from sync.errors import RetriableError, StoppedError
from sync.hubspot.errors import TransientError

log = structlog.get_logger("leadsync.hubspot")


class RetryPolicy:
    """Backoff settings; `sleep` and `rng` are injectable so tests run instantly and repeatably.

    Without `sleep`, a wait is `stop.wait(seconds)` on the caller's stop flag, so a stop cuts it short."""

    def __init__(
        self,
        attempts: int = 8,
        base_wait: float = 1.0,
        max_wait: float = 60.0,
        give_up_after: float = 600.0,
        sleep: Callable[[float], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.attempts = attempts
        self.base_wait = base_wait
        self.max_wait = max_wait
        self.give_up_after = give_up_after
        self.sleep = sleep
        self.rng = rng or random.Random()

    def wait_seconds(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        backoff = min(self.max_wait, self.base_wait * 2 ** (state.attempt_number - 1))
        jittered = self.rng.uniform(0, backoff)  # full jitter: replicas do not retry in step
        if isinstance(error, TransientError) and error.wait is not None:
            return min(self.max_wait, error.wait + self.rng.uniform(0, 0.25))
        return jittered

    def retrying(self, stop: threading.Event | None = None) -> Retrying:
        """The attempts of one call; `stop` set during a wait ends it with StoppedError."""

        def pause(seconds: float) -> None:
            if stop is not None and stop.is_set():
                raise StoppedError("stopped while waiting to retry a HubSpot call")
            if self.sleep is not None:
                self.sleep(seconds)
            elif stop is not None:
                stop.wait(seconds)
            else:
                time.sleep(seconds)
            if stop is not None and stop.is_set():
                raise StoppedError(f"stopped while waiting {seconds:.1f} s to retry a HubSpot call")

        return Retrying(
            retry=retry_if_exception_type(RetriableError),
            wait=self.wait_seconds,
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.give_up_after),
            sleep=pause,
            reraise=True,
            before_sleep=_log_retry,
        )


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "api_retry",
        attempt=state.attempt_number,
        wait_s=round(wait, 3),
        status=getattr(error, "status", None),
        endpoint=getattr(error, "endpoint", None),
        error=str(error),
    )
