"""The webhook intake of `leadsync run`: verify, parse, filter and queue at once; score in the background.

POST /webhooks/hubspot answers as soon as the delivery is verified and queued (HubSpot gives an endpoint 5 seconds
and retries otherwise): 200 queued, 401 a missing, wrong or stale signature (nothing changes), 400 a body that is
no delivery. A dispatcher takes each portal's contacts once they are due (sync.webhooks.queue) and runs the fast
path (sync.webhooks.fastpath) holding the portal's lock, so it never runs beside a cycle of the same portal.

What is never written here: a portal whose lease another replica holds (its events are dropped, counted and left
to the holder's safety-net poll), a portal this service does not run, and leadsync's own writes coming back as
events (changes of the properties it owns are ignored; a lifecycle stage change to the stage it wrote last too).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import structlog

from sync.config.schema import WebhooksModel
from sync.core.wire import LIFECYCLE_STAGE
from sync.observability import HttpRequest, Metrics
from sync.pipeline import Lease, Portal, read_properties, writable_properties
from sync.ports import Clock, SystemClock
from sync.webhooks.deliveries import ContactEvent, DeliveryError, Seen, parse_delivery
from sync.webhooks.fastpath import CONVERSION_PROPERTIES, FormNames, run_fast_path
from sync.webhooks.queue import IntakeQueue, Pending
from sync.webhooks.signature import SignatureError, Version, verify

log = structlog.get_logger("leadsync.webhooks")

PATH = "/webhooks/hubspot"
LOCK_WAIT_S = 30.0  # a cycle of the portal in flight: wait this long for it, then leave the contacts to it
YIELD_S = 0.05  # between two fast runs of one portal, so a cycle waiting for the lock gets it


class Target(Protocol):
    """A portal the service runs (sync.scheduler.Held): its Portal, its one-run-at-a-time lock, its lease and fence."""

    @property
    def portal(self) -> Portal: ...

    @property
    def lock(self) -> threading.Lock: ...

    @property
    def leased(self) -> bool: ...

    @property
    def lease(self) -> Lease | None: ...  # its fence: the fast path's records and sends are checked against it

    running: threading.Event | None


@dataclass(frozen=True)
class Secret:
    """A portal's webhook settings with its secret read from the environment."""

    secret: str
    versions: tuple[Version, ...]
    url: str | None


