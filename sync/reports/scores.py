"""Score results as JSON objects and as a readable table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.core.model import AccountResult, InterestResult, ScoreResult
from sync.core.scoring import breakdown_reasons, reasons_text


def result_json(result: ScoreResult) -> dict[str, Any]:
    """The `score --json` object of one contact."""
    return {
        "contact_id": result.contact_id,
        "model": result.model,
        "fit": result.fit,
        "engagement": result.engagement,
        "decay": result.decay,
        "score": result.score,
        "grade": result.grade,
        "fit_grade": result.fit_grade,
        "engagement_grade": result.engagement_grade,
        "current_stage": result.current_stage or None,
        "stage_target": result.stage_target,
        "stage_write": result.stage_write,
        "stage_reason": result.stage_reason,
        "stage_held": result.stage_held,
        "excluded": result.excluded,
        "exclusion_reason": result.exclusion_reason,
        "holdout": result.holdout,
        "version": result.version,
        "reasons": reasons_text(result),
        "breakdown": [
            {"rule": h.rule, "group": h.group, "matched": h.matched, "points": h.cents / 100, "detail": h.detail}
            for h in result.breakdown
        ],
        **({"interests": [interest_json(i) for i in result.interests]} if result.interests else {}),
    }


def interest_json(interest: InterestResult) -> dict[str, Any]:
    """One product-interest score of a contact (score None: the contact is outside its segment)."""
    return {
        "name": interest.name,
        "score": interest.score,
        "points": interest.points,
        "decay": interest.decay,
        "reasons": breakdown_reasons(interest.breakdown),
        "breakdown": [
            {"rule": h.rule, "group": h.group, "matched": h.matched, "points": h.cents / 100, "detail": h.detail}
            for h in interest.breakdown
        ],
    }


def _stage(result: ScoreResult) -> str:
    current = result.current_stage or "-"
    if result.stage_write == "none":
        return current
    arrow = "=>" if result.stage_write == "clear_then_set" else "->"
    return f"{current} {arrow} {result.stage_target}"


def _status(result: ScoreResult) -> str:
    if result.excluded:
        return f"excluded: {result.exclusion_reason}"
    return "holdout" if result.holdout else ""


def _table(columns: Iterable[tuple[str, str]]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    return table


def print_table(results: Iterable[ScoreResult], console: Console) -> int:
    table = _table(
        (
            ("contact", "left"),
            ("model", "left"),
            ("fit", "right"),
            ("eng", "right"),
            ("decay", "right"),
            ("score", "right"),
            ("grade", "center"),
            ("stage", "left"),
            ("status", "left"),
            ("reasons", "left"),
        )
    )
    count = 0
    for r in results:
        table.add_row(
            r.contact_id,
            r.model or "-",
            str(r.fit),
            str(r.engagement),
            str(r.decay),
            str(r.score),
            r.grade or "-",
            _stage(r),
            _status(r),
            reasons_text(r, limit=80),
        )
        count += 1
    console.print(table)
    return count


def print_company_table(results: Iterable[AccountResult], console: Console) -> int:
    """One row per company: its fit, engagement (roll-up and contacts rules), score, grade and contacts."""
    table = _table(
        (
            ("company", "left"),
            ("fit", "right"),
            ("eng", "right"),
            ("score", "right"),
            ("grade", "center"),
            ("contacts", "right"),
            ("excluded", "right"),
            ("reasons", "left"),
        )
    )
    count = 0
    for r in results:
        table.add_row(
            r.company_id,
            str(r.fit),
            str(r.engagement),
            str(r.score),
            r.grade or "-",
            str(r.contacts),
            str(r.excluded_contacts),
            breakdown_reasons(r.breakdown, limit=80),
        )
        count += 1
    console.print(table)
    return count
