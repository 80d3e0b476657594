"""Structured logs: JSON events with bound context; tokens never, emails only when allowed (hashed otherwise)."""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = frozenset({"token", "access_token", "authorization", "password", "secret"})
_EMAIL_KEYS = frozenset({"email", "recipient"})


def _redact(log_emails: bool) -> structlog.types.Processor:
    def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event):
            lowered = key.lower()
            if lowered in _SECRET_KEYS:
                event[key] = "[redacted]"
            elif lowered in _EMAIL_KEYS and not log_emails and isinstance(event[key], str):
                event[key] = "sha256:" + hashlib.sha256(event[key].strip().lower().encode()).hexdigest()[:16]
        return event

    return redact


def configure_logging(
    *, json: bool = True, level: str = "info", log_emails: bool = False, stream: TextIO | None = None
) -> None:
    """Route structlog to `stream` (stdout) as JSON lines, or as readable lines on a terminal."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact(log_emails),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
