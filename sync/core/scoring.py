"""score(contact, events, ruleset, now) -> ScoreResult, with a breakdown that sums to the score.

Order of evaluation (docs/SCORING.md section 2): rule points with half-life
weights -> per-rule max -> group max/min -> fit, engagement and decay each
rounded half away from zero -> total = their sum -> clamp. Every adjustment
is its own breakdown line, so the lines always add up to the written score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sync.core.conditions import Ctx, age_days
from sync.core.lifecycle import decide_stage
from sync.core.model import Contact, Event, InterestResult, RuleHit, ScoreResult
from sync.core.rules import (
    CompiledGroup,
    CompiledInterest,
    CompiledModel,
    Decay,
    GradeBand,
    Grades,
    RuleSet,
    cents_to_points,
    show_points,
)


def to_ms(now: datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return int(now.timestamp() * 1000)


def score(
    contact: Contact, events: Iterable[Event], rules: RuleSet, now: datetime, *, written_stage: str | None = None
) -> ScoreResult:
    """Score one contact from its current properties and stored events, as of `now`."""
    return score_at(contact, events, rules, to_ms(now), written_stage=written_stage)


def score_at(
    contact: Contact, events: Iterable[Event], rules: RuleSet, now_ms: int, *, written_stage: str | None = None
) -> ScoreResult:
    """As `score`, at `now_ms`. `written_stage` is the stage leadsync last wrote for the contact (None: unknown,
    so a stage it holds is not taken for leadsync's own and is never moved back unless the model owns all stages).
    """
    ctx = rules.context(contact, events, now_ms)
    exclusion = rules.exclusion_for(ctx)
    holdout = rules.in_holdout(contact.id)
    model = rules.model_for(ctx)
    interests = tuple([interest_score(i, ctx) for i in rules.interests]) if rules.interests else ()
    if model is None:
        return ScoreResult(
            contact_id=contact.id,
            model=None,
            fit=0,
            engagement=0,
            decay=0,
            score=0,
            fit_grade=None,
            engagement_grade=None,
            grade=None,
            current_stage=contact.lifecycle_stage,
            stage_target=None,
            stage_write="none",
            stage_reason="no model's segment matches",
            excluded=True,
            exclusion_reason=exclusion or "no_model",
            holdout=holdout,
            version=rules.version,
            interests=interests,
        )
    spec = model.spec
    lines: list[RuleHit] = []
    fit = group_points(model, model.fit, ctx, lines)
    engagement = group_points(model, model.engagement, ctx, lines)
    decay = _decay_points(model, spec.decay, ctx, lines) if spec.decay is not None else 0
    total = clamp_total(fit + engagement + decay, spec.clamp, lines)

    fit_grade, engagement_grade, label = grades_for(spec.grades, fit, engagement + decay)

    decision = decide_stage(
        spec.lifecycle,
        current=contact.lifecycle_stage,
        score=total,
        fit_grade=fit_grade,
        fit_grade_rank=model.fit_grade_rank,
        rule_stages=[stage for stage, pred in model.stage_rules if pred(ctx)],
        written_stage=written_stage,
    )
    write, reason = decision.write, decision.reason
    # Counted as held back only where a demotion would otherwise be written.
    held = reason if decision.held and exclusion is None and not holdout else None
    if write != "none" and exclusion is not None:
        write, reason = "none", f"excluded ({exclusion}); {reason}"
    elif write != "none" and holdout:
        write, reason = "none", f"holdout; {reason}"

    return ScoreResult(
        contact_id=contact.id,
        model=spec.name,
        fit=fit,
        engagement=engagement,
        decay=decay,
        score=total,
        fit_grade=fit_grade,
        engagement_grade=engagement_grade,
        grade=label,
        current_stage=contact.lifecycle_stage,
        stage_target=decision.target,
        stage_write=write,
        stage_reason=reason,
        excluded=exclusion is not None,
        exclusion_reason=exclusion,
        holdout=holdout,
        version=rules.version,
        breakdown=tuple(lines),
        stage_held=held,
        interests=interests,
    )


def interest_score(interest: CompiledInterest, ctx: Ctx) -> InterestResult:
    """One product-interest score, by the lead score's own steps: rule points -> per-rule max -> the group's
    max/min -> rounding -> decay -> clamp. Outside the interest's segment the contact has none (score None).
    Nothing here reads or sets a lifecycle stage."""
    model = interest.model
    name = interest.spec.name
    if model.segment is not None and not model.segment(ctx):
        return InterestResult(name, None)
    lines: list[RuleHit] = []
    points = group_points(model, model.engagement, ctx, lines)
    decay = model.spec.decay
    decayed = _decay_points(model, decay, ctx, lines) if decay is not None else 0
    total = clamp_total(points + decayed, model.spec.clamp, lines)
    return InterestResult(name, total, points, decayed, tuple(lines))


# The steps below are shared with account scoring (sync/core/accounts.py): a company's groups, caps, rounding,
# clamp and grades work exactly as a contact's.


def group_points(model: CompiledModel, group: CompiledGroup, ctx: Ctx, lines: list[RuleHit]) -> int:
    """A group's whole points: its rules' lines, then its cap and rounding lines."""
    raw = 0
    for evaluate in group.evaluators:
        hit = evaluate(ctx)
        lines.append(hit)
        raw += hit.cents
    return capped_points(model, group.name, raw, group.max, group.min, lines)


def capped_points(
    model: CompiledModel, name: str, raw: int, cap_max: int | None, cap_min: int | None, lines: list[RuleHit]
) -> int:
    """`raw` cents held to the group's max/min, then rounded to whole points; a line for each adjustment."""
    capped = raw
    if cap_max is not None and capped > cap_max:
        capped = cap_max
    if cap_min is not None and capped < cap_min:
        capped = cap_min
    if capped != raw:
        lines.append(
            RuleHit(f"{name}:cap", name, "cap", True, capped - raw, f"{raw / 100:g} capped to {capped / 100:g}", "")
        )
    return _rounded(model, name, capped, lines)


def clamp_total(total: int, clamp: tuple[int, int] | None, lines: list[RuleHit]) -> int:
    """The total held to `clamp`, with a breakdown line when that moves it."""
    if clamp is None:
        return total
    lo, hi = clamp
    clamped = min(max(total, lo), hi)
    if clamped != total:
        lines.append(
            RuleHit(
                "total:clamp",
                "total",
                "clamp",
                True,
                (clamped - total) * 100,
                f"{total} clamped to [{lo}, {hi}]",
                "",
            )
        )
    return clamped


def _rounded(model: CompiledModel, name: str, cents: int, lines: list[RuleHit]) -> int:
    points = cents_to_points(cents)
    if points * 100 != cents:
        memo = model.rounding_lines
        line = memo.get((name, cents))
        if line is None:
            line = RuleHit(
                f"{name}:rounding",
                name,
                "rounding",
                True,
                points * 100 - cents,
                f"{cents / 100:g} rounded to {points}",
                "",
            )
            if len(memo) < 4096:
                memo[(name, cents)] = line
        lines.append(line)
    return points


def _decay_points(model: CompiledModel, decay: Decay, ctx: Ctx, lines: list[RuleHit]) -> int:
    """Inactivity decay: the age of the newest engagement event, else of the contact itself."""
    newest: int | None = None
    for kind in decay.events:
        for age, _ in ctx.aged(kind):
            if newest is None or age < newest:
                newest = age
    source = "last engagement"
    if newest is not None:
        age = newest
    elif ctx.contact.created_at_ms is not None:
        age, source = age_days(ctx.now_ms, ctx.contact.created_at_ms), "created"
    else:
        lines.append(RuleHit("decay:inactivity", "decay", "decay", False, 0, "no engagement and no create date", ""))
        return 0
    steps = [s for s in decay.steps if age >= s.after_days]
    if not steps:
        lines.append(RuleHit("decay:inactivity", "decay", "decay", False, 0, f"{source} {age}d ago: no step", ""))
        return 0
    deepest = max(steps, key=lambda s: s.after_days)
    cents = sum(s.points for s in steps) if decay.cumulative else deepest.points
    mode = "cumulative" if decay.cumulative else "replace"
    lines.append(
        RuleHit(
            "decay:inactivity",
            "decay",
            "decay",
            True,
            cents,
            f"{source} {age}d ago: step {deepest.after_days}d ({mode})",
            f"inactive {deepest.after_days}d",
        )
    )
    return _rounded(model, "decay", cents, lines)


def grades_for(grades: Grades | None, fit: int, interest: int) -> tuple[str | None, str | None, str | None]:
    """The fit grade, the engagement grade (of the interest: engagement, with decay for a contact) and the label."""
    if grades is None:
        return None, None, None
    fit_grade, engagement_grade = grade_for(grades.fit, fit), grade_for(grades.engagement, interest)
    return fit_grade, engagement_grade, grades.label.format(fit=fit_grade, engagement=engagement_grade)


def grade_for(bands: Sequence[GradeBand], value: int) -> str | None:
    """The first grade whose `min` the value reaches (`>=`); a band without `min` takes any value."""
    for band in bands:
        if band.min is None or value >= band.min:
            return band.grade
    return None


def reasons_text(result: ScoreResult, limit: int = 500) -> str:
    """The short text written to HubSpot: '+70 demo-request; +10 industry=ENERGY; -10 inactive 60d'.

    Only stable labels go in (no ages), so the text changes only when the reasons do.
    """
    return breakdown_reasons(result.breakdown, limit)


def breakdown_reasons(breakdown: Sequence[RuleHit], limit: int = 500) -> str:
    """`reasons_text` of any breakdown (a company's too)."""
    hits = [h for h in breakdown if h.cents and h.label]
    hits.sort(key=lambda h: -abs(h.cents))  # stable: equal sizes keep breakdown order (fit, engagement, decay)
    parts: list[str] = []
    length = 0
    for hit in hits:
        part = f"{show_points(hit.cents)} {hit.label}"
        added = len(part) + (2 if parts else 0)  # "; " goes between reasons, not before the first
        if length + added > limit:
            break
        parts.append(part)
        length += added
    return "; ".join(parts)
