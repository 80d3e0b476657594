"""How reports print counts and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from sync.reports.text import count, iso, iso_ms


@pytest.mark.parametrize(
    ("n", "one", "many", "shown"),
    [
        (1, "contact", None, "1 contact"),
        (0, "contact", None, "0 contacts"),
        (2, "batch update", None, "2 batch updates"),
        (1, "company", "companies", "1 company"),
        (5, "company", "companies", "5 companies"),
    ],
)
def test_a_count_agrees_with_its_noun(n: int, one: str, many: str | None, shown: str) -> None:
    assert count(n, one, many) == shown


def test_times_print_as_iso_8601_utc_to_the_second() -> None:
    assert iso_ms(1_793_620_800_123) == "2026-11-02T12:00:00Z"
    assert iso(datetime(2026, 11, 2, 13, 0, 0, 999, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-02T12:00:00Z"
    assert iso(datetime(2026, 11, 2, 12, 0, 0)) == "2026-11-02T12:00:00Z"  # naive: taken as UTC
    assert iso(datetime(2026, 11, 2, 12, 0, 0, tzinfo=UTC)) == "2026-11-02T12:00:00Z"
