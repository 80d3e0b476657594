"""The rule set: what a portal config means, and its compiled form.

The config loader builds a `RuleSetSpec` (plain frozen values, points already
in cents); `compile_ruleset` turns it into evaluators once, so scoring a
contact never re-reads the config. Breakdown lines that do not depend on the
contact (a rule that did not match, a mapped value) are built once and shared.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sync.core.conditions import (
    Aged,
    Condition,
    CountSpec,
    Ctx,
    EventFilter,
    InList,
    Predicate,
    PropertyTest,
    company_property,
    compile_condition,
    compile_event_filter,
    describe_condition,
    describe_filter,
    event_kinds,
    on_company,
    parse_number,
    walk,
)
from sync.core.likelihood import Predictive
from sync.core.model import DEFAULT_DECAY_EVENTS, EMAIL_BOUNCE, EMAIL_UNBOUNCE, Contact, Event, RuleHit

STANDARD_STAGE_ORDER: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
)


def round_half_away(value: float) -> int:
    """Round half away from zero; tiny float noise (100.49999999999999) is folded first."""
    folded = round(value, 6)
    magnitude = math.floor(abs(folded) + 0.5)
    return magnitude if folded >= 0 else -magnitude


def to_cents(points: float) -> int:
    return round_half_away(points * 100)


def cents_to_points(cents: int) -> int:
    """Whole points from cents, half away from zero (exact: integer arithmetic)."""
    whole, rest = divmod(abs(cents), 100)
    whole += 1 if rest >= 50 else 0
    return whole if cents >= 0 else -whole


def show_points(cents: int) -> str:
    """'+70', '-10', '+1.5': the signed short form used in reasons and details."""
    return f"{cents / 100:+g}"


# --- spec ---------------------------------------------------------------------


@dataclass(frozen=True)
class MapRule:
    id: str
    property: str
    points: Mapping[str, int]  # casefolded value -> cents
    labels: Mapping[str, str]  # casefolded value -> the value as written in the config
    default: int = 0
    missing: int | None = None
    when: Condition | None = None


@dataclass(frozen=True)
class Band:
    points: int
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def holds(self, value: float) -> bool:
        return (
            (self.gt is None or value > self.gt)
            and (self.gte is None or value >= self.gte)
            and (self.lt is None or value < self.lt)
            and (self.lte is None or value <= self.lte)
        )

    def describe(self) -> str:
        parts = []
        for op, bound in ((">", self.gt), (">=", self.gte), ("<", self.lt), ("<=", self.lte)):
            if bound is not None:
                parts.append(f"{op}{_plain(bound)}")
        return " ".join(parts) or "any value"


def _plain(number: float) -> str:
    """A band's bound as people write it: 50000000, not 5e+07 (`:g` turns to exponents past six digits)."""
    return f"{number:f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class BandRule:
    id: str
    property: str
    bands: tuple[Band, ...]
    when: Condition | None = None


@dataclass(frozen=True)
class ConditionRule:
    id: str
    condition: Condition
    points: int
    when: Condition | None = None


@dataclass(frozen=True)
class EventRule:
    id: str
    filter: EventFilter
    points: int
    count: CountSpec = field(default_factory=CountSpec)
    per_occurrence: bool = False
    max: int | None = None  # cap on the rule's total magnitude, in cents
    half_life_days: float | None = None
    when: Condition | None = None


Rule = MapRule | BandRule | ConditionRule | EventRule


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[Rule, ...] = ()
    max: int | None = None
    min: int | None = None


@dataclass(frozen=True)
class DecayStep:
    after_days: int
    points: int


@dataclass(frozen=True)
class Decay:
    steps: tuple[DecayStep, ...]
    cumulative: bool = False
    events: frozenset[str] = DEFAULT_DECAY_EVENTS


@dataclass(frozen=True)
class GradeBand:
    grade: str
    min: float | None = None


