"""Structured logs (JSON events with bound context; tokens never, emails only when allowed, hashed
otherwise), Prometheus metrics, and the service's health and metrics endpoint."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json as json_module
import logging
import os
import secrets
import sys
import threading
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from sync.errors import ConfigError, ConfigProblem

_SECRET_KEYS = frozenset({"token", "access_token", "authorization", "password", "secret", "webhook_url"})


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A last line of defence: a field named like a secret is never printed."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "[redacted]"
    return event


LOG_KEY_ENV = "LEADSYNC_LOG_KEY"
LOG_KEY_MIN_CHARS = 16


class EmailHasher:
    """Emails as a portal's config allows them in logs: as is, or `hmac:` + 16 hex of HMAC-SHA256 under the
    installation's secret key. The same address gives the same hash within an installation, so log lines
    correlate; without the key, a list of candidate addresses cannot be matched against the logs."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("an email hashing key cannot be empty")
        self._key = key

    @classmethod
    def for_installation(cls, stored_key: Callable[[], bytes] | None = None) -> EmailHasher:
        """$LEADSYNC_LOG_KEY when set; else the key kept in the state store (`stored_key`); else, with no
        store (the operator tools), a random key of this process: its hashes correlate within one output."""
        key = log_key_from_env()
        if key is not None:
            return cls(key)
        return cls(stored_key() if stored_key is not None else secrets.token_bytes(32))

    def __call__(self, email: str, allowed: bool) -> str:
        if allowed or not email:
            return email
        digest = hmac.new(self._key, email.strip().lower().encode(), hashlib.sha256).hexdigest()
        return "hmac:" + digest[:16]

    def __repr__(self) -> str:
        return "EmailHasher(key=[redacted])"


def log_key_from_env() -> bytes | None:
    """The key in $LEADSYNC_LOG_KEY (None when unset or empty); ConfigError when it is too short to be secret."""
    text = os.environ.get(LOG_KEY_ENV, "").strip()
    if not text:
        return None
    if len(text) < LOG_KEY_MIN_CHARS:
        message = f"{LOG_KEY_ENV} is {len(text)} characters: give at least {LOG_KEY_MIN_CHARS} (e.g. 64 hex digits)"
        raise ConfigError([ConfigProblem(LOG_KEY_ENV, None, "", message)])
    return text.encode()


@functools.cache
def _tool_hasher() -> EmailHasher:
    return EmailHasher.for_installation()


def email_for_log(email: str, allowed: bool) -> str:
    """For the operator tools, which have no state store: $LEADSYNC_LOG_KEY, else a key of this process.
    The sync worker hashes with its Portal's `log_email` (the installation's key)."""
    return _tool_hasher()(email, allowed)


