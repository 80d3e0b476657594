"""The sandbox's HTTP shell: routing, auth, rate limits, faults, stats, admin endpoints.

Order of checks on an API request, as HubSpot does it: auth (401), then a drawn fault's
429, then the real rate limits (429), then the other faults, then the endpoint.
`/__sandbox/*` admin paths skip all of it: no auth, no limits, no faults, no API stats.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sync.ports import Clock, EpochSeconds, SystemClock
from sync.sandbox.faults import FaultInjector, FaultSpec
from sync.sandbox.limits import MESSAGES, PROFESSIONAL, SECONDLY, TEN_SECONDLY, RateLimiter, RateLimitSpec
from sync.sandbox.portal import COMPANIES, CONTACTS, FailureChooser, Portal
from sync.sandbox.routes import API_ROUTES, ApiRequest, Reply, Route, match, new_id
from sync.sandbox.webhooks import WebhookPusher
from sync.sandbox.wire import ApiError, JsonObject, bad_request, query_int, query_str
from sync.snapshot import numeric

ADMIN_PREFIX = "/__sandbox/"
MAX_BODY = 32 * 1024 * 1024
_REASONS = {
    200: "OK", 201: "Created", 207: "Multi-Status", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large", 414: "URI Too Long",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}  # fmt: skip


class Stats:
    """Request counts by route template and status, 429s by policy, faults by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests: dict[str, dict[str, int]] = {}
            self._rate_limited: dict[str, int] = {"TEN_SECONDLY_ROLLING": 0, "SECONDLY": 0, "DAILY": 0}
            self._faults: dict[str, int] = {}
            self._admin = 0

    def request(self, route: str, status: str) -> None:
        with self._lock:
            by_status = self._requests.setdefault(route, {})
            by_status[status] = by_status.get(status, 0) + 1

    def rate_limited(self, policy: str) -> None:
        with self._lock:
            self._rate_limited[policy] = self._rate_limited.get(policy, 0) + 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + 1

    def admin(self) -> None:
        with self._lock:
            self._admin += 1

    def to_json(self) -> JsonObject:
        with self._lock:
            return {
                "requests": {route: dict(sorted(s.items())) for route, s in sorted(self._requests.items())},
                "total_requests": sum(n for s in self._requests.values() for n in s.values()),
                "rate_limited": dict(self._rate_limited),
                "faults": dict(sorted(self._faults.items())),
                "admin_requests": self._admin,
            }


def _epoch_seconds(clock: Clock) -> EpochSeconds:
    """A Clock read as the epoch seconds the sandbox counts in (its rate limits, its record times)."""
    return lambda: clock.now().timestamp()


