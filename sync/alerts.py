"""Alerts: the channels a team uses (Slack, Microsoft Teams, Google Chat, e-mail, PagerDuty... through Apprise)
are told once per incident, and once more when it clears.

Incidents: a failed run, a paused portal (HubSpot refused the token, or it is another portal's), dead
letters over the portal's threshold, the daily API budget reserve reached. `decide` is pure: what holds
after a run and which incidents are open -> which open and which clear. The `Alerter` (the portal's
`after_run` hook) gathers those inputs from the run summary and the state store, sends, and records an
incident's state in the store only once the message was delivered: restarts and replicas share one
view, and a message that could not be sent is tried again after the next cycle.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import apprise
import structlog

from sync.config import AlertsModel, PortalConfig
from sync.errors import RetriableError
from sync.pipeline import RunSummary, time_zone
from sync.ports import AlertState, Clock

log = structlog.get_logger("leadsync.alerts")

IncidentKind = Literal["run_failed", "paused", "budget", "dead_letters"]
KINDS: tuple[IncidentKind, ...] = ("run_failed", "paused", "budget", "dead_letters")
# An incident's state is a cursor of the portal: the time it opened (ISO, in the portal's time zone), or "" while
# closed.
DEAD_LETTER_WINDOW_S = 86_400.0
CURSOR_PREFIX = "alert:"

TITLES: dict[IncidentKind, str] = {
    "run_failed": "a sync run failed",
    "paused": "the portal is paused (a refused token or the wrong portal)",
    "budget": "the daily API budget reserve is reached",
    "dead_letters": "dead letters over the threshold",
}


# -- the decision (pure) --


@dataclass(frozen=True)
class Facts:
    """What holds after a run."""

    status: str  # the run's: ok | failed | paused | interrupted
    budget_spent: bool
    day: str  # the budget's day of the run (YYYY-MM-DD): the portal's local date
    dead_letters: int | None = None  # counted only when watched
    dead_letters_over: int | None = None


@dataclass(frozen=True)
class Change:
    kind: IncidentKind
    opens: bool  # True: a new incident (an alert); False: it cleared (resolved)


def _holds(kind: IncidentKind, facts: Facts) -> bool:
    if kind == "run_failed":
        return facts.status == "failed" and not facts.budget_spent  # a budget stop alerts as budget only
    if kind == "paused":
        return facts.status == "paused"
    if kind == "budget":
        return facts.budget_spent
    return facts.dead_letters_over is not None and (facts.dead_letters or 0) > facts.dead_letters_over


def decide(facts: Facts, open_since: Mapping[IncidentKind, str]) -> list[Change]:
    """Incidents that open (their condition holds and none is open) and open ones that clear.

    A failed run, a pause and a budget stop clear with a run that ends ok (an interrupted or failed run
    proves nothing); dead letters when back at or under the threshold; the budget also with a new day,
    and a budget spent again on a new day is a new incident.
    """
    changes: list[Change] = []
    for kind in KINDS:
        since = open_since.get(kind)
        holds = _holds(kind, facts)
        new_day = kind == "budget" and since is not None and since[:10] != facts.day
        if holds and (since is None or new_day):
            changes.append(Change(kind, opens=True))
        elif since is not None and not holds and (kind == "dead_letters" or new_day or facts.status == "ok"):
            changes.append(Change(kind, opens=False))
    return changes


# -- the message (pure) --

Level = Literal["failure", "warning", "success"]


@dataclass(frozen=True)
class Message:
    """One notification: a one-line `title` (an e-mail's subject), a plain-text `body` and how bad it is."""

    title: str
    body: str
    level: Level = "failure"

    @property
    def text(self) -> str:
        """Title and body as one text, for a channel that has no title (a Slack-compatible webhook)."""
        return f"{self.title}\n{self.body}"


@dataclass(frozen=True)
class Context:
    """What a message may say about the portal and the run."""

    portal: str
    run_id: str
    error: str | None = None
    token_env: str = ""
    dead_letters: int | None = None
    dead_letters_over: int | None = None
    cause: str = ""  # the run summary's: wrong_portal | live_check | config | ""
    time_zone: str = "UTC"  # the portal's: its daily API budget resets at its midnight


LEVELS: dict[IncidentKind, Level] = {
    "run_failed": "failure",
    "paused": "failure",
    "budget": "warning",
    "dead_letters": "warning",
}


def _what_to_do(change: Change, ctx: Context) -> str:
    error = ctx.error or "no detail"
    letters = f"{ctx.dead_letters} dead letters in the last 24 hours (threshold {ctx.dead_letters_over})"
    if not change.opens:
        return f"Resolved: {letters}." if change.kind == "dead_letters" else "Resolved."
    if change.kind == "run_failed":
        return f"{error}\nRuns go on as scheduled; no further alert until one succeeds."
    if change.kind == "paused" and ctx.cause == "wrong_portal":
        return (
            f"{ctx.portal} is paused: {error}\nNothing is written until portal.id and the token in "
            f"{ctx.token_env} name the same portal and the file is reloaded."
        )
    if change.kind == "paused" and ctx.cause == "live_check":
        return (
            f"{ctx.portal} is paused: the portal file does not fit the portal: {error}\n"
            "Nothing syncs until the file is fixed (`leadsync validate --live` shows the same) and reloaded."
        )
    if change.kind == "paused":
        return (
            f"{ctx.portal} is paused: HubSpot refused its token (401): {error}\n"
            f"Nothing syncs until a valid token is in {ctx.token_env} and the worker is restarted."
        )
    if change.kind == "budget":
        return (
            f"Stopped for today: {error}\nSyncing resumes after midnight in the portal's time zone "
            f"({ctx.time_zone}); if this repeats, raise portal.rate_limit.daily or lower daily_reserve_pct."
        )
    return (
        f"{letters}: writes HubSpot would not take, kept with their reason in the state store. "
        "Check the reasons (a rejected value, a deleted contact)."
    )


def compose(change: Change, ctx: Context) -> Message:
    """The message for one change. Plain text: each channel's own escaping is the delivery's business."""
    title = f"leadsync · {ctx.portal}: " + ("resolved: " if not change.opens else "") + TITLES[change.kind]
    body = f"{_what_to_do(change, ctx)}\nincident {change.kind} · run {ctx.run_id}"
    return Message(title, body, "success" if not change.opens else LEVELS[change.kind])


# -- sending --


class AlertDeliveryError(RetriableError):
    """No channel took a message; the incident stays un-notified and is sent again next cycle."""


class Notifier(Protocol):
    def send(self, message: Message) -> None:
        """Deliver one message; AlertDeliveryError when it was not delivered."""
        ...


_NOTIFY_TYPES: dict[Level, apprise.NotifyType] = {
    "failure": apprise.NotifyType.FAILURE,
    "warning": apprise.NotifyType.WARNING,
    "success": apprise.NotifyType.SUCCESS,
}


class _AppriseLog(logging.Handler):
    """Apprise logs through the stdlib `apprise` logger, at debug level with whole URLs. Its records stop
    here (never on stderr, never in our logs); those of one delivery are kept to say why it failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.lines is not None:
            self.lines.append(record.getMessage())


_APPRISE_LOG = _AppriseLog()
# One delivery at a time, so the records kept are this delivery's (Apprise sends on threads of its own).
_DELIVERY = threading.Lock()


def _keep_apprise_logs() -> None:
    logger = logging.getLogger("apprise")
    if _APPRISE_LOG not in logger.handlers:
        logger.addHandler(_APPRISE_LOG)
    logger.propagate = False


class AppriseNotifier:
    """Delivers to every Apprise URL in an environment variable (`slack://...`, `msteams://...`,
    `gchat://...`, `mailtos://...`, `pagerduty://...`; several separated by spaces or commas).

    The URLs are secrets (whoever has one can post to the channel): they are kept out of logs, reprs and
    error messages; what Apprise says about a failure is passed on only with every part of them removed.
    """

    def __init__(self, urls: str, *, env: str, timeout_s: float = 10.0, what: str = "Apprise URL") -> None:
        self.env = env
        self.what = what
        self._urls = urls.strip()
        self._secrets = [piece for url in re.split(r"[\s,]+", self._urls) for piece in _secret_parts(url)]
        _keep_apprise_logs()
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(app_id="leadsync", app_desc="leadsync alerts"))
        with _DELIVERY:
            _APPRISE_LOG.lines = []
            try:
                all_read = not self._urls or self._apprise.add(self._urls)
            finally:
                _APPRISE_LOG.lines = None
        self.unreadable = not all_read  # some URL is not one Apprise knows; the others are still told
        for service in self._apprise:
            service.socket_connect_timeout = min(5.0, timeout_s)
            service.socket_read_timeout = timeout_s

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env={self.env!r})"

    @property
    def services(self) -> int:
        """How many channels the variable names that Apprise can send to."""
        return len(self._apprise)

    def send(self, message: Message) -> None:
        if not self._urls:
            raise AlertDeliveryError(f"{self.env} is not set: export the {self.what} in it")
        if not self.services:
            raise AlertDeliveryError(f"{self.env} holds no {self.what} Apprise can send to")
        title, body = self._render(message)
        with _DELIVERY:
            _APPRISE_LOG.lines = []
            try:
                delivered = bool(
                    self._apprise.notify(
                        body=body,
                        title=title,
                        notify_type=_NOTIFY_TYPES[message.level],
                        body_format=apprise.NotifyFormat.TEXT,
                    )
                )
            except Exception as exc:  # the delivery boundary: whatever Apprise raises, the message was not sent
                delivered, said = False, [type(exc).__name__]
            else:
                said = _APPRISE_LOG.lines
            finally:
                _APPRISE_LOG.lines = None
        if not delivered:
            raise AlertDeliveryError("not delivered" + self._reason(said))

    def _render(self, message: Message) -> tuple[str, str]:
        return message.title, message.body

    def _reason(self, said: list[str]) -> str:
        lines = [" ".join(line.split()) for line in said]
        lines = [line for line in lines if not any(piece in line for piece in self._secrets)]
        return (": " + "; ".join(dict.fromkeys(lines))[:300]) if lines else ""


class WebhookNotifier(AppriseNotifier):
    """The deprecated `webhook_env`: a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat...),
    posted `{"text": ...}` as before, through Apprise's `json://` scheme with the payload mapped to `text`."""

    def __init__(self, url: str, *, env: str, timeout_s: float = 10.0) -> None:
        self.not_http = bool(url.strip()) and not url.strip().startswith(("https://", "http://"))
        super().__init__(
            "" if self.not_http else webhook_as_apprise(url), env=env, timeout_s=timeout_s, what="incoming-webhook URL"
        )

    def send(self, message: Message) -> None:
        if self.not_http:
            raise AlertDeliveryError(f"{self.env} does not hold an http(s) URL")
        super().send(message)

    def _render(self, message: Message) -> tuple[str, str]:
        return "", _escape(message.text)