@dataclass(frozen=True)
class Grades:
    fit: tuple[GradeBand, ...]
    engagement: tuple[GradeBand, ...]
    label: str = "{fit}{engagement}"


@dataclass(frozen=True)
class StageThreshold:
    stage: str
    min_score: float
    min_fit_grade: str | None = None


@dataclass(frozen=True)
class StageRule:
    stage: str
    condition: Condition


@dataclass(frozen=True)
class Lifecycle:
    mode: Literal["score", "rules", "off"] = "off"
    thresholds: tuple[StageThreshold, ...] = ()
    rules: tuple[StageRule, ...] = ()
    hysteresis: float = 0
    never_touch: frozenset[str] = frozenset()
    demote: bool = False
    demote_to: str = "lead"
    # "written": demote only a stage leadsync itself last wrote; "all": every stage this model sets is its own.
    own_stages: Literal["written", "all"] = "written"
    order: tuple[str, ...] = STANDARD_STAGE_ORDER
    index: Mapping[str, int] = field(init=False, repr=False, compare=False)  # stage -> position in order
    managed: frozenset[str] = field(init=False, repr=False, compare=False)  # stages this model can set

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {stage: i for i, stage in enumerate(self.order)})
        managed = {th.stage for th in self.thresholds} | {r.stage for r in self.rules}
        object.__setattr__(self, "managed", frozenset(managed))


@dataclass(frozen=True)
class OutputProperties:
    """The HubSpot properties this worker owns for one model."""

    group: str = "lead_scoring_sync"
    score: str = "ls_score"
    fit: str = "ls_fit"
    engagement: str = "ls_engagement"
    grade: str = "ls_grade"
    reasons: str = "ls_reasons"
    scored_at: str = "ls_scored_at"
    adopt: tuple[str, ...] = ()  # existing properties outside the group the portal file takes over


@dataclass(frozen=True)
class ModelSpec:
    name: str
    fit: RuleGroup
    engagement: RuleGroup
    segment: Condition | None = None
    decay: Decay | None = None
    clamp: tuple[int, int] | None = None
    grades: Grades | None = None
    lifecycle: Lifecycle = Lifecycle()
    properties: OutputProperties = OutputProperties()


@dataclass(frozen=True)
class InterestProperties:
    """The HubSpot properties (in leadsync's group) one interest score is written to; no reasons property if None."""

    score: str
    reasons: str | None = None


@dataclass(frozen=True)
class InterestSpec:
    """A named product-interest score: its own rules (one group), decay, clamp and outputs, for every contact or
    those its segment takes. It is computed beside the lead score and never moves a lifecycle stage."""

    name: str
    rules: RuleGroup
    properties: InterestProperties
    segment: Condition | None = None
    decay: Decay | None = None
    clamp: tuple[int, int] | None = None

    def as_model(self) -> ModelSpec:
        """The interest as a model with no fit rules and no lifecycle: it is scored by the lead score's own steps."""
        return ModelSpec(
            name=self.name,
            fit=RuleGroup("fit"),
            engagement=self.rules,
            segment=self.segment,
            decay=self.decay,
            clamp=self.clamp,
        )


@dataclass(frozen=True)
class Exclusion:
    reason: str
    condition: Condition


@dataclass(frozen=True)
class RuleSetSpec:
    models: tuple[ModelSpec, ...]
    version: str
    exclusions: tuple[Exclusion, ...] = ()
    exclusion_action: Literal["skip", "zero"] = "skip"
    holdout_percent: float = 0.0
    holdout_salt: str = ""
    free_mail_domains: frozenset[str] = field(default_factory=frozenset)
    interests: tuple[InterestSpec, ...] = ()  # product-interest scores, beside the lead score
    predictive: Predictive | None = None  # the `predictive:` section: a learned likelihood written alongside


# --- compiled -------------------------------------------------------------------

Evaluator = Callable[[Ctx], RuleHit]
_CACHE_LIMIT = 512  # per-rule memo of value-dependent breakdown lines


