"""The minimal writes for one scored contact: only values that differ from what HubSpot holds.

Our own writes bump lastmodifieddate, so the next incremental pass sees the
contacts just written: a write that changes nothing would make the worker feed
on itself. `scored_at` is therefore written only together with a real change.
Nothing is written for holdout contacts or, with `exclusion_action: skip`,
excluded ones; `zero` writes zeros and leaves the stage alone.

Product-interest scores have properties of their own and are compared one
property at a time like the rest: a change to one interest writes that
interest's properties only (with `scored_at`), never the others'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

from sync.core.conditions import parse_number
from sync.core.model import Contact, InterestResult, PropertyUpdate, ScoreResult, StageChange
from sync.core.rules import InterestSpec, OutputProperties
from sync.core.scoring import breakdown_reasons, reasons_text
from sync.core.wire import LIFECYCLE_STAGE


class ContactPlan:
    """What to write for one contact: property values (a forward stage among them) and a backward stage move."""

    def __init__(self, update: PropertyUpdate | None, stage_change: StageChange | None) -> None:
        self.update: Final = update
        self.stage_change: Final = stage_change

    @property
    def empty(self) -> bool:
        return self.update is None and self.stage_change is None


def desired_values(
    result: ScoreResult,
    props: OutputProperties,
    action: Literal["skip", "zero"],
    reasons: str | None = None,
    interests: Sequence[InterestSpec] = (),
) -> dict[str, str] | None:
    """The values our properties should hold, or None when nothing may be written.

    `reasons` is `reasons_text(result)` when the caller has it already; `interests` are the rule set's interest
    scores, in the order of `result.interests`."""
    if result.holdout or result.model is None:
        return None
    if result.excluded:
        if action == "skip":
            return None
        excluded = f"excluded: {result.exclusion_reason}"
        return {
            props.score: "0",
            props.fit: "0",
            props.engagement: "0",
            props.grade: "",
            props.reasons: excluded,
            **interest_values(interests, result.interests, excluded),
        }
    return {
        props.score: str(result.score),
        props.fit: str(result.fit),
        props.engagement: str(result.engagement),
        props.grade: result.grade or "",
        props.reasons: reasons_text(result) if reasons is None else reasons,
        **interest_values(interests, result.interests),
    }


def interest_values(
    specs: Sequence[InterestSpec], results: Sequence[InterestResult], excluded: str | None = None
) -> dict[str, str]:
    """The values each interest's properties should hold: its score and reasons; empty (cleared) outside its
    segment; 0 and `excluded` for an excluded contact written as zeros."""
    values: dict[str, str] = {}
    if not specs:
        return values
    for spec, result in zip(specs, results, strict=True):
        out = spec.properties
        if excluded is not None:
            score, reasons = "0", excluded
        elif result.score is None:
            score, reasons = "", ""
        else:
            score, reasons = str(result.score), breakdown_reasons(result.breakdown)
        values[out.score] = score
        if out.reasons is not None:
            values[out.reasons] = reasons
    return values


def same(current: str | None, wanted: str) -> bool:
    """HubSpot holds `wanted` already: the same text, or the same number written another way."""
    have = current or ""
    if have == wanted:
        return True
    a, b = parse_number(have), parse_number(wanted)
    return a is not None and a == b  # HubSpot may hand back "70.0" for 70


def plan_contact(
    result: ScoreResult,
    contact: Contact,
    props: OutputProperties,
    action: Literal["skip", "zero"],
    scored_at_ms: int,
    current: Mapping[str, str] | None = None,
    *,
    reasons: str | None = None,
    interests: Sequence[InterestSpec] = (),
) -> ContactPlan:
    """The writes that bring HubSpot to `result`; `current` defaults to the contact's own properties."""
    holding = contact.properties if current is None else current
    desired = desired_values(result, props, action, reasons, interests)
    if desired is None:
        return ContactPlan(None, None)
    changed = {name: value for name, value in desired.items() if not same(holding.get(name), value)}
    stage_change = None
    if not result.excluded and result.stage_target is not None:
        if result.stage_write == "set":
            changed[LIFECYCLE_STAGE] = result.stage_target
        elif result.stage_write == "clear_then_set":
            stage_change = StageChange(contact.id, result.stage_target, clear_first=True)
    if changed:
        changed[props.scored_at] = str(scored_at_ms)
    update = PropertyUpdate(contact.id, changed) if changed else None
    return ContactPlan(update, stage_change)
