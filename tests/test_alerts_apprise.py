"""Alerts through Apprise: real deliveries (json://, form://) to a local HTTP server, failures kept for the next
cycle, the URL never in a log, and the deprecated webhook_env still posting `{"text": ...}`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from structlog.testing import capture_logs

from sync.alerts import Alerter, AppriseNotifier, notifier_for, webhook_as_apprise
from sync.config import PortalConfig, build_portal
from sync.errors import ConfigError
from sync.pipeline import RunSummary
from sync.store.state import SqlStateStore
from tests.factories import example_data

ENV = "LEADSYNC_TEST_ALERT_URL"
SECRET = "s3cr3t-0f-the-channel"


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Channel:
    """A local HTTP endpoint that records what it is sent; `status` and `delay_s` say how it answers."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []  # (path, content type, body)
        self.status = 200
        self.delay_s = 0.0
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                channel.received.append((self.path, self.headers.get("Content-Type") or "", body))
                time.sleep(channel.delay_s)
                reply = f"cannot take it at {self.path}".encode()  # a server that echoes the secret path
                try:
                    self.send_response(channel.status)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: what the timeout test wants

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, scheme: str = "json", path: str = f"/hook/{SECRET}") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def json_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.received]


@pytest.fixture
def channel() -> Iterator[Channel]:
    endpoint = Channel()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStateStore]:
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


def config(**alerts: Any) -> PortalConfig:
    data = example_data()
    data["alerts"] = {"url_env": ENV, **alerts}
    return build_portal(data, Path("p.yaml")).config


def alerter(store: SqlStateStore, urls: str, **alerts: Any) -> Alerter:
    cfg = config(**alerts)
    assert cfg.alerts is not None
    notifier = notifier_for(cfg.alerts, {ENV: urls}, cfg.portal.name)
    return Alerter(cfg, cfg.alerts, store, notifier, Clock())


def run(status: str = "ok") -> RunSummary:
    return RunSummary("run1", "incremental", status=status, error=None if status == "ok" else "forms: HTTP 403")


def kinds(logs: Sequence[Mapping[str, Any]], event: str) -> list[Any]:
    return [e.get("kind") for e in logs if e["event"] == event]


def test_an_incident_reaches_an_apprise_url_once_and_its_resolution_once(
    store: SqlStateStore, channel: Channel
) -> None:
    alert = alerter(store, channel.url())
    with capture_logs() as logs:
        alert(run("failed"))
        alert(run("failed"))
        alert(run("ok"))
    opened, resolved = channel.json_bodies()
    assert opened["title"] == "leadsync · acme-eu: a sync run failed" and opened["type"] == "failure"
    assert "forms: HTTP 403" in opened["message"] and "incident run_failed · run run1" in opened["message"]
    assert resolved["title"] == "leadsync · acme-eu: resolved: a sync run failed" and resolved["type"] == "success"
    assert kinds(logs, "alert_sent") == ["run_failed"] and kinds(logs, "alert_resolved") == ["run_failed"]


def test_every_url_in_the_variable_is_told(store: SqlStateStore, channel: Channel) -> None:
    urls = f"{channel.url('json', '/one/' + SECRET)}, {channel.url('form', '/two/' + SECRET)}"
    alerter(store, urls)(run("failed"))
    by_path = {path.split("?")[0]: (kind, body) for path, kind, body in channel.received}
    assert set(by_path) == {f"/one/{SECRET}", f"/two/{SECRET}"}
    assert json.loads(by_path[f"/one/{SECRET}"][1])["title"].endswith("a sync run failed")
    kind, body = by_path[f"/two/{SECRET}"]
    form = parse_qs(body.decode())
    assert kind == "application/x-www-form-urlencoded" and form["type"] == ["failure"]
    assert form["title"] == ["leadsync · acme-eu: a sync run failed"]


def test_a_message_apprise_could_not_deliver_leaves_the_incident_open_for_the_next_cycle(
    store: SqlStateStore, channel: Channel, capsys: pytest.CaptureFixture[str]
) -> None:
    channel.status = 500
    alert = alerter(store, channel.url())
    pid = config().portal.id
    with capture_logs() as logs:
        alert(run("failed"))
        assert store.get_cursor(pid, "alert:run_failed") in (None, "")  # not recorded: not delivered
        channel.status = 200
        alert(run("failed"))
        alert(run("failed"))
    assert kinds(logs, "alert_failed") == ["run_failed"] and kinds(logs, "alert_sent") == ["run_failed"]
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"].startswith("not delivered") and "500" in failed["error"]
    assert len(channel.received) == 2  # the failed try and the retry; the third run is the same incident
    assert store.get_cursor(pid, "alert:run_failed")
    assert SECRET not in str(logs) and SECRET not in capsys.readouterr().err


