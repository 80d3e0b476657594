"""History rows carry the product-interest scores in their breakdown JSON, unchanged, on every backend (no new
column: rows written before interests existed read as before)."""

from __future__ import annotations

from sync.ports import HistoryRow, PendingWrite, StateStore

PORTAL = 42
INTERESTS = {
    "grid_analytics": {"score": 45, "points": 45, "decay": 0, "lines": [["pricing-form", 30.0, "1 x form_submission"]]},
    "energy_data": {"score": None, "points": 0, "decay": 0, "lines": []},  # outside its segment
}


def row(breakdown: dict[str, object]) -> HistoryRow:
    return HistoryRow("1", "run-1", "v1", None, 40, "B1", None, "+40 demo", breakdown)


def test_a_history_row_keeps_the_interests_of_its_breakdown(store: StateStore) -> None:
    with_interests = row({"score": 40, "lines": [], "stage_from": "lead", "interests": INTERESTS})
    write = PendingWrite("1", {"ls_interest_grid_analytics": "45"}, None, with_interests)
    store.record_pending(PORTAL, "run-1", [write])
    store.complete_writes(PORTAL, "run-1", [write], [])
    assert store.history(PORTAL, "1") == [with_interests]
    assert store.history(PORTAL, "1")[0].breakdown["interests"] == INTERESTS