@dataclass(frozen=True)
class CompiledGroup:
    name: str
    evaluators: tuple[Evaluator, ...]
    max: int | None
    min: int | None


@dataclass(frozen=True)
class CompiledModel:
    spec: ModelSpec
    segment: Predicate | None
    fit: CompiledGroup
    engagement: CompiledGroup
    stage_rules: tuple[tuple[str, Predicate], ...]
    fit_grade_rank: Mapping[str, int]
    # Memo of rounding lines by (group, cents): identical immutable values, built once.
    rounding_lines: dict[tuple[str, int], RuleHit] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class CompiledInterest:
    """An interest score's evaluators: the compiled form of `InterestSpec.as_model()`."""

    spec: InterestSpec
    model: CompiledModel


@dataclass(frozen=True)
class RuleSet:
    spec: RuleSetSpec
    models: tuple[CompiledModel, ...]
    exclusions: tuple[tuple[str, Predicate], ...]
    event_kinds: frozenset[str]  # the event types any rule, condition or decay looks at
    properties_read: frozenset[str] = frozenset()  # contact properties any rule or condition reads
    company_properties_read: frozenset[str] = frozenset()  # company properties `company.<property>` reads
    list_ids: frozenset[int] = frozenset()  # HubSpot lists that conditions test membership of
    holdout_key: bytes = b""
    holdout_below: int = 0  # hashes below this (out of 2**64) are in the holdout
    interests: tuple[CompiledInterest, ...] = ()

    @property
    def version(self) -> str:
        return self.spec.version

    def context(self, contact: Contact, events: Iterable[Event], now_ms: int) -> Ctx:
        return Ctx.build(contact, events, now_ms, self.event_kinds)

    def model_for(self, ctx: Ctx) -> CompiledModel | None:
        for model in self.models:
            if model.segment is None or model.segment(ctx):
                return model
        return None

    def exclusion_for(self, ctx: Ctx) -> str | None:
        for reason, pred in self.exclusions:
            if pred(ctx):
                return reason
        return None

    def in_holdout(self, contact_id: str) -> bool:
        """A deterministic hash of (salt, contact id) below `percent` puts a contact in the control group.

        BLAKE2b keyed with the salt: stable across runs, platforms and Python versions.
        """
        if self.holdout_below <= 0:
            return False
        digest = hashlib.blake2b(contact_id.encode(), digest_size=8, key=self.holdout_key).digest()
        return int.from_bytes(digest, "big") < self.holdout_below


def compile_ruleset(spec: RuleSetSpec) -> RuleSet:
    free_mail = spec.free_mail_domains
    models = tuple(compile_model(m, free_mail) for m in spec.models)
    exclusions = tuple((e.reason, compile_condition(e.condition, free_mail)) for e in spec.exclusions)
    read = _properties_read(spec)
    if spec.predictive is not None:
        read |= spec.predictive.model.properties_read
    return RuleSet(
        spec=spec,
        models=models,
        exclusions=exclusions,
        event_kinds=_event_kinds(spec),
        properties_read=frozenset(n for n in read if company_property(n) is None),
        company_properties_read=frozenset(c for c in map(company_property, read) if c is not None),
        list_ids=frozenset(
            i for c in _all_conditions(spec) for n in walk(c) if isinstance(n, InList) for i in n.list_ids
        ),
        holdout_key=hashlib.blake2b(spec.holdout_salt.encode(), digest_size=32).digest(),
        holdout_below=int(spec.holdout_percent / 100 * 2**64),
        interests=tuple(CompiledInterest(i, compile_model(i.as_model(), free_mail)) for i in spec.interests),
    )


def _scored_models(spec: RuleSetSpec) -> list[ModelSpec]:
    """The lead score's models and the interests (as models): everything whose rules read a contact."""
    return [*spec.models, *(i.as_model() for i in spec.interests)]