class Sandbox:
    """A HubSpot-compatible API for one portal on loopback.

    with Sandbox(portal, port=0) as sb:
        requests.get(f"{sb.url}/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {sb.token}"})
    """

    def __init__(
        self,
        portal: Portal,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "sandbox-token",
        rate_limit: RateLimitSpec | str = PROFESSIONAL,
        faults: FaultSpec | str | None = None,
        fault_seed: int = 0,
        fault_timeout_seconds: float = 30.0,
        offset_ttl_seconds: float | None = None,
        clock: EpochSeconds | None = None,
        verbose: bool = False,
        webhooks: WebhookPusher | None = None,
    ) -> None:
        self.portal = portal
        self.webhooks = webhooks  # pushes every change to a contact, signed, to a receiver
        if webhooks is not None:
            portal.on_change = webhooks.emit
        if offset_ttl_seconds is not None:
            portal.offset_ttl_seconds = offset_ttl_seconds  # how long an email events offset stays valid
        self.token = token
        self.clock: EpochSeconds = clock if clock is not None else _epoch_seconds(SystemClock())
        self.verbose = verbose
        spec = RateLimitSpec.parse(rate_limit) if isinstance(rate_limit, str) else rate_limit
        self.limiter = RateLimiter(spec, self.clock)
        fault_spec = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.faults = FaultInjector(fault_spec, fault_seed, fault_timeout_seconds)
        self.stats = Stats()
        self.closing = threading.Event()
        self._stop = threading.Event()
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> Sandbox:
        if self.webhooks is not None:
            self.webhooks.start()
        if self._thread is None:
            # A short poll interval lets close() return within 10 ms.
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, name="sandbox-http", daemon=True
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until `stop()` (a signal handler may call it), then close."""
        self.start()
        while not self._stop.wait(0.5):
            pass
        self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.closing.set()
        self._stop.set()
        if self.webhooks is not None:
            self.webhooks.close()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.drop_connections()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats_json(self) -> JsonObject:
        stats = self.stats.to_json()
        counts = self.portal.write_counts()
        stats["writes_applied"] = sum(counts.values())
        stats["contact_writes"] = counts
        stats["rate_limit"] = self.limiter.spec.describe()
        stats["fault_spec"] = self.faults.spec.describe()
        if self.webhooks is not None:
            stats["webhooks"] = {**self.webhooks.stats, "pending": self.webhooks.pending()}
        return stats

    def reset_stats(self) -> None:
        self.stats.reset()
        self.portal.reset_writes()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def drop_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections so they end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle keep-alive connection is dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        # One write per answer and no Nagle delay: keep-alive round trips stay sub-millisecond.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        self.server.untrack(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            sys.stderr.write(f"sandbox: {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    # --- plumbing ------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        if method == "HEAD":
            self.close_connection = True  # an answer body on HEAD would desynchronize a kept-alive connection
        try:
            raw = self._read_body()
        except ApiError as exc:
            self.close_connection = True
            self._send(exc.status, exc.body(str(uuid.uuid4())))
            return
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        try:
            if path.startswith(ADMIN_PREFIX):
                sandbox.stats.admin()
                reply = _admin(sandbox, method, path, query, raw)
                self._send(reply.status, reply.body, reply.headers)
            else:
                self._api(sandbox, method, path, query, raw)
        except Exception as exc:  # the connection boundary: answer 500, keep serving
            sys.stderr.write(f"sandbox: {method} {self.path} failed: {exc!r}\n")
            self._send(500, _error(500, "INTERNAL_ERROR", f"Sandbox error: {exc!r}"))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests the base class rejects (bad request line, huge headers) get a JSON body too."""
        self.close_connection = True
        self._send(code, _error(code, "VALIDATION_ERROR", message or explain or "Bad request"))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                try:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    raise ApiError(400, "VALIDATION_ERROR", "Malformed chunked body") from None
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "VALIDATION_ERROR", "Request body too large")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "VALIDATION_ERROR", "Content-Length is not a number") from None
        if length < 0 or length > MAX_BODY:
            raise ApiError(413, "VALIDATION_ERROR", "Request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
            "Content-Type: application/json;charset=utf-8",
            f"Content-Length: {len(payload)}",
            f"Date: {formatdate(usegmt=True)}",
        ]
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + payload)
        except OSError:  # the client went away
            self.close_connection = True
            return
        self.log_request(status)

    def _drop(self, *, reset: bool) -> None:
        """End the connection without an answer: RST for a reset, FIN after a held timeout."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _api(self, sandbox: Sandbox, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        """One API request, in HubSpot's order: authentication, rate limit, route, then the fault drawn for it."""
        route, params, path_known = match(API_ROUTES, method, path)
        name = route.name if route else f"{method} (unmatched)"
        token = _bearer(self.headers.get("Authorization"))
        if token != sandbox.token:
            self._unauthorized(sandbox, name, token)
            return
        carries_offset = route is not None and route.offsets and bool(query_str(query, "offset"))
        fault = sandbox.faults.draw(batch_update=route.batch_update, offset=carries_offset) if route else None
        headers = self._admitted(sandbox, name, token, route is not None and route.search, fault)
        if headers is None:
            return
        if route is None:
            status = 405 if path_known else 404
            sandbox.stats.request(name, str(status))
            category = "VALIDATION_ERROR" if path_known else "OBJECT_NOT_FOUND"
            self._send(status, _error(status, category, f"No route for {method} {path}"), headers)
            return
        if fault in ("500", "503", "reset"):
            self._fail(sandbox, route, name, fault, (params, query, raw), headers)
            return
        chooser = sandbox.faults.choose_failures if fault == "partial" else None
        if fault == "offset":
            sandbox.stats.fault("offset")
        reply = self._run(sandbox, route, params, query, raw, chooser, expire_offset=fault == "offset")
        if fault == "partial":
            sandbox.stats.fault("partial" if reply.status == 207 else "partial_not_applicable")
        if fault == "timeout":
            sandbox.stats.fault("timeout")
            sandbox.stats.request(name, "timeout")
            # Processed (a write is applied), then silence: the client's read timeout fires first.
            sandbox.closing.wait(sandbox.faults.timeout_seconds)
            self._drop(reset=False)
            return
        sandbox.stats.request(name, str(reply.status))
        self._send(reply.status, reply.body, {**headers, **reply.headers})

    def _unauthorized(self, sandbox: Sandbox, name: str, token: str | None) -> None:
        message = (
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
            "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
            if token is None
            else "The access token provided is invalid, expired or revoked."
        )
        sandbox.stats.request(name, "401")
        self._send(401, _error(401, "INVALID_AUTHENTICATION", message))

    def _admitted(
        self, sandbox: Sandbox, name: str, token: str, search: bool, fault: str | None
    ) -> dict[str, str] | None:
        """The rate limit's headers for an admitted request; None once a 429 (real or the fault's) is sent."""
        if fault == "429":
            verdict = sandbox.limiter.admit(token, search=search, count=False)
            policy = SECONDLY if search else TEN_SECONDLY
            sandbox.stats.fault("429")
            sandbox.stats.request(name, "429")
            self._send(429, _rate_limited(policy), verdict.headers)
            return None
        verdict = sandbox.limiter.admit(token, search=search)
        if verdict.policy is not None:
            sandbox.stats.rate_limited(verdict.policy)
            sandbox.stats.request(name, "429")
            self._send(429, _rate_limited(verdict.policy), verdict.headers)
            return None
        return verdict.headers

    def _fail(
        self,
        sandbox: Sandbox,
        route: Route,
        name: str,
        fault: str,
        request: tuple[dict[str, str], dict[str, list[str]], bytes],
        headers: dict[str, str],
    ) -> None:
        """A server error, or a dropped connection (a write it carried applied or not, by a coin)."""
        if fault == "reset":
            applied = route.write and sandbox.faults.coin()
            if applied:
                self._run(sandbox, route, *request, None)
            sandbox.stats.fault("reset_applied" if applied else "reset")
            sandbox.stats.request(name, "reset")
            self._drop(reset=True)
            return
        sandbox.stats.fault(fault)
        sandbox.stats.request(name, fault)
        message = "Internal error" if fault == "500" else "Service temporarily unavailable; retry later."
        category = "INTERNAL_ERROR" if fault == "500" else "SERVICE_UNAVAILABLE"
        self._send(int(fault), _error(int(fault), category, message), headers)

    def _run(
        self,
        sandbox: Sandbox,
        route: Route,
        params: dict[str, str],
        query: dict[str, list[str]],
        raw: bytes,
        chooser: FailureChooser | None,
        *,
        expire_offset: bool = False,
    ) -> Reply:
        try:
            body = _json_body(raw)
            request = ApiRequest(route.method, params, query, body, sandbox.now_ms(), chooser, expire_offset)
            return route.handler(sandbox.portal, request)
        except ApiError as exc:
            return Reply(exc.status, exc.body(str(uuid.uuid4())))


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _error(status: int, category: str, message: str) -> JsonObject:
    return ApiError(status, category, message).body(str(uuid.uuid4()))


