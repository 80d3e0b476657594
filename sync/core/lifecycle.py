"""Which lifecycle stage a contact should have, and how to write it.

HubSpot's `lifecyclestage` only moves forward: a backward value must be
cleared first, in a separate request, or HubSpot keeps the old value without
an error. So the engine promotes by default, never writes a stage the contact
is already past, never touches `never_touch` stages, and demotes only when
asked to, below the threshold minus the hysteresis, as a clear then a set.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from sync.core.model import StageWrite
from sync.core.rules import Lifecycle, StageThreshold


@dataclass(frozen=True, slots=True)
class StageDecision:
    target: str | None
    write: StageWrite
    reason: str


def decide_stage(
    lc: Lifecycle,
    *,
    current: str,
    score: int,
    fit_grade: str | None,
    fit_grade_rank: Mapping[str, int],
    rule_stages: Collection[str],
) -> StageDecision:
    """The target stage and the write that gets the contact there (or why none)."""
    if lc.mode == "off":
        return StageDecision(None, "none", "lifecycle is off")
    index = {stage: i for i, stage in enumerate(lc.order)}

    def grade_ok(th: StageThreshold) -> bool:
        if th.min_fit_grade is None:
            return True
        rank = fit_grade_rank.get(fit_grade) if fit_grade is not None else None
        return rank is not None and rank <= fit_grade_rank[th.min_fit_grade]

    def qualifying(slack: float) -> list[str]:
        stages = list(rule_stages)
        if lc.mode == "score":
            stages += [th.stage for th in lc.thresholds if score >= th.min_score - slack and grade_ok(th)]
        return stages

    def highest(stages: list[str]) -> str | None:
        return max(stages, key=index.__getitem__, default=None)

    target = highest(qualifying(0))
    if current in lc.never_touch:
        return StageDecision(target, "none", f"stage {current} is never touched")
    if current and current not in index:
        return StageDecision(target, "none", f"stage {current} is outside the stage order")
    position = index[current] if current else -1
    if target is not None and index[target] > position:
        return StageDecision(target, "set", f"promote {current or '(none)'} -> {target}")
    if target is not None and target == current:
        return StageDecision(target, "none", f"already {current}")
    if not lc.demote:
        if target is None:
            return StageDecision(None, "none", "no stage qualifies")
        return StageDecision(target, "none", f"forward only: already past {target}")
    managed = {th.stage for th in lc.thresholds} | {r.stage for r in lc.rules}
    if current not in managed:
        return StageDecision(target, "none", f"stage {current or '(none)'} is not set by this model")
    if current in qualifying(lc.hysteresis):
        return StageDecision(target, "none", f"keeps {current} within hysteresis {lc.hysteresis:g}")
    lower = [s for s in qualifying(lc.hysteresis) if index[s] < position]
    demoted = highest(lower) or lc.demote_to
    return StageDecision(demoted, "clear_then_set", f"demote {current} -> {demoted}")