def _all_conditions(spec: RuleSetSpec) -> list[Condition]:
    found: list[Condition] = [e.condition for e in spec.exclusions]
    for model in _scored_models(spec):
        found += [r.condition for r in model.lifecycle.rules]
        if model.segment is not None:
            found.append(model.segment)
        for rule in (*model.fit.rules, *model.engagement.rules):
            if rule.when is not None:
                found.append(rule.when)
            if isinstance(rule, ConditionRule):
                found.append(rule.condition)
    return found


def _properties_read(spec: RuleSetSpec) -> set[str]:
    names = {n.property for c in _all_conditions(spec) for n in walk(c) if isinstance(n, PropertyTest)}
    for model in _scored_models(spec):
        names.update(
            r.property for r in (*model.fit.rules, *model.engagement.rules) if isinstance(r, MapRule | BandRule)
        )
    return names


def _event_kinds(spec: RuleSetSpec) -> frozenset[str]:
    kinds = {k for c in _all_conditions(spec) for k in event_kinds(c)}
    for model in _scored_models(spec):
        kinds.update(r.filter.kind for r in (*model.fit.rules, *model.engagement.rules) if isinstance(r, EventRule))
        if model.decay is not None:
            kinds |= model.decay.events
    if EMAIL_BOUNCE in kinds:
        kinds.add(EMAIL_UNBOUNCE)  # an un-bounce cancels earlier bounces: the context needs to see both
    return frozenset(kinds)


def compile_model(spec: ModelSpec, free_mail: frozenset[str]) -> CompiledModel:
    """One model's evaluators (account scoring compiles a company's groups through it too)."""
    ranks = {b.grade: i for i, b in enumerate(spec.grades.fit)} if spec.grades else {}
    return CompiledModel(
        spec=spec,
        segment=compile_condition(spec.segment, free_mail) if spec.segment is not None else None,
        fit=_compile_group(spec.fit, free_mail),
        engagement=_compile_group(spec.engagement, free_mail),
        stage_rules=tuple((r.stage, compile_condition(r.condition, free_mail)) for r in spec.lifecycle.rules),
        fit_grade_rank=ranks,
    )


def _compile_group(group: RuleGroup, free_mail: frozenset[str]) -> CompiledGroup:
    return CompiledGroup(
        name=group.name,
        evaluators=tuple(compile_rule(r, group.name, free_mail) for r in group.rules),
        max=group.max,
        min=group.min,
    )


def compile_rule(rule: Rule, group: str, free_mail: frozenset[str]) -> Evaluator:
    """One rule's evaluator, gated by its `when`; `group` names the breakdown group its lines belong to."""
    match rule:
        case MapRule():
            body, kind = _compile_map(rule, group), "map"
        case BandRule():
            body, kind = _compile_bands(rule, group), "bands"
        case ConditionRule():
            body, kind = _compile_condition_rule(rule, group, free_mail), "condition"
        case EventRule():
            body, kind = _compile_event_rule(rule, group), "event"
    if rule.when is None:
        return body
    when = compile_condition(rule.when, free_mail)
    gated = RuleHit(rule.id, group, kind, False, 0, f"when not met: {describe_condition(rule.when)}", rule.id)
    return lambda ctx: body(ctx) if when(ctx) else gated


def _compile_map(rule: MapRule, group: str) -> Evaluator:
    rid, name = rule.id, rule.property
    company_name = company_property(name)
    read_as = name if company_name is None else company_name  # what is read; `name` is what the breakdown shows
    hits = {
        key: RuleHit(rid, group, "map", True, cents, f"{name}={rule.labels[key]}", f"{rid}={rule.labels[key]}")
        for key, cents in rule.points.items()
    }
    missing_cents = rule.missing if rule.missing is not None else rule.default
    missing_hit = RuleHit(
        rid, group, "map", rule.missing is not None, missing_cents, f"{name} is not set", f"{rid}=missing"
    )
    default, cache = rule.default, dict[str, RuleHit]()

    def evaluate(ctx: Ctx) -> RuleHit:
        raw = ctx.props.get(read_as)
        if not raw:
            return missing_hit
        hit = hits.get(raw.casefold()) or cache.get(raw)
        if hit is None:
            hit = RuleHit(rid, group, "map", False, default, f"{name}={raw}, not mapped: default", f"{rid}={raw}")
            if len(cache) < _CACHE_LIMIT:
                cache[raw] = hit
        return hit

    return evaluate if company_name is None else on_company(evaluate)


