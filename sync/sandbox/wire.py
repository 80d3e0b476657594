"""Small wire helpers shared by the sandbox modules: the API error, timestamps, cursors."""

from __future__ import annotations

import base64
import binascii
import math
import time
from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]


class ApiError(Exception):
    """An error answer in HubSpot's shape; the server adds the correlationId."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.extra = extra

    def body(self, correlation_id: str) -> JsonObject:
        return {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id,
            "category": self.category,
            **self.extra,
        }


def bad_request(message: str, **extra: Any) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, **extra)


def not_found(message: str, **extra: Any) -> ApiError:
    return ApiError(404, "OBJECT_NOT_FOUND", message, **extra)


def iso_ms(ms: int) -> str:
    """Epoch ms -> '2026-10-31T12:00:00.000Z', the form HubSpot uses for datetime values."""
    t = time.gmtime(ms // 1000)  # about twice as fast as datetime: it runs for every contact rendered
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], ms % 1000)  # noqa: UP031


def parse_ms(value: Any) -> int | None:
    """Epoch ms from ms digits (int or str) or ISO 8601 text; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.lstrip("-").isdigit() and text.isascii():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return round(parsed.timestamp() * 1000)


def encode_cursor(*parts: object) -> str:
    """An opaque paging token, as HubSpot's are: clients must pass it back untouched."""
    text = "\x1f".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str, parts: int, name: str = "after") -> list[str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        fields = base64.urlsafe_b64decode(padded.encode()).decode().split("\x1f")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"Invalid paging token '{name}': {token!r}") from exc
    if len(fields) != parts:
        raise bad_request(f"Invalid paging token '{name}': {token!r}")
    return fields


def query_int(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values or values[-1] == "":
        return default
    try:
        return int(values[-1])
    except ValueError as exc:
        raise bad_request(f"Query parameter '{name}' must be an integer, got {values[-1]!r}") from exc


def query_str(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values and values[-1] != "" else None
