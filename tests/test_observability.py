"""Logs: secrets never printed, emails hashed unless a portal allows them."""

from __future__ import annotations

import io
import json

import structlog

from sync.observability import configure_logging, email_for_log


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
    assert hashed.startswith("sha256:") and "jane" not in hashed.lower()
    assert hashed == email_for_log("jane@buyer.com ", allowed=False)  # correlate across events
    assert email_for_log("jane@buyer.com", allowed=True) == "jane@buyer.com"