def webhook_as_apprise(url: str) -> str:
    """A Slack-compatible webhook URL as the Apprise URL that posts `{"text": ...}` to it: `https://` becomes
    `jsons://` (`http://`, `json://`), the webhook's own query goes along (`-` marks it for Apprise), and the
    payload keeps `message` only, renamed `text`."""
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme == "https" else "json"
    query = [(f"-{key}", value) for key, value in parse_qsl(parts.query, keep_blank_values=True)]
    mapping = [(":message", "text"), (":title", ""), (":version", ""), (":type", ""), (":attachments", "")]
    return f"{scheme}://{parts.netloc}{parts.path}?{urlencode([*query, *mapping])}"


def notifier_for(alerts: AlertsModel, environ: Mapping[str, str], portal: str) -> AppriseNotifier:
    """The notifier the `alerts:` section names: the Apprise URLs in `url_env`, or the deprecated `webhook_env`.

    What is wrong with the variable is logged now (never its value); the portal still syncs, and every
    alert it has to send fails (alert_failed) until the variable is fixed and the file reloaded."""
    if alerts.url_env is not None:
        env, legacy = alerts.url_env, False
        notifier = AppriseNotifier(environ.get(env, ""), env=env, timeout_s=alerts.timeout_s)
    else:
        env, legacy = alerts.webhook_env or "", True
        notifier = WebhookNotifier(environ.get(env, ""), env=env, timeout_s=alerts.timeout_s)
        log.warning("alert_webhook_env_deprecated", portal=portal, env=env, use="url_env")
    if not environ.get(env, "").strip():
        log.warning("alert_webhook_unset" if legacy else "alert_url_unset", portal=portal, env=env)
    elif notifier.unreadable:
        log.warning("alert_url_unreadable", portal=portal, env=env, services=notifier.services)
    return notifier


