"""How every report and command prints times and numbers: one place, so they read the same everywhere.

Times are ISO 8601 in UTC with a `Z`, to the second (`2026-11-29T02:34:00Z`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """A moment as ISO 8601 UTC to the second; a naive moment is taken as UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_ms(ms: int | float) -> str:
    """Epoch milliseconds (HubSpot's timestamps) as ISO 8601 UTC to the second."""
    return iso(datetime.fromtimestamp(ms / 1000, UTC))


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal; `-` when there is none."""
    return "-" if value is None else f"{value:.1%}"


def lift(value: float | None) -> str:
    """A lift as a multiple (`2.50x`); `-` when there is none."""
    return "-" if value is None else f"{value:.2f}x"


def show(value: float | None) -> str:
    """A score as short as it reads (`70`, `70.5`); `-` when never scored."""
    return "-" if value is None else f"{value:g}"


def num(value: float | None) -> int | float | None:
    """A number for JSON: whole numbers as int, NaN and None as None."""
    if value is None or math.isnan(value):
        return None
    return int(value) if value == int(value) else value


def count(n: int, one: str, many: str | None = None) -> str:
    """`1 contact`, `2 contacts`: a count with its noun agreeing (`many` where the plural is not one + "s")."""
    return f"{n} {one if n == 1 else many or one + 's'}"