def test_a_channel_slower_than_timeout_s_fails_the_delivery_in_time(store: SqlStateStore, channel: Channel) -> None:
    channel.delay_s = 3.0
    alert = alerter(store, channel.url(), timeout_s=0.5)
    began = time.monotonic()
    with capture_logs() as logs:
        alert(run("failed"))
    assert time.monotonic() - began < 2.5
    assert kinds(logs, "alert_failed") == ["run_failed"]


def test_an_unset_variable_is_reported_and_every_alert_fails_until_it_is_set(store: SqlStateStore) -> None:
    with capture_logs() as logs:
        alert = alerter(store, "")
        alert(run("failed"))
    assert [e["env"] for e in logs if e["event"] == "alert_url_unset"] == [ENV]
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"] == f"{ENV} is not set: export the Apprise URL in it"


def test_a_url_apprise_does_not_know_is_reported_without_its_value(
    store: SqlStateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with capture_logs() as logs:
        alert = alerter(store, f"nosuchservice://{SECRET}/x")
        alert(run("failed"))
    assert [e["services"] for e in logs if e["event"] == "alert_url_unreadable"] == [0]
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"] == f"{ENV} holds no Apprise URL Apprise can send to"
    assert SECRET not in str(logs) and SECRET not in capsys.readouterr().err


def test_an_unknown_url_beside_a_good_one_still_lets_the_good_one_alert(store: SqlStateStore, channel: Channel) -> None:
    with capture_logs() as logs:
        alerter(store, f"nosuchservice://{SECRET} {channel.url()}")(run("failed"))
    assert [e["services"] for e in logs if e["event"] == "alert_url_unreadable"] == [1]
    assert kinds(logs, "alert_sent") == ["run_failed"] and len(channel.received) == 1


def test_the_notifier_never_shows_its_url() -> None:
    notifier = AppriseNotifier(f"json://127.0.0.1:9/{SECRET}", env=ENV)
    assert SECRET not in repr(notifier) and ENV in repr(notifier)


# -- the deprecated webhook_env --


@pytest.mark.parametrize(
    ("webhook", "apprise_url"),
    [
        (
            "https://hooks.slack.com/services/T0/B0/abc",
            "jsons://hooks.slack.com/services/T0/B0/abc?%3Amessage=text&%3Atitle=&%3Aversion=&%3Atype=&%3Aattachments=",
        ),
        (
            "http://chat.local:8065/hooks/xyz?channel=ops",
            "json://chat.local:8065/hooks/xyz?-channel=ops&%3Amessage=text&%3Atitle=&%3Aversion=&%3Atype=&%3Aattachments=",
        ),
    ],
)
def test_a_webhook_url_becomes_the_apprise_url_that_posts_text(webhook: str, apprise_url: str) -> None:
    assert webhook_as_apprise(webhook) == apprise_url


def test_webhook_env_still_posts_a_slack_compatible_text_and_says_it_is_deprecated(
    store: SqlStateStore, channel: Channel
) -> None:
    data = example_data()
    data["alerts"] = {"webhook_env": ENV}
    cfg = build_portal(data, Path("p.yaml")).config
    assert cfg.alerts is not None
    url = f"http://127.0.0.1:{channel.port}/services/T0/B0/{SECRET}"
    with capture_logs() as logs:
        notifier = notifier_for(cfg.alerts, {ENV: url}, cfg.portal.name)
        Alerter(cfg, cfg.alerts, store, notifier, Clock())(run("failed"))
    ((path, _, body),) = channel.received
    assert path == f"/services/T0/B0/{SECRET}"
    payload = json.loads(body)
    assert list(payload) == ["text"] and payload["text"].startswith("leadsync · acme-eu: a sync run failed\n")
    assert [e["use"] for e in logs if e["event"] == "alert_webhook_env_deprecated"] == ["url_env"]


# -- config --


@pytest.mark.parametrize(
    ("alerts", "path", "message"),
    [
        ({"url_env": f"slack://T0/B0/{SECRET}"}, "alerts.url_env", "looks like an alert URL pasted into the file"),
        ({"url_env": "alert url"}, "alerts.url_env", "must be the name of an environment variable"),
        ({"url_env": ENV, "webhook_env": "OTHER"}, "alerts.webhook_env", "not both"),
    ],
)
def test_a_broken_url_env_is_a_config_error(alerts: dict[str, Any], path: str, message: str) -> None:
    data = example_data()
    data["alerts"] = alerts
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("p.yaml"))
    found = [(p.path, p.message) for p in info.value.problems]
    assert any(p == path and message in m for p, m in found), found
    assert SECRET not in str(info.value)