def _escape(text: str) -> str:
    """Slack's mrkdwn reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the hook --


class Alerter:
    """A portal's `after_run` hook: opens and clears its incidents, tells the notifier once for each."""

    def __init__(
        self, config: PortalConfig, alerts: AlertsModel, store: AlertState, notifier: Notifier, clock: Clock
    ) -> None:
        self.config = config
        self.alerts = alerts
        self.store = store
        self.notifier = notifier
        self.clock = clock

    def __call__(self, summary: RunSummary) -> None:
        events = log.bind(portal=self.config.portal.name, run_id=summary.run_id)
        try:
            self._after(summary, events)
        except Exception as exc:  # the alerting boundary: alerting never fails a run
            events.error("alert_failed", error=f"{type(exc).__name__}: {exc}")

    def _after(self, summary: RunSummary, events: Any) -> None:
        pid = self.config.portal.id
        # In the portal's time zone: the budget's day is its local date, and an incident's opening time says it.
        now = self.clock.now().astimezone(time_zone(summary.time_zone) or UTC)
        over = self.alerts.dead_letters_over
        # A rolling day: dead letters stay in the store for the audit, so an all-time count would never clear.
        count = self.store.recent_dead_letters(pid, DEAD_LETTER_WINDOW_S) if over is not None else None
        facts = Facts(summary.status, summary.budget_spent, now.date().isoformat(), count, over)
        open_since: dict[IncidentKind, str] = {}
        for kind in KINDS:
            since = self.store.get_cursor(pid, CURSOR_PREFIX + kind)
            if since:
                open_since[kind] = since
        ctx = Context(
            self.config.portal.name,
            summary.run_id,
            summary.error,
            self.config.portal.token_env,
            count,
            over,
            summary.cause,
            summary.time_zone,
        )
        for change in decide(facts, open_since):
            key = CURSOR_PREFIX + change.kind
            if not change.opens and not self.alerts.send_resolved:
                self.store.set_cursor(pid, key, "")
                events.info("alert_resolved", kind=change.kind, notified=False)
                continue
            try:
                self.notifier.send(compose(change, ctx))
            except AlertDeliveryError as exc:
                events.error("alert_failed", kind=change.kind, resolved=not change.opens, error=str(exc))
                continue
            if change.opens:
                self.store.set_cursor(pid, key, now.isoformat(timespec="seconds"))
                events.info("alert_sent", kind=change.kind)
            else:
                self.store.set_cursor(pid, key, "")
                events.info("alert_resolved", kind=change.kind, notified=True)


def _secret_parts(url: str) -> list[str]:
    """The pieces of a URL that may carry its secret: the host part (Apprise puts tokens there, e-mail URLs a
    password), the path, its segments, the query and its pairs."""
    parts = urlsplit(url)
    pieces = [url, parts.netloc, parts.password or "", parts.path, parts.query]
    pieces += [*parts.path.split("/"), *parts.query.split("&")]
    return [p for p in pieces if len(p) >= 6]
