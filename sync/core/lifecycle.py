"""Which lifecycle stage a contact should have, and how to write it.

HubSpot's `lifecyclestage` only moves forward: a backward value must be
cleared first, in a separate request, or HubSpot keeps the old value without
an error. So the engine promotes by default, never writes a stage the contact
is already past, never touches `never_touch` stages, and demotes only when
asked to, below the threshold minus the hysteresis, as a clear then a set.

A stage leadsync did not write is someone's decision: it may be promoted
past, never moved back. A demotion needs the contact's current stage to be
the one leadsync itself last wrote (`written_stage`), unless the portal opted
in to owning every stage (`own_stages: all`); otherwise it is held back, and
the decision says so (`held`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

from sync.core.model import StageWrite
from sync.core.rules import Lifecycle


class StageDecision:
    """`target` is set only when `write` is not "none": the stage the write puts the contact in.

    `held` is true when a demotion was due but held back: the stage was not leadsync's to move back.
    """

    def __init__(self, target: str | None, write: StageWrite, reason: str, held: bool = False) -> None:
        self.target: Final = target
        self.write: Final = write
        self.reason: Final = reason
        self.held: Final = held

    def __repr__(self) -> str:
        return f"StageDecision({self.target!r}, {self.write!r}, {self.reason!r}, held={self.held!r})"


def _qualifying(
    lc: Lifecycle,
    score: int,
    fit_rank: int | None,
    fit_grade_rank: Mapping[str, int],
    rule_stages: Collection[str],
    slack: float,
    check_grade: bool = True,
) -> list[str]:
    """Stages the contact qualifies for, with thresholds lowered by `slack`."""
    stages = list(rule_stages)
    if lc.mode == "score":
        for th in lc.thresholds:
            if score < th.min_score - slack:
                continue
            if (
                check_grade
                and th.min_fit_grade is not None
                and (fit_rank is None or fit_rank > fit_grade_rank[th.min_fit_grade])
            ):
                continue
            stages.append(th.stage)
    return stages


def _pointing(target: str | None) -> str:
    return f" (the rules point to {target})" if target else ""


def decide_stage(
    lc: Lifecycle,
    *,
    current: str,
    score: int,
    fit_grade: str | None,
    fit_grade_rank: Mapping[str, int],
    rule_stages: Collection[str],
    written_stage: str | None = None,
) -> StageDecision:
    """The target stage and the write that gets the contact there (or why none).

    `written_stage` is the stage leadsync itself last wrote for this contact (None: none known).
    """
    if lc.mode == "off":
        return StageDecision(None, "none", "lifecycle is off")
    index = lc.index
    fit_rank = fit_grade_rank.get(fit_grade) if fit_grade is not None else None
    stages = _qualifying(lc, score, fit_rank, fit_grade_rank, rule_stages, 0)
    target = max(stages, key=index.__getitem__) if stages else None
    untouched = _untouched(lc, current, target)
    if untouched is not None:
        return untouched
    position = index[current] if current else -1
    if target is not None and index[target] > position:
        return StageDecision(target, "set", f"promote {current or '(none)'} -> {target}")
    if target is not None and target == current:
        return StageDecision(None, "none", f"already {current}")
    return _backward(lc, current, position, target, score, fit_rank, fit_grade_rank, rule_stages, written_stage)


def _untouched(lc: Lifecycle, current: str, target: str | None) -> StageDecision | None:
    """Why the current stage is left as it is whatever the score, or None when it may move."""
    if current in lc.never_touch:
        return StageDecision(None, "none", f"stage {current} is never touched{_pointing(target)}")
    if current and current not in lc.index:
        return StageDecision(None, "none", f"stage {current} is outside the stage order{_pointing(target)}")
    return None


def _backward(
    lc: Lifecycle,
    current: str,
    position: int,
    target: str | None,
    score: int,
    fit_rank: int | None,
    fit_grade_rank: Mapping[str, int],
    rule_stages: Collection[str],
    written_stage: str | None,
) -> StageDecision:
    """The contact is past every stage it qualifies for: a demotion, or why none."""
    if not lc.demote:
        if target is None:
            return StageDecision(None, "none", "no stage qualifies")
        return StageDecision(None, "none", f"forward only: already past {target}")
    if current not in lc.managed:
        return StageDecision(None, "none", f"stage {current or '(none)'} is not set by this model{_pointing(target)}")
    # Only the score demotes (docs/SCORING.md section 3): a fit grade that slips does not, or stages would flap.
    held = _qualifying(lc, score, fit_rank, fit_grade_rank, rule_stages, lc.hysteresis, check_grade=False)
    if current in held:
        return StageDecision(None, "none", f"keeps {current} within hysteresis {lc.hysteresis:g}")
    index = lc.index
    lower = [
        stage
        for stage in _qualifying(lc, score, fit_rank, fit_grade_rank, rule_stages, lc.hysteresis)
        if index[stage] < position
    ]
    demoted = max(lower, key=index.__getitem__) if lower else lc.demote_to
    if lc.own_stages != "all" and written_stage != current:
        return StageDecision(None, "none", _held_reason(current, demoted, written_stage), held=True)
    return StageDecision(demoted, "clear_then_set", f"demote {current} -> {demoted}")


def _held_reason(current: str, demoted: str, written_stage: str | None) -> str:
    if written_stage is None:
        who = "a person or another tool set it"
    else:
        who = f"leadsync last wrote {written_stage}; a person or another tool set {current} since"
    return f"held back: stage {current} was not set by leadsync ({who}); the score would demote it to {demoted}"