def configure_logging(*, json: bool = True, level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog to `stream` (stdout) as JSON lines, or as readable lines on a terminal."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


class Metrics:
    """The service's Prometheus metrics, in a registry of their own.

    Counters are named with `_total` here as on /metrics (prometheus_client would add it anyway), and only
    ever go up: a rate() over them survives a portal file reload, which opens a new HubSpot client whose own
    call counts start again at zero."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "leadsync_runs_total", "Sync runs by portal, kind and outcome", ["portal", "kind", "status"], registry=r
        )
        self.failures = Counter("leadsync_run_failures_total", "Runs that failed or paused", ["portal"], registry=r)
        self.written = Counter("leadsync_contacts_written_total", "Contacts written to HubSpot", ["portal"], registry=r)
        self.dead = Counter("leadsync_dead_letters_total", "Writes HubSpot would not take", ["portal"], registry=r)
        self.api_calls = Counter(
            "leadsync_api_calls_total",
            "HubSpot API calls by endpoint and HTTP status (0: no answer)",
            ["portal", "endpoint", "status"],
            registry=r,
        )
        self.headroom = Gauge(
            "leadsync_rate_limit_headroom",
            "Share of the ten-second budget left after the last run",
            ["portal"],
            registry=r,
        )
        self.last_success = Gauge(
            "leadsync_last_success_timestamp_seconds",
            "When the portal last synced successfully",
            ["portal"],
            registry=r,
        )
        self.leased = Gauge(
            "leadsync_portal_leased", "1 when this replica holds the portal's lease", ["portal"], registry=r
        )
        self.config_errors = Gauge(
            "leadsync_portal_config_errors",
            "1 while the portal file does not load (its portal does not run), 0 once it does",
            ["file"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "leadsync_webhook_requests_total",
            "Webhook deliveries received, by HTTP answer (200 queued, 401 bad or stale signature, 400 not a delivery)",
            ["status"],
            registry=r,
        )
        self.webhook_events = Counter(
            "leadsync_webhook_events_total",
            "Webhook events by portal and outcome (queued, duplicate, ignored, own_write, not_leased, unknown_portal, "
            "dropped_full: the last four are left to the safety-net poll)",
            ["portal", "outcome"],
            registry=r,
        )
        self.webhook_pending = Gauge(
            "leadsync_webhook_contacts_pending", "Contacts waiting for the webhook fast path", registry=r
        )
        self.replicas_live = Gauge(
            "leadsync_replicas_live", "Replicas heartbeating in the state store, as this one last saw", registry=r
        )
        self.portals_held = Gauge("leadsync_portals_held", "Portal leases this replica holds", registry=r)
        self.portal_share = Gauge(
            "leadsync_portal_share", "The most portals this replica may hold: its fair share", registry=r
        )
        # Per portal: the client whose call counts were last seen, and those counts.
        self._calls_seen: dict[str, tuple[object, dict[tuple[str, int], int]]] = {}
        self._lock = threading.Lock()

    def record(
        self,
        portal: str,
        kind: str,
        status: str,
        counts: Mapping[str, int],
        api_calls: Callable[[], Mapping[tuple[str, int], int]],
        headroom: float | None = None,
    ) -> None:
        """One run's outcome. `api_calls` gives the portal's calls since it was opened (its client's counts)."""
        self.runs.labels(portal=portal, kind=kind, status=status).inc()
        if status != "ok":
            self.failures.labels(portal=portal).inc()
        else:
            self.last_success.labels(portal=portal).set_to_current_time()
        self.written.labels(portal=portal).inc(counts.get("written", 0))
        self.dead.labels(portal=portal).inc(counts.get("dead_lettered", 0))
        self.count_api_calls(portal, api_calls)
        if headroom is not None:
            self.headroom.labels(portal=portal).set(headroom)

    def count_api_calls(self, portal: str, api_calls: Callable[[], Mapping[tuple[str, int], int]]) -> None:
        """Add the calls made since the last look. A reloaded portal has a new client (a new `api_calls`),
        whose counts start from zero: all of them are new."""
        calls = dict(api_calls())
        with self._lock:
            source, seen = self._calls_seen.get(portal, (None, {}))
            if source != api_calls:  # (a bound method is a new object at each look, but compares equal)
                seen = {}
            for (endpoint, code), n in calls.items():
                new = n - seen.get((endpoint, code), 0)
                if new > 0:
                    self.api_calls.labels(portal=portal, endpoint=endpoint, status=str(code)).inc(new)
            self._calls_seen[portal] = (api_calls, calls)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


MAX_POST_BODY = 1024 * 1024


@dataclass(frozen=True)
class HttpRequest:
    """A POST as a handler of serve_http sees it: headers keyed in lower case, the body as sent."""

    method: str
    path: str  # with its query string, as requested
    headers: Mapping[str, str]
    body: bytes


PostHandler = Callable[[HttpRequest], tuple[int, bytes]]  # -> (status, JSON body)


def serve_http(
    host: str,
    port: int,
    health: Callable[[], dict[str, Any]],
    metrics: Metrics,
    post: Mapping[str, PostHandler] | None = None,
) -> ThreadingHTTPServer:
    """/healthz (JSON; 503 while stopping) and /metrics (Prometheus) on a background thread, and the POST
    handlers of `post` by path (the webhook intake).

    A degraded service (a portal file that does not load) still answers 200: it is alive and runs the
    other portals, and a restart would not fix the file.
    """
    posts = dict(post or {})

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            handler = posts.get(self.path.split("?")[0])
            if handler is None:
                self._reply(404, "text/plain", b"not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_POST_BODY:
                self.close_connection = True
                self._reply(413 if length > 0 else 400, "application/json", b'{"error":"bad Content-Length"}')
                return
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = handler(HttpRequest("POST", self.path, headers, body))
            self._reply(status, "application/json", answer)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == "/healthz":
                state = health()
                body = json_module.dumps(state).encode()
                self._reply(503 if state.get("status") == "stopping" else 200, "application/json", body)
            elif self.path.split("?")[0] == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, metrics.exposition())
            else:
                self._reply(404, "text/plain", b"not found\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # (the stdlib names the parameter format)
            return  # probes every few seconds would flood the logs

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
