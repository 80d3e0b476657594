"""Alerts: once per incident, resolved once when it clears, never failing a run, never logging the URL."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import sqlalchemy as sa
import yaml
from structlog.testing import capture_logs

from sync.alerts import Alerter, Change, Facts, IncidentKind, WebhookNotifier, decide
from sync.app import alerter, open_portal
from sync.config import PortalConfig, build_portal
from sync.errors import ConfigError, FatalError
from sync.hubspot.errors import DailyLimitError
from sync.pipeline import Cycle, Portal, RunSummary
from sync.ports import DeadLetter
from sync.store import schema
from sync.store.state import SqlStateStore
from tests.factories import EXAMPLE, example_data, example_rules
from tests.fakes import FakeCrm, ManualClock, empty_portal

URL = "https://hooks.example.test/services/T000/B000/s3cr3t-hook"
ENV = "LEADSYNC_TEST_ALERT_WEBHOOK"
DAY1 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStateStore]:
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


@pytest.fixture
def hook() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def config(**alerts: Any) -> PortalConfig:
    data = example_data()
    if alerts:
        data["alerts"] = {"webhook_env": ENV, **alerts}
    return build_portal(data, Path("p.yaml")).config


def make_alerter(store: SqlStateStore, clock: ManualClock | None = None, **alerts: Any) -> Alerter:
    cfg = config(**alerts) if alerts else config(send_resolved=True)
    assert cfg.alerts is not None
    return Alerter(cfg, cfg.alerts, store, WebhookNotifier(URL, env=ENV, timeout_s=2), clock or ManualClock(DAY1))


def summary(status: str = "ok", *, budget: bool = False, error: str | None = None) -> RunSummary:
    run = RunSummary("run1", "incremental", status=status, error=error, budget_spent=budget)
    if status != "ok" and error is None:
        run.error = "crm.contacts.search: HTTP 400: bad filter"
    return run


def sent(rsps: responses.RequestsMock) -> list[str]:
    return [json.loads(call.request.body or b"{}")["text"] for call in rsps.calls]


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[IncidentKind]:
    return [e["kind"] for e in logs if e["event"] == name]


# -- the decision --


def facts(status: str = "ok", budget: bool = False, day: str = "2026-11-01", letters: int | None = None) -> Facts:
    return Facts(status, budget, day, letters, None if letters is None else 25)


OPEN = "2026-11-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("now", "open_since", "expected"),
    [
        pytest.param(facts("failed"), {}, [Change("run_failed", True)], id="a-failure-opens"),
        pytest.param(facts("failed"), {"run_failed": OPEN}, [], id="still-failing-says-nothing"),
        pytest.param(facts("ok"), {"run_failed": OPEN}, [Change("run_failed", False)], id="an-ok-run-clears"),
        pytest.param(facts("interrupted"), {"run_failed": OPEN}, [], id="an-interrupted-run-proves-nothing"),
        pytest.param(facts("paused"), {}, [Change("paused", True)], id="a-pause-opens"),
        pytest.param(facts("paused"), {"paused": OPEN}, [], id="still-paused"),
        pytest.param(facts("failed", budget=True), {}, [Change("budget", True)], id="budget-alerts-as-budget-only"),
        pytest.param(facts("failed", budget=True), {"budget": OPEN}, [], id="budget-same-day"),
        pytest.param(
            facts("failed", budget=True, day="2026-11-02"), {"budget": OPEN}, [Change("budget", True)], id="new-day"
        ),
        pytest.param(
            facts("interrupted", day="2026-11-02"), {"budget": OPEN}, [Change("budget", False)], id="budget-next-day"
        ),
        pytest.param(facts("failed"), {"budget": OPEN}, [Change("run_failed", True)], id="budget-stays-same-day"),
        pytest.param(facts(letters=26), {}, [Change("dead_letters", True)], id="letters-over"),
        pytest.param(facts(letters=25), {}, [], id="letters-at-threshold"),
        pytest.param(facts(letters=25), {"dead_letters": OPEN}, [Change("dead_letters", False)], id="letters-back"),
        pytest.param(
            facts("ok"),
            {"run_failed": OPEN, "paused": OPEN, "budget": OPEN},
            [Change("run_failed", False), Change("paused", False), Change("budget", False)],
            id="an-ok-run-clears-all",
        ),
    ],
)
def test_which_incidents_open_and_clear(
    now: Facts, open_since: dict[IncidentKind, str], expected: list[Change]
) -> None:
    assert decide(now, open_since) == expected


# -- the alerter, on a real store --


def test_one_alert_per_incident_one_resolved_and_a_new_incident_alerts_again(
    store: SqlStateStore, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200, body="ok")
    alert = make_alerter(store)
    with capture_logs() as logs:
        for _ in range(3):
            alert(summary("failed"))
        alert(summary("ok"))
        alert(summary("ok"))
        alert(summary("failed"))
    texts = sent(hook)
    assert len(texts) == 3
    assert "a sync run failed" in texts[0] and "HTTP 400: bad filter" in texts[0]
    assert "resolved" in texts[1] and "resolved" not in texts[2]
    assert events(logs, "alert_sent") == ["run_failed", "run_failed"]
    assert events(logs, "alert_resolved") == ["run_failed"]
    payload = json.loads(hook.calls[0].request.body or b"{}")
    assert payload == {"text": texts[0]}  # what a Slack-compatible webhook takes


def test_the_incident_state_is_shared_through_the_store(store: SqlStateStore, hook: responses.RequestsMock) -> None:
    hook.post(URL, status=200)
    make_alerter(store)(summary("failed"))
    make_alerter(store)(summary("failed"))  # a restart, or another replica
    assert len(hook.calls) == 1
    assert store.get_cursor(config().portal.id, "alert:run_failed")


def test_a_paused_portal_alerts_as_paused(store: SqlStateStore, hook: responses.RequestsMock) -> None:
    hook.post(URL, status=200)
    alert = make_alerter(store)
    with capture_logs() as logs:
        alert(summary("paused", error="crm.properties: HTTP 401: Authentication credentials not found"))
        alert(summary("paused", error="portal paused: HubSpot answered 401"))
    (text,) = sent(hook)
    assert "paused" in text and "HUBSPOT_TOKEN_ACME" in text
    assert events(logs, "alert_sent") == ["paused"]


def add_dead_letters(store: SqlStateStore, pid: int, n: int) -> None:
    letters = [DeadLetter(f"c{i}", {"ls_score": "5"}, "INVALID_OPTION", 400) for i in range(n)]
    store.complete_writes(pid, "run0", [], letters)


def test_dead_letters_over_the_threshold_alert_once_and_resolve_when_back_under(
    store: SqlStateStore, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200)
    alert = make_alerter(store, dead_letters_over=2)
    pid = config().portal.id
    with capture_logs() as logs:
        add_dead_letters(store, pid, 2)
        alert(summary("ok"))  # at the threshold: nothing
        add_dead_letters(store, pid, 1)
        alert(summary("ok"))
        add_dead_letters(store, pid, 5)
        alert(summary("ok"))
        with store.engine.begin() as conn:  # an operator dealt with them
            conn.execute(sa.delete(schema.dead_letters))
        alert(summary("ok"))
    texts = sent(hook)
    assert len(texts) == 2
    assert "3 dead letters in the last 24 hours (threshold 2)" in texts[0]
    assert "resolved" in texts[1] and "0 dead letters" in texts[1]
    assert events(logs, "alert_sent") == ["dead_letters"]


def test_a_dead_letter_incident_clears_when_its_letters_are_a_day_old(
    tmp_path: Path, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200)
    clock = ManualClock(1_800_000_000.0)
    store = SqlStateStore(f"sqlite:///{tmp_path / 'aging.db'}", clock=clock)
    alert = make_alerter(store, dead_letters_over=2)
    add_dead_letters(store, config().portal.id, 3)
    alert(summary("ok"))
    clock.advance(86_400 + 1)  # the letters stay in the store, but no longer count
    alert(summary("ok"))
    store.close()
    texts = sent(hook)
    assert len(texts) == 2 and "resolved" in texts[1]


def test_dead_letters_are_not_watched_without_a_threshold(store: SqlStateStore, hook: responses.RequestsMock) -> None:
    add_dead_letters(store, config().portal.id, 100)
    make_alerter(store, send_resolved=True)(summary("ok"))
    assert len(hook.calls) == 0


def test_a_budget_stop_alerts_as_budget_only_and_clears_with_a_new_day(
    store: SqlStateStore, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200)
    clock = ManualClock(DAY1)
    alert = make_alerter(store, clock)
    with capture_logs() as logs:
        alert(summary("failed", budget=True, error="rate limiter: daily budget used up (20% kept)"))
        alert(summary("failed", budget=True, error="rate limiter: daily budget used up (20% kept)"))
        clock.set(DAY1 + timedelta(days=1))
        alert(summary("interrupted"))
    texts = sent(hook)
    assert len(texts) == 2 and "daily API budget reserve is reached" in texts[0] and "resolved" in texts[1]
    assert events(logs, "alert_sent") == ["budget"]
    assert events(logs, "alert_resolved") == ["budget"]


def test_without_resolved_messages_an_incident_closes_quietly(
    store: SqlStateStore, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200)
    alert = make_alerter(store, send_resolved=False)
    with capture_logs() as logs:
        alert(summary("failed"))
        alert(summary("ok"))
        alert(summary("failed"))
    assert len(hook.calls) == 2
    assert [e["notified"] for e in logs if e["event"] == "alert_resolved"] == [False]


# -- a failing webhook --


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"status": 500, "body": f"upstream error for {URL}"}, id="http-500"),
        pytest.param({"status": 404, "body": "no_service"}, id="http-404"),
        pytest.param({"body": requests.ConnectTimeout(f"timed out: {URL}")}, id="timeout"),
        pytest.param({"body": requests.ConnectionError(f"refused: {URL}")}, id="refused"),
    ],
)
def test_a_failing_webhook_is_logged_retried_next_cycle_and_never_fails_the_run(
    store: SqlStateStore, hook: responses.RequestsMock, failure: dict[str, Any]
) -> None:
    hook.post(URL, **failure)
    hub = empty_crm(FatalError("forms: HTTP 403: missing scope forms"))
    portal = fake_portal(store, hub)
    with capture_logs() as logs:
        first = Cycle(portal, "incremental").run()
        hook.replace(responses.POST, URL, status=200)
        second = Cycle(portal, "incremental").run()
        third = Cycle(portal, "incremental").run()
    assert first.status == second.status == third.status == "failed"
    assert first.error == "forms: HTTP 403: missing scope forms"
    failed = [e for e in logs if e["event"] == "alert_failed"]
    assert len(failed) == 1 and failed[0]["kind"] == "run_failed" and failed[0]["portal"] == "acme-eu"
    assert events(logs, "alert_sent") == ["run_failed"]  # sent by the second cycle, not again by the third
    assert len(hook.calls) == 2
    assert "s3cr3t" not in str(logs)


def test_the_webhook_url_never_reaches_the_logs(store: SqlStateStore, hook: responses.RequestsMock) -> None:
    hook.post(URL, status=403, body=f"invalid_token for {URL}")
    notifier = WebhookNotifier(URL, env=ENV)
    cfg = config(dead_letters_over=0)
    assert cfg.alerts is not None
    alert = Alerter(cfg, cfg.alerts, store, notifier, ManualClock(DAY1))
    with capture_logs() as logs:
        alert(summary("failed"))
        hook.replace(responses.POST, URL, status=200)
        alert(summary("failed"))
        alert(summary("ok"))
    assert events(logs, "alert_failed") == ["run_failed"]
    assert events(logs, "alert_sent") == ["run_failed"]
    assert "s3cr3t" not in str(logs) and "hooks.example.test" not in str(logs)
    assert "s3cr3t" not in repr(notifier)


@pytest.mark.parametrize("status", [404, 500])
def test_a_webhook_error_is_logged_with_its_status_and_without_any_part_of_the_url(
    store: SqlStateStore, hook: responses.RequestsMock, status: int
) -> None:
    hook.post(URL, status=status, body="Cannot POST /services/T000/B000/s3cr3t-hook")  # a server echoing the path
    alert = make_alerter(store)
    with capture_logs() as logs:
        alert(summary("failed"))
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert "s3cr3t" not in str(logs)
    assert f"error={status}" in failed["error"]


def test_an_unset_webhook_variable_is_reported_and_the_portal_still_runs(
    store: SqlStateStore, hook: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with capture_logs() as logs:
        hook_fn = alerter(config(dead_letters_over=5), store, ManualClock(DAY1))
        assert hook_fn is not None
        hook_fn(summary("failed"))
    assert [e["env"] for e in logs if e["event"] == "alert_webhook_unset"] == [ENV]
    (failed,) = [e for e in logs if e["event"] == "alert_failed"]
    assert failed["error"] == f"{ENV} is not set: export the incoming-webhook URL in it"
    assert store.get_cursor(config().portal.id, "alert:run_failed") in (None, "")  # tried again next cycle


def test_mrkdwn_in_an_error_is_escaped_for_a_slack_compatible_webhook(hook: responses.RequestsMock) -> None:
    from sync.alerts import Context, compose

    hook.post(URL, status=200)
    message = compose(Change("run_failed", True), Context("acme", "r1", error="<script> & co"))
    assert "<script> & co" in message.text  # plain text: each channel escapes it its own way
    WebhookNotifier(URL, env=ENV).send(message)
    (text,) = sent(hook)
    assert "&lt;script&gt; &amp; co" in text and "<script>" not in text


# -- the pipeline: a budget stop is told apart from a failure --


def empty_crm(error: Exception | None = None) -> FakeCrm:
    """The portal of the config, with no contacts; `error` is raised by every read of its forms (early in a run)."""
    crm = FakeCrm(empty_portal(config().portal.id, example_rules().list_ids), ManualClock(DAY1))
    if error is not None:
        crm.fail["forms"] = error
    return crm


def fake_portal(store: SqlStateStore, hub: FakeCrm, clock: ManualClock | None = None) -> Portal:
    cfg = config(dead_letters_over=10)
    clock = clock or ManualClock(DAY1)
    assert cfg.alerts is not None
    return Portal(
        config=cfg,
        rules=example_rules(),
        source=hub,
        writer=hub,
        store=store,
        clock=clock,
        after_run=Alerter(cfg, cfg.alerts, store, WebhookNotifier(URL, env=ENV, timeout_s=2), clock),
    )


def test_a_budget_stop_is_a_failed_run_marked_budget_and_alerts_as_budget_only(
    store: SqlStateStore, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200)
    hub = empty_crm(DailyLimitError("rate limiter", 0, "daily budget used up (20% kept for other integrations)"))
    portal = fake_portal(store, hub)
    with capture_logs() as logs:
        stopped = Cycle(portal, "incremental").run()
        hub.fail.clear()
        ok = Cycle(portal, "incremental").run()
    assert (stopped.status, stopped.budget_spent) == ("failed", True)
    assert (ok.status, ok.budget_spent) == ("ok", False)
    assert [e.get("reason") for e in logs if e["event"] == "run_stopped"] == ["daily_budget"]
    assert events(logs, "alert_sent") == ["budget"]
    assert events(logs, "alert_resolved") == ["budget"]


def test_a_generic_fatal_error_is_not_a_budget_stop(store: SqlStateStore, hook: responses.RequestsMock) -> None:
    hook.post(URL, status=200)
    run = Cycle(fake_portal(store, empty_crm(FatalError("stop"))), "incremental").run()
    assert (run.status, run.budget_spent) == ("failed", False)


def test_a_crashing_run_alerts_before_the_error_reaches_the_job_boundary(
    store: SqlStateStore, hook: responses.RequestsMock
) -> None:
    hook.post(URL, status=200)
    with pytest.raises(KeyError):
        Cycle(fake_portal(store, empty_crm(KeyError("boom"))), "incremental").run()
    (text,) = sent(hook)
    assert "KeyError" in text


# -- wiring and config --


def portal_file(tmp_path: Path, alerts: dict[str, Any] | None) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    if alerts is not None:
        data["alerts"] = alerts
    file = tmp_path / "portal.yaml"
    file.write_text(yaml.safe_dump(data))
    return file


def test_open_portal_wires_alerts_only_when_the_section_is_there(
    tmp_path: Path, store: SqlStateStore, hook: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_TOKEN_ACME", "pat-test")
    monkeypatch.setenv(ENV, URL)
    without = open_portal(portal_file(tmp_path, None), store)
    assert without.after_run is None
    with_alerts = open_portal(portal_file(tmp_path, {"webhook_env": ENV, "dead_letters_over": 25}), store)
    assert isinstance(with_alerts.after_run, Alerter)
    assert with_alerts.after_run.alerts.dead_letters_over == 25


def test_no_alerts_section_sends_nothing(store: SqlStateStore, hook: responses.RequestsMock) -> None:
    cfg = config()
    assert cfg.alerts is None and alerter(cfg, store, ManualClock(DAY1)) is None
    portal = fake_portal(store, empty_crm(FatalError("stop")))
    portal.after_run = None
    assert Cycle(portal, "incremental").run().status == "failed"
    assert len(hook.calls) == 0


@pytest.mark.parametrize(
    ("alerts", "path", "message"),
    [
        ({"webhook_env": URL}, "alerts.webhook_env", "looks like a webhook URL pasted into the file"),
        ({"webhook_env": "alert webhook"}, "alerts.webhook_env", "must be the name of an environment variable"),
        ({"webhook_env": ENV, "dead_letters_over": -1}, "alerts.dead_letters_over", "must be between 0 and"),
        ({"dead_letters_over": 3}, "alerts.url_env", "required key is missing"),
        ({"webhook_env": ENV, "channel": "#ops"}, "alerts.channel", "unknown key"),
    ],
)
def test_a_broken_alerts_section_is_a_config_error(alerts: dict[str, Any], path: str, message: str) -> None:
    data = example_data()
    data["alerts"] = alerts
    with pytest.raises(ConfigError) as info:
        build_portal(data, Path("p.yaml"))
    found = [(p.path, p.message) for p in info.value.problems]
    assert any(p == path and message in m for p, m in found), found
    assert "s3cr3t" not in str(info.value)
