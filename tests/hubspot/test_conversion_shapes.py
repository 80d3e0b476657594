"""A contact of the conversions search as the poll reads it (sync.hubspot.shapes.conversion_from_wire)."""

from __future__ import annotations

from typing import Any

import pytest

from sync.errors import SkippableRecordError
from sync.hubspot.shapes import conversion_from_wire
from sync.ports import Conversion


def wire(**props: Any) -> dict[str, Any]:
    return {"id": "7", "properties": {"email": "Ana@Buyer-Corp.com", **props}}


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"recent_conversion_date": "2026-11-01T12:00:00.000Z", "recent_conversion_event_name": "Pricing: Demo",
             "num_conversion_events": "3"},
            Conversion("7", "ana@buyer-corp.com", 1_793_534_400_000, "Pricing: Demo", 3),
        ),
        ({"recent_conversion_date": "1793534400000"},
         Conversion("7", "ana@buyer-corp.com", 1_793_534_400_000, "", None)),
        ({"recent_conversion_date": "1793534400000", "num_conversion_events": "2.5"},
         Conversion("7", "ana@buyer-corp.com", 1_793_534_400_000, "", None)),
        ({"recent_conversion_date": "1793534400000", "num_conversion_events": None},
         Conversion("7", "ana@buyer-corp.com", 1_793_534_400_000, "", None)),
    ],
    ids=["iso-date-name-count", "epoch-ms", "fractional-count", "null-count"],
)  # fmt: skip
def test_a_converted_contact_is_read_with_its_latest_conversion(props: dict[str, Any], expected: Conversion) -> None:
    assert conversion_from_wire(wire(**props)) == expected


@pytest.mark.parametrize("raw", [wire(), wire(recent_conversion_date="soon"), {"properties": {}}, "7"])
def test_a_contact_without_a_usable_conversion_is_skipped(raw: Any) -> None:
    with pytest.raises(SkippableRecordError):
        conversion_from_wire(raw)