def _rate_limited(policy: str) -> JsonObject:
    return {
        "status": "error",
        "message": MESSAGES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }


def _json_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"Invalid input JSON on line 1: {exc}") from None


# --- admin endpoints -----------------------------------------------------------------------


def _admin(sandbox: Sandbox, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> Reply:
    try:
        action = _ADMIN.get((method, path))
        if action is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"No admin route for {method} {path}")
        return action(sandbox, query, _json_body(raw))
    except ApiError as exc:
        return Reply(exc.status, exc.body(str(uuid.uuid4())))


def _items(body: Any, key: str) -> Any:
    """Admin bodies are `{"<key>": [...]}` (snapshot shapes) or a bare list."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and key in body:
        return body[key]
    raise bad_request(f'Expected {{"{key}": [...]}}')


def _admin_snapshot(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    return Reply(200, sandbox.portal.snapshot())


def _admin_stats(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    return Reply(200, sandbox.stats_json())


def _admin_write_log(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    since = query_int(query, "since", 0)
    object_type = query_str(query, "object") or CONTACTS
    if object_type not in (CONTACTS, COMPANIES):
        raise bad_request(f"object must be {CONTACTS} or {COMPANIES}, got {object_type!r}")
    writes = sandbox.portal.write_log(since, object_type)
    return Reply(200, {"writes": [w.wire() for w in writes], "since": since})


def _admin_reset_stats(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    sandbox.reset_stats()
    return Reply(200, {"status": "ok"})


def _admin_contacts(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    return Reply(200, {"results": sandbox.portal.upsert_contacts(_items(body, "contacts"), sandbox.now_ms())})


def _admin_companies(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    results = sandbox.portal.upsert_contacts(_items(body, "companies"), sandbox.now_ms(), COMPANIES)
    return Reply(200, {"results": results})


def _admin_remove_company(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    company_id = query_str(query, "id") or ""
    if not numeric(company_id):
        raise bad_request("Expected ?id=<company id>")
    if not sandbox.portal.remove_company(int(company_id)):
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Company {company_id} does not exist")
    return Reply(200, {"removed": company_id})


def _admin_associations(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    return Reply(200, {"associated": sandbox.portal.associate(_items(body, "associations"))})


def _admin_dissociate(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    contact, company = query_str(query, "contactId") or "", query_str(query, "companyId") or ""
    if not (numeric(contact) and numeric(company)):
        raise bad_request("Expected ?contactId=<id>&companyId=<id>")
    if not sandbox.portal.dissociate(int(contact), int(company)):
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Contact {contact} is not associated with company {company}")
    return Reply(200, {"removed": {"contactId": contact, "companyId": company}})


def _admin_association_settings(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    if not isinstance(body, dict):
        raise bad_request('Expected {"primary_label": "...", "page_size": 500}')
    label, size = body.get("primary_label"), body.get("page_size")
    if label is not None and not (isinstance(label, str) and label):
        raise bad_request("primary_label must be a non-empty string")
    if size is not None and not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        raise bad_request("page_size must be a positive integer")
    if label is not None:
        sandbox.portal.rename_primary_label(label)
    if size is not None:
        sandbox.portal.set_association_page_size(size)
    return Reply(200, {"primary_label": label, "page_size": size})


def _admin_submissions(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    added = sandbox.portal.add_submissions(_items(body, "form_submissions"), sandbox.now_ms(), new_id)
    return Reply(200, {"added": added})


def _admin_events(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    added = sandbox.portal.add_email_events(_items(body, "email_events"), sandbox.now_ms(), new_id)
    return Reply(200, {"added": added})


def _admin_forms(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    return Reply(200, {"added": sandbox.portal.upsert_forms(_items(body, "forms"), sandbox.now_ms())})


def _admin_remove_form(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    form_id = query_str(query, "id")
    if not form_id:
        raise bad_request("Expected ?id=<form id>")
    if not sandbox.portal.remove_form(form_id):
        raise ApiError(404, "OBJECT_NOT_FOUND", f"Form {form_id} does not exist")
    return Reply(200, {"removed": form_id})


def _admin_lists(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    return Reply(200, {"updated": sandbox.portal.upsert_lists(_items(body, "lists"), sandbox.now_ms())})


def _admin_rate_limit(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    spec = body.get("spec") if isinstance(body, dict) else None
    if not isinstance(spec, str):
        raise bad_request('Expected {"spec": "per10s=190,search=5,daily=625000"} (or "off", or a tier name)')
    try:
        parsed = RateLimitSpec.parse(spec)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    sandbox.limiter.configure(parsed)
    return Reply(200, {"rate_limit": parsed.describe()})


def _admin_faults(sandbox: Sandbox, query: dict[str, list[str]], body: Any) -> Reply:
    if not isinstance(body, dict):
        raise bad_request(
            'Expected {"spec": "500=0.1,...", "seed": 0, "timeout_seconds": 30, "offset_ttl_seconds": 300}'
        )
    try:
        spec = FaultSpec.parse(body.get("spec"))
        seed = int(body.get("seed", sandbox.faults.seed))
        timeout = float(body.get("timeout_seconds", sandbox.faults.timeout_seconds))
        ttl = float(body.get("offset_ttl_seconds", sandbox.portal.offset_ttl_seconds))
    except (TypeError, ValueError) as exc:
        raise bad_request(str(exc)) from None
    if ttl < 0:
        raise bad_request(f"offset_ttl_seconds must be 0 or more, got {ttl:g}")
    sandbox.faults.configure(spec, seed, timeout)
    sandbox.portal.offset_ttl_seconds = ttl
    return Reply(200, {"faults": spec.describe(), "seed": seed, "timeout_seconds": timeout, "offset_ttl_seconds": ttl})


_ADMIN: dict[tuple[str, str], Callable[[Sandbox, dict[str, list[str]], Any], Reply]] = {
    ("GET", "/__sandbox/snapshot"): _admin_snapshot,
    ("GET", "/__sandbox/stats"): _admin_stats,
    ("GET", "/__sandbox/write_log"): _admin_write_log,
    ("POST", "/__sandbox/reset_stats"): _admin_reset_stats,
    ("POST", "/__sandbox/contacts"): _admin_contacts,
    ("POST", "/__sandbox/companies"): _admin_companies,
    ("DELETE", "/__sandbox/companies"): _admin_remove_company,
    ("POST", "/__sandbox/associations"): _admin_associations,
    ("DELETE", "/__sandbox/associations"): _admin_dissociate,
    ("POST", "/__sandbox/association_settings"): _admin_association_settings,
    ("POST", "/__sandbox/form_submissions"): _admin_submissions,
    ("POST", "/__sandbox/email_events"): _admin_events,
    ("POST", "/__sandbox/forms"): _admin_forms,
    ("DELETE", "/__sandbox/forms"): _admin_remove_form,
    ("POST", "/__sandbox/lists"): _admin_lists,
    ("POST", "/__sandbox/rate_limit"): _admin_rate_limit,
    ("POST", "/__sandbox/faults"): _admin_faults,
}
