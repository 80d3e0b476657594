"""Rule groups (`fit:`, `engagement:`) and their rules: a map, bands, an event rule, or a condition with points."""

from __future__ import annotations

from collections.abc import Callable

from sync.config.checks.conditions import EVENT_FIELDS, PROPERTY_FIELDS, condition, key
from sync.config.checks.problems import Problems
from sync.config.schema import DecayModel, GroupModel, RuleModel, TotalModel
from sync.core import conditions as c
from sync.core.rules import (
    Band,
    BandRule,
    ConditionRule,
    Decay,
    DecayStep,
    EventRule,
    MapRule,
    Rule,
    RuleGroup,
    to_cents,
)
from sync.yamlsource import Path_

_RULE_ONLY = ("points", "map", "default", "missing", "bands", "per", "max", "half_life_days")
_ALLOWED = {
    "map": {"map", "default", "missing"},
    "bands": {"bands"},
    "event": {"points", "per", "max", "half_life_days"},
    "condition": {"points"},
}
_CONTACT_TESTS = ("email_domain_in", "free_mail", "emails", "contact_ids", "hubspot_list", "all", "any", "not_")


def group(p: Problems, g: GroupModel, path: Path_, name: str, ids: set[str]) -> RuleGroup:
    """One group's rules; `ids` holds the rule ids of the model so far (an id is unique across its groups)."""
    if g.max is not None and g.min is not None and g.min > g.max:
        p.error((*path, "min"), "min is above max")
    rules: list[Rule] = []
    for i, r in enumerate(g.rules):
        if r.id in ids:
            p.error((*path, "rules", i, "id"), f"duplicate rule id {r.id!r}")
        ids.add(r.id)
        built = rule(p, r, (*path, "rules", i))
        if built is not None:
            rules.append(built)
    return RuleGroup(
        name=name,
        rules=tuple(rules),
        max=to_cents(g.max) if g.max is not None else None,
        min=to_cents(g.min) if g.min is not None else None,
    )


def rule(p: Problems, r: RuleModel, path: Path_) -> Rule | None:
    when = condition(p, r.when, (*path, "when")) if r.when is not None else None
    kind = _kind(p, r, path)
    if kind is None:
        return None
    for name in _RULE_ONLY:
        if getattr(r, name) is not None and name not in _ALLOWED[kind]:
            p.error((*path, name), f"{name} does not apply to a {kind} rule")
    if kind in ("map", "bands") and not _property_rule_fields(p, r, path, kind):
        return None
    if kind in ("event", "condition") and r.points is None:
        p.error((*path, "points"), f"{'an' if kind == 'event' else 'a'} {kind} rule needs points")
        return None
    return _BUILD[kind](p, r, path, when)


def _kind(p: Problems, r: RuleModel, path: Path_) -> str | None:
    kinds = [k for k in ("map", "bands", "event") if getattr(r, k) is not None]
    if len(kinds) > 1:
        p.error(path, f"a rule is one of map, bands or event, not {' and '.join(kinds)}")
        return None
    return kinds[0] if kinds else "condition"


def _property_rule_fields(p: Problems, r: RuleModel, path: Path_, kind: str) -> bool:
    """A map or bands rule reads one property; conditions on it belong under when:."""
    others = [key(f) for f in (*PROPERTY_FIELDS, "within_days", *EVENT_FIELDS) if getattr(r, f) is not None]
    others += [k for k in _CONTACT_TESTS if getattr(r, k) is not None]
    for name in others:
        p.error((*path, key(name)), f"a {kind} rule takes no {key(name)}; put conditions under when:")
    if r.property is None:
        p.error((*path, "property"), f"a {kind} rule needs a property")
        return False
    return True


def map_rule(p: Problems, r: RuleModel, path: Path_, when: c.Condition | None) -> MapRule | None:
    assert r.map is not None and r.property is not None
    points: dict[str, int] = {}
    labels: dict[str, str] = {}
    for value_key, value in r.map.items():
        folded = str(value_key).casefold()
        if folded in points:
            p.error(
                (*path, "map", value_key), f"value {value_key!r} is mapped twice (values compare case-insensitively)"
            )
        points[folded], labels[folded] = to_cents(value), str(value_key)
    return MapRule(
        id=r.id,
        property=r.property,
        points=points,
        labels=labels,
        default=to_cents(r.default or 0),
        missing=to_cents(r.missing) if r.missing is not None else None,
        when=when,
    )


def band_rule(p: Problems, r: RuleModel, path: Path_, when: c.Condition | None) -> BandRule | None:
    assert r.bands is not None and r.property is not None
    bands = []
    if not r.bands:
        p.error((*path, "bands"), "needs at least one band")
    for i, b in enumerate(r.bands):
        if c.interval_is_empty(b.gt, b.gte, b.lt, b.lte):
            p.error((*path, "bands", i), "this band can never match: its bounds exclude every value")
        bands.append(Band(points=to_cents(b.points), gt=b.gt, gte=b.gte, lt=b.lt, lte=b.lte))
    return BandRule(id=r.id, property=r.property, bands=tuple(bands), when=when)


def event_rule(p: Problems, r: RuleModel, path: Path_, when: c.Condition | None) -> EventRule | None:
    cond = condition(p, r, path, with_when=False)
    if cond is None:
        return None
    if not isinstance(cond, c.EventCondition):
        p.error(path, "an event rule tests events only; put property conditions under when:")
        return None
    assert r.points is not None
    per_occurrence = r.per == "occurrence"
    if r.max is not None and not per_occurrence:
        p.error((*path, "max"), "max caps a per: occurrence rule; this rule gives points once")
    return EventRule(
        id=r.id,
        filter=cond.filter,
        points=to_cents(r.points),
        count=cond.count,
        per_occurrence=per_occurrence,
        max=to_cents(r.max) if r.max is not None else None,
        half_life_days=r.half_life_days,
        when=when,
    )


def condition_rule(p: Problems, r: RuleModel, path: Path_, when: c.Condition | None) -> ConditionRule | None:
    cond = condition(p, r, path, with_when=False)
    if cond is None:
        return None
    assert r.points is not None
    return ConditionRule(id=r.id, condition=cond, points=to_cents(r.points), when=when)


_BUILD: dict[str, Callable[[Problems, RuleModel, Path_, c.Condition | None], Rule | None]] = {
    "map": map_rule,
    "bands": band_rule,
    "event": event_rule,
    "condition": condition_rule,
}


def decay(p: Problems, d: DecayModel, path: Path_) -> Decay:
    """Engagement's inactivity decay: steps in increasing after_days."""
    steps = [DecayStep(s.after_days, to_cents(s.points)) for s in d.inactivity]
    for i in range(1, len(steps)):
        if steps[i].after_days <= steps[i - 1].after_days:
            p.error((*path, "inactivity", i, "after_days"), "steps must be in increasing after_days")
    if d.events is not None and not d.events:
        p.error((*path, "events"), "is empty: inactivity would always count from createdate")
    events = frozenset(d.events) if d.events else None
    return Decay(steps=tuple(steps), cumulative=d.mode == "cumulative", **({"events": events} if events else {}))


def clamp(p: Problems, total: TotalModel | None, path: Path_) -> tuple[int, int] | None:
    """A `total.clamp` (the bounds of a score), whole numbers with low <= high; None when there is none."""
    if total is None or total.clamp is None:
        return None
    lo, hi = total.clamp
    if lo > hi or not (float(lo).is_integer() and float(hi).is_integer()):
        p.error((*path, "total", "clamp"), "must be [low, high] whole numbers with low <= high")
    return (int(lo), int(hi))
