"""A model's `lifecycle:`: the stages it sets (by score or by rule), in order, and those it never touches."""

from __future__ import annotations

from sync.config.checks.conditions import condition
from sync.config.checks.problems import Problems
from sync.config.schema import LifecycleModel
from sync.core.rules import STANDARD_STAGE_ORDER, Grades, Lifecycle, StageRule, StageThreshold
from sync.yamlsource import Path_


class _Stages:
    """The stage order in force (HubSpot's standard one unless `order:` gives the portal's)."""

    def __init__(self, p: Problems, lc: LifecycleModel, path: Path_) -> None:
        self.p = p
        self.order = tuple(lc.order) if lc.order else STANDARD_STAGE_ORDER
        self.index = {s: i for i, s in enumerate(self.order)}
        if lc.order and len(self.index) != len(self.order):
            p.error((*path, "order"), "a stage is listed twice")

    def known(self, stage: str, where: Path_) -> bool:
        if stage in self.index:
            return True
        self.p.error(
            where, f"unknown stage {stage!r}; stages are {', '.join(self.order)} (custom stages go in lifecycle.order)"
        )
        return False


def lifecycle(p: Problems, lc: LifecycleModel, path: Path_, grades: Grades | None) -> Lifecycle:
    stages = _Stages(p, lc, path)
    thresholds = _thresholds(p, stages, lc, path, grades)
    rules = _stage_rules(p, stages, lc, path)
    for i, stage in enumerate(lc.never_touch):
        if stage != "other" and stage not in stages.index:
            stages.known(stage, (*path, "never_touch", i))
    managed = [s.stage for s in thresholds] + [r.stage for r in rules]
    _check_managed(p, stages, lc, path, managed)
    return Lifecycle(
        mode=lc.mode,
        thresholds=tuple(thresholds),
        rules=tuple(rules),
        hysteresis=lc.hysteresis,
        never_touch=frozenset(lc.never_touch),
        demote=lc.demote,
        demote_to=lc.demote_to,
        own_stages=lc.own_stages,
        order=stages.order,
    )


def _thresholds(
    p: Problems, stages: _Stages, lc: LifecycleModel, path: Path_, grades: Grades | None
) -> list[StageThreshold]:
    thresholds = []
    fit_grades = {b.grade for b in grades.fit} if grades else set()
    for i, st in enumerate(lc.stages):
        here = (*path, "stages", i)
        if not stages.known(st.stage, (*here, "stage")):
            continue
        if st.min_fit_grade is not None and st.min_fit_grade not in fit_grades:
            p.error((*here, "min_fit_grade"), f"{st.min_fit_grade!r} is not a fit grade of this model")
        if i and lc.stages[i - 1].stage in stages.index:
            _check_ascends(p, stages, lc, i, here)
        thresholds.append(StageThreshold(st.stage, st.min_score, st.min_fit_grade))
    return thresholds


def _check_ascends(p: Problems, stages: _Stages, lc: LifecycleModel, i: int, here: Path_) -> None:
    """Score thresholds climb the stage order and the scores together."""
    st, prev = lc.stages[i], lc.stages[i - 1]
    if stages.index[st.stage] <= stages.index[prev.stage]:
        p.error((*here, "stage"), f"stages must ascend in lifecycle order: {st.stage} is not after {prev.stage}")
    if st.min_score <= prev.min_score:
        p.error((*here, "min_score"), f"min_score must ascend: {st.min_score:g} is not above {prev.min_score:g}")


def _stage_rules(p: Problems, stages: _Stages, lc: LifecycleModel, path: Path_) -> list[StageRule]:
    rules = []
    for i, sr in enumerate(lc.rules):
        here = (*path, "rules", i)
        cond = condition(p, sr.when, (*here, "when"))
        if stages.known(sr.stage, (*here, "stage")) and cond is not None:
            rules.append(StageRule(sr.stage, cond))
    return rules


def _check_managed(p: Problems, stages: _Stages, lc: LifecycleModel, path: Path_, managed: list[str]) -> None:
    """The stages this model sets agree with its mode, its demotion target and its never_touch list."""
    index = stages.index
    demote_to_known = lc.demote and stages.known(lc.demote_to, (*path, "demote_to"))
    if demote_to_known and any(index[lc.demote_to] >= index[s] for s in managed):
        p.error((*path, "demote_to"), "must come before every stage this model sets")
    if lc.mode == "score" and not lc.stages and not lc.rules:
        p.error((*path, "stages"), "mode score needs stages (or set mode: off)")
    if lc.mode == "rules" and not lc.rules:
        p.error((*path, "rules"), "mode rules needs rules")
    if lc.mode == "rules" and lc.stages:
        p.error((*path, "stages"), "score thresholds apply only in mode: score; remove them or change the mode")
    for i, stage in enumerate(lc.never_touch):
        if stage in managed:
            p.error((*path, "never_touch", i), f"{stage} is set by this model, so it cannot be never touched")
