"""Alerts: a Slack-compatible webhook is told once per incident, and once more when it clears.

Incidents: a failed run, a paused portal (HubSpot refused the token, or it is another portal's), dead
letters over the portal's threshold, the daily API budget reserve reached. `decide` is pure: what holds
after a run and which incidents are open -> which open and which clear. The `Alerter` (the portal's
`after_run` hook) gathers those inputs from the run summary and the state store, sends, and records an
incident's state in the store only once the webhook took the message: restarts and replicas share one
view, and a message that could not be sent is tried again after the next cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import requests
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


@dataclass(frozen=True)
class Message:
    """A Slack-compatible message: `text` (also the notification's fallback) and optional blocks."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks} if self.blocks else {"text": self.text}


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


def _escape(text: str) -> str:
    """Slack's mrkdwn reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def compose(change: Change, ctx: Context) -> Message:
    head = f"*leadsync · {_escape(ctx.portal)}*"
    error = _escape(ctx.error or "no detail")
    letters = f"{ctx.dead_letters} dead letters in the last 24 hours (threshold {ctx.dead_letters_over})"
    if not change.opens:
        detail = f" ({letters})" if change.kind == "dead_letters" else ""
        text = f":white_check_mark: {head}: resolved: {TITLES[change.kind]}{detail}."
    elif change.kind == "run_failed":
        text = (
            f":rotating_light: {head}: a sync run failed: {error}\n"
            "Runs go on as scheduled; no further alert until one succeeds."
        )
    elif change.kind == "paused" and ctx.cause == "wrong_portal":
        text = (
            f":no_entry: {head} is paused: {error}\n"
            "Nothing is written until portal.id and the token in "
            f"`{_escape(ctx.token_env)}` name the same portal and the file is reloaded."
        )
    elif change.kind == "paused" and ctx.cause == "live_check":
        text = (
            f":no_entry: {head} is paused: the portal file does not fit the portal: {error}\n"
            "Nothing syncs until the file is fixed (`leadsync validate --live` shows the same) and reloaded."
        )
    elif change.kind == "paused":
        text = (
            f":no_entry: {head} is paused: HubSpot refused its token (401): {error}\n"
            f"Nothing syncs until a valid token is in `{_escape(ctx.token_env)}` and the worker is restarted."
        )
    elif change.kind == "budget":
        text = (
            f":hourglass: {head} stopped for today: the daily API budget reserve is reached: {error}\n"
            f"Syncing resumes after midnight in the portal's time zone ({_escape(ctx.time_zone)}); if this repeats, "
            "raise portal.rate_limit.daily "
            "or lower daily_reserve_pct."
        )
    else:
        text = (
            f":warning: {head}: {letters}: writes HubSpot would not take, kept with their reason "
            "in the state store. Check the reasons (a rejected value, a deleted contact)."
        )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"incident `{change.kind}` · run `{_escape(ctx.run_id)}`"}],
        },
    ]
    return Message(text, blocks)


# -- sending --


class AlertDeliveryError(RetriableError):
    """The webhook did not take a message; the incident stays un-notified and is sent again next cycle."""


class Notifier(Protocol):
    def send(self, message: Message) -> None:
        """Deliver one message; AlertDeliveryError when it was not delivered."""
        ...


class WebhookNotifier:
    """Posts to a Slack-compatible incoming webhook.

    The URL is a secret (whoever has it can post to the channel): it is kept out of logs, reprs and
    error messages, and requests' own errors (which quote it) are not chained.
    """

    def __init__(self, url: str, *, env: str, timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self._url = url.strip()
        self.env = env
        self.timeout_s = timeout_s
        self._session = session or requests.Session()

    def __repr__(self) -> str:
        return f"WebhookNotifier(env={self.env!r})"

    def send(self, message: Message) -> None:
        if not self._url:
            raise AlertDeliveryError(f"{self.env} is not set: export the incoming-webhook URL in it")
        if not self._url.startswith(("https://", "http://")):
            raise AlertDeliveryError(f"{self.env} does not hold an http(s) URL")
        try:
            answer = self._session.post(
                self._url,
                json=message.payload(),
                timeout=(min(5.0, self.timeout_s), self.timeout_s),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise AlertDeliveryError(f"no answer from the webhook: {type(exc).__name__}") from None
        if not 200 <= answer.status_code <= 299:
            said = " ".join(answer.text.split())[:120]
            if any(part in said for part in _secret_parts(self._url)):
                said = ""  # a server that echoes the path or query would put the secret in the log
            raise AlertDeliveryError(f"the webhook answered HTTP {answer.status_code}" + (f": {said}" if said else ""))


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
    """The pieces of a webhook URL that may carry its secret: the path, its segments, the query."""
    parts = urlsplit(url)
    pieces = [url, parts.path, parts.query, *parts.path.split("/"), *parts.query.split("&")]
    return [p for p in pieces if len(p) >= 6]
