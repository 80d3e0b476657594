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