def _compile_bands(rule: BandRule, group: str) -> Evaluator:
    rid, name = rule.id, rule.property
    company_name = company_property(name)
    read_as = name if company_name is None else company_name
    no_value = RuleHit(rid, group, "bands", False, 0, f"{name} is not set or not a number", rid)
    no_band = RuleHit(rid, group, "bands", False, 0, f"{name} is in no band", rid)
    bands = tuple(
        (band.holds, RuleHit(rid, group, "bands", True, band.points, f"{name} {band.describe()}", rid))
        for band in rule.bands
    )

    def evaluate(ctx: Ctx) -> RuleHit:
        number = parse_number(ctx.props.get(read_as))
        if number is None:
            return no_value
        for holds, hit in bands:
            if holds(number):
                return hit
        return no_band

    return evaluate if company_name is None else on_company(evaluate)


def _compile_condition_rule(rule: ConditionRule, group: str, free_mail: frozenset[str]) -> Evaluator:
    pred = compile_condition(rule.condition, free_mail)
    text = describe_condition(rule.condition)
    yes = RuleHit(rule.id, group, "condition", True, rule.points, text, rule.id)
    no = RuleHit(rule.id, group, "condition", False, 0, f"not: {text}", rule.id)
    return lambda ctx: yes if pred(ctx) else no


def _event_cents(found: Aged, points: int, half_life: float | None, per_occurrence: bool) -> int:
    """An event rule's points in cents for the matching events (ages in days): each occurrence or once, decayed
    by the half-life when there is one."""
    if not half_life:
        return points * len(found) if per_occurrence else points
    if per_occurrence:
        return round_half_away(points * sum([0.5 ** (age / half_life) for age, _ in found]))
    return round_half_away(points * 0.5 ** (min([age for age, _ in found]) / half_life))


def _compile_event_rule(rule: EventRule, group: str) -> Evaluator:
    rid, points, cap, half_life = rule.id, rule.points, rule.max, rule.half_life_days
    per_occurrence = rule.per_occurrence
    lo, hi = rule.count.bounds()
    matching = compile_event_filter(rule.filter)
    what = describe_filter(rule.filter)
    none_hit = RuleHit(rid, group, "event", False, 0, f"no {what} events", rid)
    zero_hit = RuleHit(rid, group, "event", True, 0 if per_occurrence else points, f"no {what} events", rid)

    def evaluate(ctx: Ctx) -> RuleHit:
        found = matching(ctx)
        n = len(found)
        if n < lo or (hi is not None and n > hi):
            if n == 0:
                return none_hit
            return RuleHit(rid, group, "event", False, 0, f"{n} x {what}, count not met", rid)
        if n == 0:  # at_most / exactly 0: the contact matched by having none
            return zero_hit
        cents = _event_cents(found, points, half_life, per_occurrence)
        hit = memo.get((n, cents))
        if hit is None:
            hit = _event_hit(n, cents)
            if len(memo) < _CACHE_LIMIT:
                memo[(n, cents)] = hit
        return hit

    memo: dict[tuple[int, int], RuleHit] = {}

    def _event_hit(n: int, cents: int) -> RuleHit:
        detail = f"{n} x {what}" + (f", half-life {half_life:g}d" if half_life else "")
        if cap is not None and (cents > cap or cents < -cap):
            detail += f", {show_points(cents)} capped at {cap / 100:g}"
            cents = cap if cents > 0 else -cap
        return RuleHit(rid, group, "event", True, cents, detail, rid)

    return evaluate