class Intake:
    """The receiver (`handle`) and the dispatcher (`start`, `stop`, `drain`) of one service."""

    def __init__(
        self,
        targets: Callable[[], Mapping[int, Target]],
        settings: Callable[[Target], WebhooksModel | None],
        *,
        metrics: Metrics | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        queue: IntakeQueue | None = None,
        workers: int = 4,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.targets = targets
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.environ = environ if environ is not None else os.environ
        self.clock: Clock = clock or SystemClock()
        self.queue = queue if queue is not None else IntakeQueue()
        self.lock_wait_s = lock_wait_s
        self.seen = Seen()
        self._forms: dict[int, FormNames] = {}
        self._busy: set[int] = set()
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="webhooks")
        self._thread: threading.Thread | None = None
        self._warned: set[tuple[int, str]] = set()

    # -- the receiver --

    def handle(self, request: HttpRequest) -> tuple[int, bytes]:
        """One delivery: (status, JSON body). Never raises: a request is answered whatever it holds."""
        try:
            status, answer = self._handle(request)
        except Exception as exc:  # the request boundary: a bug answers 500 (HubSpot retries), the service goes on
            log.exception("webhook_failed", error=f"{type(exc).__name__}: {exc}")
            status, answer = 500, {"error": "internal error"}
        self.metrics.webhook_requests.labels(status=str(status)).inc()
        return status, json.dumps(answer).encode()

    def _handle(self, request: HttpRequest) -> tuple[int, dict[str, object]]:
        by_secret = self._secrets()
        if not by_secret:
            log.warning("webhook_refused", status=404, reason="no portal of this service takes webhooks")
            return 404, {"error": "no portal of this service takes webhooks"}
        now_ms = int(self.clock.now().timestamp() * 1000)
        try:
            secret = self._verified(request, by_secret, now_ms)
        except SignatureError as exc:
            log.warning("webhook_refused", status=401, reason=str(exc))
            return 401, {"error": str(exc)}
        try:
            parsed = parse_delivery(request.body)
        except DeliveryError as exc:
            log.warning("webhook_refused", status=400, reason=str(exc))
            return 400, {"error": str(exc)}
        for problem in parsed.problems:
            log.warning("webhook_event_skipped", reason=problem)
        fresh = self.seen.new(parsed.events)
        counts = self._queue(fresh, set(by_secret[secret]))
        counts["duplicate"] = len(parsed.events) - len(fresh)
        counts["ignored"] = counts.get("ignored", 0) + parsed.ignored
        self.metrics.webhook_pending.set(len(self.queue))
        log.debug("webhook_received", events=len(parsed.events), **counts)
        return 200, {"received": len(parsed.events), **{k: v for k, v in counts.items() if v}}

    def _secrets(self) -> dict[Secret, list[int]]:
        """The portals taking webhooks, by their settings (portals of one app share a secret)."""
        found: dict[Secret, list[int]] = {}
        for portal_id, target in self.targets().items():
            config = self.settings(target)
            if config is None:
                continue
            secret = self.environ.get(config.secret_env, "")
            if not secret:
                self._warn_once(portal_id, "webhook_secret_missing", env=config.secret_env)
                continue
            key = Secret(secret, tuple(config.signatures), config.url)
            found.setdefault(key, []).append(portal_id)
        return found

    def _verified(self, request: HttpRequest, by_secret: Mapping[Secret, list[int]], now_ms: int) -> Secret:
        problem: SignatureError | None = None
        for settings in by_secret:
            uri = _signed_uri(request, settings.url)
            try:
                verify([settings.secret], request.method, uri, request.body, request.headers, now_ms, settings.versions)
                return settings
            except SignatureError as exc:
                problem = problem or exc
        raise problem or SignatureError("no signature")

    def _queue(self, events: Sequence[ContactEvent], allowed: set[int]) -> dict[str, int]:
        counts: dict[str, int] = {}
        targets = self.targets()
        for event in events:
            outcome = self._one(event, targets.get(event.portal_id) if event.portal_id in allowed else None)
            counts[outcome] = counts.get(outcome, 0) + 1
            name = _name(targets.get(event.portal_id)) or str(event.portal_id)
            self.metrics.webhook_events.labels(portal=name, outcome=outcome).inc()
        return counts

    def _one(self, event: ContactEvent, target: Target | None) -> str:
        if target is None:
            # Another portal, or one signed with another app's secret: not ours to write.
            self._warn_once(event.portal_id, "webhook_unknown_portal")
            return "unknown_portal"
        if not target.leased:
            # Another replica holds it: never written here; the holder's poll sees the change.
            self._warn_once(event.portal_id, "webhook_not_leased")
            return "not_leased"
        must, check = _relevance(event, target.portal)
        if not must and check is None:
            return "ignored"
        if not self.queue.put(event.portal_id, event.contact_id, must, check):
            self._warn_once(event.portal_id, "webhook_queue_full", capacity=self.queue.capacity)
            return "dropped_full"
        self._warned.discard((event.portal_id, "webhook_queue_full"))
        self._warned.discard((event.portal_id, "webhook_not_leased"))
        return "queued"

    def _warn_once(self, portal_id: int, event: str, **fields: object) -> None:
        if (portal_id, event) not in self._warned:
            self._warned.add((portal_id, event))
            log.warning(event, portal_id=portal_id, **fields)

    # -- the dispatcher --

    def start(self) -> Intake:
        if self._thread is None:
            self._thread = threading.Thread(target=self._dispatch, name="webhooks-dispatch", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._pool.shutdown(wait=True)

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._busy_lock:
                busy = set(self._busy)
            for portal_id in self.queue.wait(0.5, busy):
                with self._busy_lock:
                    if portal_id in self._busy:
                        continue
                    self._busy.add(portal_id)
                self._pool.submit(self._run_guarded, portal_id)

    def _run_guarded(self, portal_id: int) -> None:
        try:
            self.process(portal_id)
        except Exception as exc:  # the job boundary: a failing fast run never stops the intake
            log.exception("webhook_run_crashed", portal_id=portal_id, error=f"{type(exc).__name__}: {exc}")
        finally:
            time.sleep(YIELD_S)
            with self._busy_lock:
                self._busy.discard(portal_id)
            self.queue.wake()

    def drain(self) -> None:
        """Run every portal's due contacts now, in this thread (tests, and a service without a dispatcher)."""
        while True:
            ready, _ = self.queue.due()
            if not ready:
                return
            for portal_id in ready:
                self.process(portal_id)

    def process(self, portal_id: int) -> None:
        """One batch of one portal's contacts through the fast path, under the portal's lock and lease."""
        taken = self.queue.take(portal_id)
        self.metrics.webhook_pending.set(len(self.queue))
        if not taken:
            return
        target = self.targets().get(portal_id)
        if target is None or not target.leased:
            self._drop(portal_id, target, len(taken))
            return
        if not target.lock.acquire(timeout=self.lock_wait_s):
            kept = self.queue.put_back(portal_id, taken)  # a long cycle is running: try again after it
            log.info("webhook_portal_busy", portal=_name(target), contacts=len(taken), requeued=kept)
            return
        try:
            # The lease may have gone while we waited; its fence is checked again before each send and in the
            # transaction that completes the writes.
            if not target.leased or self._stop.is_set():
                self._drop(portal_id, target, len(taken))
                return
            self._run(target, taken)
        finally:
            target.lock.release()

    def _run(self, target: Target, taken: list[tuple[str, Pending]]) -> None:
        portal = target.portal
        ids, own = _not_own_writes(portal, taken)
        name = _name(target)
        if own:
            self.metrics.webhook_events.labels(portal=name, outcome="own_write").inc(len(own))
        if not ids:
            return
        forms = self._forms.setdefault(portal.id, FormNames())
        stop = threading.Event()
        target.running = stop
        try:
            summary = run_fast_path(portal, ids, forms, stop, lease=target.lease)
        finally:
            target.running = None
        # Counted like a run, but the portal's last success stays its poll's: a fast run must not hide a failing poll.
        metrics = self.metrics
        metrics.runs.labels(portal=name, kind="webhook", status=summary.status).inc()
        if summary.status != "ok":
            metrics.failures.labels(portal=name).inc()
        metrics.written.labels(portal=name).inc(summary.counts.get("written", 0))
        metrics.dead.labels(portal=name).inc(summary.counts.get("dead_lettered", 0))
        metrics.count_api_calls(name, portal.api_calls)

    def _drop(self, portal_id: int, target: Target | None, n: int) -> None:
        name = _name(target) or str(portal_id)
        self.metrics.webhook_events.labels(portal=name, outcome="not_leased").inc(n)
        log.info("webhook_contacts_dropped", portal=name, contacts=n, reason="not leased here: left to the poll")


def _relevance(event: ContactEvent, portal: Portal) -> tuple[bool, tuple[str, str] | None]:
    """(must rescore, or a change to compare with leadsync's last write); (False, None): nothing to do."""
    if event.kind == "creation":
        return True, None
    prop = event.prop
    if prop == LIFECYCLE_STAGE:
        return False, (prop, event.value)  # ours if it is the stage leadsync wrote last
    if prop in writable_properties(portal.rules):
        return False, None  # leadsync's own output coming back: never a reason to write again
    if prop in CONVERSION_PROPERTIES or prop in read_properties(portal.rules):
        return True, None
    return False, None  # a property no rule reads


def _not_own_writes(portal: Portal, taken: list[tuple[str, Pending]]) -> tuple[list[str], list[str]]:
    """The contacts to run, and those whose only changes are values leadsync wrote itself."""
    to_check = [cid for cid, p in taken if not p.must]
    stages = portal.store.written_stages(portal.id, to_check) if to_check else {}
    values = portal.store.written_values(portal.id, to_check) if to_check else {}
    run: list[str] = []
    own: list[str] = []
    for cid, pending in taken:
        if pending.must:
            run.append(cid)
            continue
        ours = {**values.get(cid, {}), **({LIFECYCLE_STAGE: stages[cid]} if cid in stages else {})}
        if all(ours.get(name) == value for name, value in pending.checks.items()):
            own.append(cid)
        else:
            run.append(cid)
    return run, own


def _signed_uri(request: HttpRequest, url: str | None) -> str:
    """The URI HubSpot signed: the configured public URL, else the one the request came to (behind a TLS ingress,
    from its X-Forwarded-Proto and X-Forwarded-Host)."""
    query = urlsplit(request.path).query
    if url:
        return url + (f"?{query}" if query else "")
    headers = request.headers
    proto = (headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
    host = (headers.get("x-forwarded-host") or headers.get("host") or "").split(",")[0].strip()
    return f"{proto}://{host}{request.path}"


def _name(target: Target | None) -> str:
    return target.portal.config.portal.name if target is not None else ""


def settings_of(config: object) -> WebhooksModel | None:
    """A portal config's `webhooks:` section (None when it has none)."""
    found = getattr(config, "webhooks", None)
    return found if isinstance(found, WebhooksModel) else None
