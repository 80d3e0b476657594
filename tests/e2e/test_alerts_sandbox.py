"""End to end: real cycles against the sandbox tell the webhook about a refused token and a spent budget."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
import yaml
from structlog.testing import capture_logs

from sync.app import open_portal
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, Portal
from sync.ports import DeadLetter
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.scheduler import Service
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config

URL = "https://hooks.example.test/services/T000/B000/e2e-s3cr3t"
ENV = "LEADSYNC_E2E_ALERT_WEBHOOK"
TOKEN_ENV = "LEADSYNC_E2E_ALERT_TOKEN"
FAST = RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None)


def portal_file(folder: Path, sb: Sandbox) -> Path:
    config = sandbox_config(sb.url, TOKEN_ENV)
    config["schedule"] = {"every": "1h", "rescore": None, "timezone": "UTC"}
    config["alerts"] = {"webhook_env": ENV, "dead_letters_over": 10}
    file = folder / "acme.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStateStore]:
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[responses.RequestsMock]:
    monkeypatch.setenv(ENV, URL)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(URL, status=200, body="ok")
        yield rsps


def texts(rsps: responses.RequestsMock) -> list[str]:
    return [json.loads(call.request.body or b"{}")["text"] for call in rsps.calls if call.request.url == URL]


def open_against(sb: Sandbox, rsps: responses.RequestsMock, file: Path, store: SqlStateStore) -> Portal:
    rsps.add_passthru(sb.url)  # the worker's own HTTP calls go to the sandbox
    return open_portal(file, store, FAST)


def test_a_refused_token_pauses_alerts_once_and_resolves_when_a_fixed_token_runs_ok(
    tmp_path: Path, store: SqlStateStore, webhook: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(generate_portal(150, 3), rate_limit="off") as sb:
        file = portal_file(tmp_path, sb)
        monkeypatch.setenv(TOKEN_ENV, "revoked-token")
        portal = open_against(sb, webhook, file, store)
        with capture_logs() as logs:
            first = Cycle(portal, "incremental").run()
            second = Cycle(portal, "incremental").run()  # still paused: no second alert
            monkeypatch.setenv(TOKEN_ENV, sb.token)
            fixed = open_against(sb, webhook, file, store)  # the operator fixed the token and restarted
            third = Cycle(fixed, "incremental").run()
    assert (first.status, second.status, third.status) == ("paused", "paused", "ok")
    sent = texts(webhook)
    assert len(sent) == 2, sent
    assert "is paused: HubSpot refused its token (401)" in sent[0] and TOKEN_ENV in sent[0]
    assert "resolved" in sent[1] and "paused" in sent[1]
    assert [e["kind"] for e in logs if e["event"] == "alert_sent"] == ["paused"]
    assert [e["kind"] for e in logs if e["event"] == "alert_resolved"] == ["paused"]
    assert "e2e-s3cr3t" not in str(logs) and "revoked-token" not in str(logs)


def test_the_daily_budget_reserve_alerts_as_budget_not_as_a_failed_run(
    tmp_path: Path, store: SqlStateStore, webhook: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(generate_portal(150, 4), rate_limit="per10s=1000,search=5,daily=3") as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        portal = open_against(sb, webhook, portal_file(tmp_path, sb), store)
        with capture_logs() as logs:
            runs = [Cycle(portal, "incremental").run() for _ in range(2)]
    assert [(r.status, r.budget_spent) for r in runs] == [("failed", True), ("failed", True)]
    (sent,) = texts(webhook)
    assert "daily API budget reserve is reached" in sent
    assert [e["kind"] for e in logs if e["event"] == "alert_sent"] == ["budget"]


def test_the_service_alerts_too(
    tmp_path: Path, store: SqlStateStore, webhook: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(generate_portal(50, 5), rate_limit="off") as sb:
        folder = tmp_path / "portals"
        folder.mkdir()
        portal_file(folder, sb)
        monkeypatch.setenv(TOKEN_ENV, "revoked-token")
        webhook.add_passthru(sb.url)
        service = Service(folder, store, open_portal, jitter_s=0)

        with capture_logs() as logs:
            service.load()
            service.keep_leases()
            service.run_portal("acme-eu", "incremental")
            service.run_portal("acme-eu", "incremental")
        service.scheduler.remove_all_jobs()
    (sent,) = texts(webhook)
    assert "is paused" in sent
    assert [e["kind"] for e in logs if e["event"] == "alert_sent"] == ["paused"]
    assert [e["status"] for e in logs if e["event"] == "run_finished"] == ["paused", "paused"]
    assert not any(e["event"] == "run_crashed" for e in logs)


def test_dead_letters_from_a_real_cycle_count_towards_the_threshold(
    tmp_path: Path, store: SqlStateStore, webhook: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Sandbox(generate_portal(300, 6), rate_limit="off") as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        portal = open_against(sb, webhook, portal_file(tmp_path, sb), store)
        letters = [
            DeadLetter(str(i), {"ls_grade": "Z9"}, "INVALID_OPTION: Z9 is not an option", 400) for i in range(11)
        ]
        store.complete_writes(portal.id, "earlier", [], letters)
        with capture_logs() as logs:
            run = Cycle(portal, "full").run()
    assert run.status == "ok", run.error
    (sent,) = texts(webhook)
    assert f"{11 + run.counts.get('dead_lettered', 0)} dead letters in the last 24 hours (threshold 10)" in sent
    assert [e["kind"] for e in logs if e["event"] == "alert_sent"] == ["dead_letters"]
