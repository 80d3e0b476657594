"""Logs: secrets never printed, emails hashed unless a portal allows them."""

from __future__ import annotations

import hashlib
import hmac
import io
import json

import pytest
import structlog

from sync.errors import ConfigError
from sync.observability import LOG_KEY_ENV, EmailHasher, configure_logging, email_for_log


def test_a_field_named_like_a_secret_is_never_printed() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    try:
        structlog.get_logger().info(
            "calling", token="pat-na1-secret", Authorization="Bearer pat-na1-secret", portal="p"
        )
    finally:
        structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    line = json.loads(out.getvalue())
    assert "pat-na1-secret" not in out.getvalue()
    assert line["token"] == line["Authorization"] == "[redacted]" and line["portal"] == "p"


def test_emails_are_hashed_unless_allowed_and_the_hash_is_stable() -> None:
    hashed = email_for_log("Jane@Buyer.com", allowed=False)
    assert hashed.startswith("hmac:") and "jane" not in hashed.lower()
    assert hashed == email_for_log("jane@buyer.com ", allowed=False)  # correlate across events
    assert email_for_log("jane@buyer.com", allowed=True) == "jane@buyer.com"


KEY = b"k" * 32


def test_the_hash_is_hmac_sha256_under_the_key_never_the_plain_sha256() -> None:
    hashed = EmailHasher(KEY)("Jane@Buyer.com", False)
    assert hashed == "hmac:" + hmac.new(KEY, b"jane@buyer.com", hashlib.sha256).hexdigest()[:16]
    assert hashlib.sha256(b"jane@buyer.com").hexdigest()[:16] not in hashed


def test_one_installation_hashes_an_address_alike_and_another_key_differently() -> None:
    one, same, other = EmailHasher(KEY), EmailHasher(KEY), EmailHasher(b"x" * 32)
    assert one("jane@buyer.com", False) == same(" JANE@buyer.com", False)
    assert one("jane@buyer.com", False) != other("jane@buyer.com", False)
    assert one("jane@buyer.com", False) != one("john@buyer.com", False)


def test_an_empty_address_stays_empty_and_the_key_never_prints() -> None:
    assert EmailHasher(KEY)("", False) == ""
    assert "k" * 8 not in repr(EmailHasher(KEY))


def test_the_env_key_wins_over_the_stored_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOG_KEY_ENV, "a-long-enough-key-for-logs")
    from_env = EmailHasher.for_installation(lambda: KEY)
    assert from_env("jane@buyer.com", False) == EmailHasher(b"a-long-enough-key-for-logs")("jane@buyer.com", False)
    monkeypatch.delenv(LOG_KEY_ENV)
    assert EmailHasher.for_installation(lambda: KEY)("j@b.c", False) == EmailHasher(KEY)("j@b.c", False)


def test_a_short_env_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOG_KEY_ENV, "short")
    with pytest.raises(ConfigError, match="LEADSYNC_LOG_KEY is 5 characters: give at least 16"):
        EmailHasher.for_installation(lambda: KEY)


def test_without_a_store_or_env_key_each_hasher_has_its_own_random_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOG_KEY_ENV, raising=False)
    assert EmailHasher.for_installation()("j@b.c", False) != EmailHasher.for_installation()("j@b.c", False)


# -- metrics --


def test_every_counter_is_exposed_with_total_and_each_name_is_in_the_readme() -> None:
    from pathlib import Path

    from prometheus_client.parser import text_string_to_metric_families

    from sync.observability import Metrics

    metrics = Metrics()
    metrics.record(
        "p", "incremental", "failed", {"written": 2, "dead_lettered": 1}, lambda: {("contacts.list", 200): 3}
    )
    metrics.leased.labels(portal="p").set(1)
    metrics.config_errors.labels(file="p.yaml").set(0)
    metrics.webhook_requests.labels(status="200").inc()
    metrics.webhook_events.labels(portal="p", outcome="queued").inc()
    families = list(text_string_to_metric_families(metrics.exposition().decode()))
    counters = {f.name for f in families if f.type == "counter"}
    assert counters == {
        "leadsync_runs",
        "leadsync_run_failures",
        "leadsync_contacts_written",
        "leadsync_dead_letters",
        "leadsync_api_calls",
        "leadsync_webhook_requests",
        "leadsync_webhook_events",
    }
    counted = {s.name for f in families if f.type == "counter" for s in f.samples if not s.name.endswith("_created")}
    assert counted == {name + "_total" for name in counters}
    samples = {s.name for f in families for s in f.samples if not s.name.endswith("_created")}
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert [name for name in sorted(samples) if f"`{name}" not in readme] == []


def test_api_calls_count_up_across_runs_and_across_a_reloaded_portal() -> None:
    from sync.observability import Metrics

    metrics = Metrics()

    def calls() -> float | None:
        labels = {"portal": "p", "endpoint": "contacts.search", "status": "200"}
        return metrics.registry.get_sample_value("leadsync_api_calls_total", labels)

    seen = {("contacts.search", 200): 5}
    first_client = lambda: dict(seen)  # noqa: E731 (the portal's client: its counts since it was opened)
    metrics.record("p", "incremental", "ok", {}, first_client)
    seen[("contacts.search", 200)] = 8
    metrics.record("p", "incremental", "ok", {}, first_client)
    assert calls() == 8
    metrics.record("p", "incremental", "ok", {}, first_client)  # no call since: nothing added
    assert calls() == 8
    reloaded = lambda: {("contacts.search", 200): 2}  # noqa: E731 (a new client after a reload counts from zero)
    metrics.record("p", "incremental", "ok", {}, reloaded)
    assert calls() == 10
