"""`leadsync backtest`: do the scores pick out the contacts who went on to convert?

Every contact is scored with the worker's own core as of `now` and compared
with an outcome read from its current properties (by default: it became an
opportunity or a customer). The answer comes as conversion by score band and
by grade, precision, recall and lift at each lifecycle threshold, the close
rate of each rule's matched contacts, the holdout against the contacts whose
scores are written, and plain-language warnings about thresholds set too low
or too high. Excluded contacts are counted apart and left out of every
metric; a contact whose scoring fails is reported and skipped.

This module computes (`run_backtest` -> `Backtest`, plain data); `backtest_render` prints it on a
terminal and `report` (the HTML report) draws its charts from the same `Backtest`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sync.core.model import Contact, Event, RuleHit, ScoreResult, with_company
from sync.core.rules import CompiledModel, RuleSet, StageThreshold
from sync.core.scoring import score_at
from sync.core.wire import LIFECYCLE_STAGE
from sync.errors import ConfigError, ConfigProblem
from sync.reports.accounts import AccountPass, Companies, CompanyInputs
from sync.reports.dataset import Mapped
from sync.reports.text import iso_ms, num, pct

DEFAULT_OUTCOME = "lifecyclestage=opportunity|customer"
DEFAULT_BAND_WIDTH = 10
# A rule matched by fewer contacts than this is listed but marked, and ranked after the rest:
# three matches that all converted say little.
DEFAULT_MIN_SUPPORT = 30

# Warning thresholds (see `_warnings`).
TOO_LOW_SHARE = 0.20  # a threshold most contacts pass ...
TOO_LOW_LIFT = 1.5  # ... should at least pick better-than-average contacts
TOO_HIGH_RECALL = 0.25  # a threshold that misses most converters ...
BELOW_LIFT = 2.0  # ... while the band just under it converts well

# Breakdown lines that are adjustments, not rules: they have no close rate and no contribution of their own.
ADJUSTMENT_KINDS = frozenset({"cap", "rounding", "clamp"})
STAGE_NAMES = {"marketingqualifiedlead": "MQL", "salesqualifiedlead": "SQL"}


# -- the outcome --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A contact converted when `property` holds one of `values` (compared case-insensitively)."""

    property: str
    values: tuple[str, ...]

    def converted(self, contact: Contact) -> bool:
        value = contact.properties.get(self.property) or ""
        if not value and self.property == LIFECYCLE_STAGE:
            value = contact.lifecycle_stage
        folded = value.strip().casefold()
        return bool(folded) and folded in {v.casefold() for v in self.values}

    def __str__(self) -> str:
        return f"{self.property}={'|'.join(self.values)}"


def parse_outcome(text: str) -> Outcome:
    """PROPERTY=V1|V2; a ConfigError that shows the expected form otherwise."""
    name, eq, rest = text.partition("=")
    values = tuple(v.strip() for v in rest.split("|"))
    problem = ""
    if not eq:
        problem = "no '='"
    elif not name.strip():
        problem = "no property name before '='"
    elif not any(values):
        problem = "no value after '='"
    elif not all(values):
        problem = "an empty value between '|'"
    if problem:
        raise ConfigError(
            [
                ConfigProblem(
                    "command line",
                    None,
                    "--outcome",
                    f"{text!r}: {problem}; expected PROPERTY=VALUE or PROPERTY=V1|V2, e.g. {DEFAULT_OUTCOME}",
                )
            ]
        )
    return Outcome(name.strip(), values)


# -- counting -----------------------------------------------------------------------------------


@dataclass
class Rate:
    """Contacts and how many of them converted."""

    contacts: int = 0
    converted: int = 0

    def add(self, converted: bool, n: int = 1) -> None:
        self.contacts += n
        self.converted += converted * n

    @property
    def rate(self) -> float | None:
        return self.converted / self.contacts if self.contacts else None

    def lift(self, base: float | None) -> float | None:
        rate = self.rate
        return rate / base if rate is not None and base else None

    def json(self, base: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"contacts": self.contacts, "converted": self.converted, "rate": _round(self.rate)}
        if base is not None:
            out["lift"] = _round(self.lift(base))
        return out


@dataclass(frozen=True)
class Scored:
    """A contact as the metrics see it. Contacts alike in all of this are counted together (`Scores`): the
    scores are bounded numbers, so their count does not grow with the portal."""

    model: str
    score: int
    fit_grade: str | None
    engagement_grade: str | None
    grade: str | None
    holdout: bool
    converted: bool
    rule_stages: frozenset[str] = frozenset()  # stages the model's stage rules give the contact


@dataclass
class BandRate:
    low: int  # the band holds scores low .. high - 1
    high: int
    counts: Rate = field(default_factory=Rate)

    @property
    def label(self) -> str:
        return str(self.low) if self.high - self.low == 1 else f"{self.low}-{self.high - 1}"

    def json(self, base: float | None) -> dict[str, Any]:
        return {"from": self.low, "to": self.high - 1, "label": self.label, **self.counts.json(base)}


@dataclass
class GradeRate:
    model: str
    grade: str | None
    fit_grade: str | None
    engagement_grade: str | None
    counts: Rate = field(default_factory=Rate)
    engagement_rank: int = 99  # the engagement grade's place in the model's bands (charts order by it)

    def json(self, base: float | None) -> dict[str, Any]:
        return {
            "model": self.model,
            "grade": self.grade,
            "fit_grade": self.fit_grade,
            "engagement_grade": self.engagement_grade,
            **self.counts.json(base),
        }


@dataclass
class ThresholdResult:
    """How well `score >= min_score` (and the fit grade, if set) separates converters, for one model."""

    model: str
    stage: str
    min_score: float
    min_fit_grade: str | None
    population: Rate = field(default_factory=Rate)  # the model's scored contacts
    qualified: Rate = field(default_factory=Rate)
    below: Rate = field(default_factory=Rate)  # qualified by grade, scoring one band under min_score
    below_from: float = 0
    holdout: Rate = field(default_factory=Rate)  # the qualified, split by holdout
    written: Rate = field(default_factory=Rate)
    by_rules: bool = False  # stage rules can also give this stage (or a later one)

    @property
    def name(self) -> str:
        return stage_name(self.stage)

    @property
    def condition(self) -> str:
        grade = f", fit grade {self.min_fit_grade} or better" if self.min_fit_grade else ""
        rules = "; or a stage rule" if self.by_rules else ""
        return f"score >= {self.min_score:g}{grade}{rules}"

    @property
    def precision(self) -> float | None:
        return self.qualified.rate

    @property
    def recall(self) -> float | None:
        if not self.population.converted:
            return None
        return self.qualified.converted / self.population.converted

    @property
    def share(self) -> float | None:
        return self.qualified.contacts / self.population.contacts if self.population.contacts else None

    @property
    def lift(self) -> float | None:
        return self.qualified.lift(self.population.rate)

    @property
    def below_lift(self) -> float | None:
        return self.below.lift(self.population.rate)

    def json(self) -> dict[str, Any]:
        base = self.population.rate
        return {
            "model": self.model,
            "stage": self.stage,
            "min_score": num(self.min_score),
            "min_fit_grade": self.min_fit_grade,
            "contacts": self.population.contacts,
            "converted": self.population.converted,
            "base_rate": _round(base),
            "qualified": self.qualified.contacts,
            "qualified_share": _round(self.share),
            "qualified_converted": self.qualified.converted,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "lift": _round(self.lift),
            "band_below": {"from": num(self.below_from), "to_below": num(self.min_score), **self.below.json(base)},
            "holdout": self.holdout.json(),
            "written": self.written.json(),
        }


@dataclass
class StageRuleResult:
    """How well a model's stage rules pick converters: the contacts they give `stage` or a later one.

    In lifecycle `mode: rules` these are the only way a stage is set, so they stand where thresholds would."""

    model: str
    stage: str
    population: Rate = field(default_factory=Rate)  # the model's scored contacts
    qualified: Rate = field(default_factory=Rate)
    holdout: Rate = field(default_factory=Rate)
    written: Rate = field(default_factory=Rate)

    @property
    def name(self) -> str:
        return stage_name(self.stage)

    @property
    def precision(self) -> float | None:
        return self.qualified.rate

    @property
    def recall(self) -> float | None:
        return self.qualified.converted / self.population.converted if self.population.converted else None

    @property
    def lift(self) -> float | None:
        return self.qualified.lift(self.population.rate)

    def json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "stage": self.stage,
            "contacts": self.population.contacts,
            "qualified": self.qualified.contacts,
            "qualified_converted": self.qualified.converted,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "lift": _round(self.lift),
            "holdout": self.holdout.json(),
            "written": self.written.json(),
        }


@dataclass(frozen=True)
class ModelInfo:
    """What the charts need to know of a model besides its contacts: how it sets stages, and every grade."""

    name: str
    lifecycle_mode: str  # score | rules | off
    fit_grades: tuple[str, ...] = ()  # best first, as the model's bands list them
    engagement_grades: tuple[str, ...] = ()

    @classmethod
    def of(cls, model: CompiledModel) -> ModelInfo:
        grades = model.spec.grades
        fit = tuple(b.grade for b in grades.fit) if grades else ()
        engagement = tuple(b.grade for b in grades.engagement) if grades else ()
        return cls(model.spec.name, model.spec.lifecycle.mode, fit, engagement)


@dataclass
class RuleRate:
    """The contacts a rule (a mapped value, a decay step) gave points to, and how many converted."""

    key: str  # the rule id, or its label where one rule gives different points per value
    rule: str
    group: str
    counts: Rate = field(default_factory=Rate)
    cents: int = 0  # points given, in total
    low_support: bool = False

    def json(self, base: float | None, rank: int) -> dict[str, Any]:
        return {
            "rank": rank,
            "key": self.key,
            "rule": self.rule,
            "group": self.group,
            "contacts": self.counts.contacts,
            "converted": self.counts.converted,
            "close_rate": _round(self.counts.rate),
            "lift": _round(self.counts.lift(base)),
            "avg_points": _round(self.cents / 100 / self.counts.contacts if self.counts.contacts else None),
            "low_support": self.low_support,
        }


@dataclass
class Contribution:
    """The points one rule added and took away over every scored contact."""

    rule: str
    group: str
    positive: int = 0  # cents
    negative: int = 0
    contacts: int = 0

    @property
    def net(self) -> int:
        return self.positive + self.negative

    def json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "group": self.group,
            "positive": num(self.positive / 100),
            "negative": num(self.negative / 100),
            "net": num(self.net / 100),
            "contacts": self.contacts,
        }


@dataclass(frozen=True)
class BacktestWarning:
    kind: str  # threshold_too_low | threshold_too_high | no_conversions | all_converted
    message: str
    model: str | None = None
    stage: str | None = None

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "stage": self.stage, "message": self.message}


Scores = Counter[Scored]  # how many contacts (or companies) each kind of `Scored` stands for

ACCOUNT = "account"  # the accounts section's rows among the grades (it scores like a model of its own)


@dataclass
class AccountBacktest:
    """Conversion by account band and grade. A company converted when any of its counted contacts (not
    excluded, created by `now`) reached the outcome; a company without one could not convert and is left out."""

    companies: int = 0
    without_contacts: int = 0
    scored: Scores = field(default_factory=Counter, repr=False)  # the companies, model ACCOUNT
    overall: Rate = field(default_factory=Rate)
    bands: list[BandRate] = field(default_factory=list)
    grades: list[GradeRate] = field(default_factory=list)
    model: ModelInfo | None = None  # the section's grades, best first

    @property
    def base_rate(self) -> float | None:
        return self.overall.rate

    def json(self) -> dict[str, Any]:
        base = self.base_rate
        return {
            "companies": {
                "total": self.companies,
                "scored": self.overall.contacts,
                "without_counted_contacts": self.without_contacts,
            },
            "base_rate": _of_companies(self.overall.json()),
            "score_bands": [_of_companies(b.json(base)) for b in self.bands],
            "grades": [_of_companies({k: v for k, v in g.json(base).items() if k != "model"}) for g in self.grades],
        }


def _of_companies(row: dict[str, Any]) -> dict[str, Any]:
    """A Rate's JSON with its count named for what it counts here."""
    return {("companies" if k == "contacts" else k): v for k, v in row.items()}


class _AccountCount:
    """The account side of a backtest: each contact given its primary company, counted in its companies'
    roll-up, and its conversion marked on them."""

    def __init__(self, inputs: CompanyInputs, accounts: AccountPass | None) -> None:
        self.companies: Companies = inputs.companies
        self.accounts = accounts
        self.converted: set[str] = set()

    @classmethod
    def of(cls, inputs: CompanyInputs | None, rules: RuleSet) -> _AccountCount | None:
        if inputs is None:
            return None
        spec = inputs.accounts
        return cls(inputs, AccountPass.build(spec, rules, inputs.companies) if spec is not None else None)

    def attach(self, contact: Contact) -> Contact:
        return with_company(contact, self.companies.primary(contact.id))

    def add(self, contact: Contact, result: ScoreResult, events: list[Event], now_ms: int, outcome: Outcome) -> None:
        if self.accounts is None:
            return
        self.accounts.add(contact, result, events, now_ms)
        if not result.excluded and result.model is not None and outcome.converted(contact):
            self.converted.update(self.companies.ids_of(contact.id))

    def backtest(self, now_ms: int, band_width: int) -> AccountBacktest | None:
        if self.accounts is None:
            return None
        model = self.accounts.accounts.model
        out = AccountBacktest(model=ModelInfo.of(model))
        for r in self.accounts.results(now_ms):
            out.companies += 1
            if not r.contacts:
                out.without_contacts += 1
                continue
            converted = r.company_id in self.converted
            out.scored[
                Scored(ACCOUNT, r.score, r.fit_grade, r.engagement_grade, r.grade, holdout=False, converted=converted)
            ] += 1
            out.overall.add(converted)
        out.bands = _bands(out.scored, band_width)
        out.grades = _grades(out.scored, {ACCOUNT: model})
        return out


@dataclass
class InterestBacktest:
    """Conversion by band of one product-interest score, over the scored contacts that have it (in its
    segment); lift against the base rate of every scored contact."""

    name: str
    scored: Scores = field(default_factory=Counter, repr=False)
    overall: Rate = field(default_factory=Rate)
    bands: list[BandRate] = field(default_factory=list)

    def json(self, base: float | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "contacts": self.overall.json(base),
            "score_bands": [b.json(base) for b in self.bands],
        }


@dataclass
class Backtest:
    version: str
    now_ms: int
    outcome: Outcome
    band_width: int
    min_support: int
    contacts: int = 0
    not_yet_created: int = 0  # created after `now`: left out of an as-of backtest
    scored: Scores = field(default_factory=Counter, repr=False)
    excluded: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    overall: Rate = field(default_factory=Rate)
    bands: list[BandRate] = field(default_factory=list)
    grades: list[GradeRate] = field(default_factory=list)
    thresholds: list[ThresholdResult] = field(default_factory=list)
    rules: list[RuleRate] = field(default_factory=list)  # ranked: supported first, by close rate
    contributions: list[Contribution] = field(default_factory=list)  # by net points, largest first
    holdout: Rate = field(default_factory=Rate)
    written: Rate = field(default_factory=Rate)
    warnings: list[BacktestWarning] = field(default_factory=list)
    models: list[ModelInfo] = field(default_factory=list)  # every model of the rule set, in its order
    stage_rules: list[StageRuleResult] = field(default_factory=list)  # per model and stage its rules give
    accounts: AccountBacktest | None = None  # with an `accounts:` section
    interests: list[InterestBacktest] = field(default_factory=list)  # with an `interests:` section

    @property
    def base_rate(self) -> float | None:
        return self.overall.rate

    def threshold(self, stage: str, model: str | None = None) -> ThresholdResult | None:
        return next(
            (t for t in self.thresholds if t.stage == stage and (model is None or t.model == model)),
            None,
        )

    def rule(self, key: str) -> RuleRate | None:
        return next((r for r in self.rules if r.key == key), None)

    def json(self) -> dict[str, Any]:
        base = self.base_rate
        return {
            "version": self.version,
            "as_of": iso_ms(self.now_ms),
            "outcome": str(self.outcome),
            "band_width": self.band_width,
            "min_support": self.min_support,
            "contacts": {
                "total": self.contacts,
                "scored": self.overall.contacts,
                "holdout": self.holdout.contacts,
                "excluded": sum(self.excluded.values()),
                "excluded_by_reason": dict(sorted(self.excluded.items())),
                "created_after_as_of": self.not_yet_created,
                "skipped": len(self.problems),
            },
            "base_rate": self.overall.json(),
            "score_bands": [b.json(base) for b in self.bands],
            "grades": [g.json(base) for g in self.grades],
            "thresholds": [t.json() for t in self.thresholds],
            "rules": [r.json(base, i + 1) for i, r in enumerate(self.rules)],
            "contributions": [c.json() for c in self.contributions],
            "holdout": {
                "holdout": self.holdout.json(),
                "written": self.written.json(),
                "thresholds": [
                    {"model": t.model, "stage": t.stage, "holdout": t.holdout.json(), "written": t.written.json()}
                    for t in self.thresholds
                ],
            },
            "stage_rules": [r.json() for r in self.stage_rules],
            **({"accounts": self.accounts.json()} if self.accounts is not None else {}),
            **({"interests": [i.json(base) for i in self.interests]} if self.interests else {}),
            "warnings": [w.json() for w in self.warnings],
            "problems": self.problems,
        }


# -- the computation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Assessed:
    """What a backtest counts of one contact: worked out where the contact is read (a worker may do it)."""

    not_yet_created: bool = False
    result: ScoreResult | None = None
    rule_stages: frozenset[str] = frozenset()
    converted: bool = False
    problem: str = ""


class _Assess:
    """A contact's `Assessed`: pure, given the rules, the time, the outcome and the companies."""

    def __init__(self, rules: RuleSet, now_ms: int, outcome: Outcome, account: _AccountCount | None) -> None:
        self.rules, self.now_ms, self.outcome, self.account = rules, now_ms, outcome, account
        self.models = {m.spec.name: m for m in rules.models}

    def contact(self, bare: Contact) -> Contact:
        return self.account.attach(bare) if self.account is not None else bare

    def __call__(self, bare: Contact, events: list[Event]) -> Assessed:
        return self.assess(self.contact(bare), events)

    def assess(self, contact: Contact, events: list[Event]) -> Assessed:
        """Of a contact given its company's properties (`contact`)."""
        if contact.created_at_ms is not None and contact.created_at_ms > self.now_ms:
            return Assessed(not_yet_created=True)  # it did not exist at `now`: scoring it would use its future
        try:
            result, rule_stages = _score(contact, events, self.rules, self.models, self.now_ms)
        except Exception as exc:  # a broken contact is reported, never stops the backtest
            return Assessed(problem=f"contact {contact.id}: {type(exc).__name__}: {exc}")
        return Assessed(result=result, rule_stages=rule_stages, converted=self.outcome.converted(contact))


def run_backtest(
    inputs: Iterable[tuple[Contact, list[Event]]] | Mapped,
    rules: RuleSet,
    now_ms: int,
    outcome: Outcome,
    *,
    band_width: int = DEFAULT_BAND_WIDTH,
    min_support: int = DEFAULT_MIN_SUPPORT,
    progress: Callable[[int], None] | None = None,
    companies: CompanyInputs | None = None,
) -> Backtest:
    """`inputs`: the contacts and their events, or a source that works each out as it reads them (on every
    core for a large JSON Lines file). `companies`: each contact reads its primary company's properties, and
    with an `accounts:` section the companies are back-tested too (`Backtest.accounts`)."""
    if band_width < 1:
        raise ValueError(f"band_width must be at least 1, not {band_width}")
    bt = Backtest(rules.version, now_ms, outcome, band_width, max(1, min_support))
    rule_rates: dict[str, RuleRate] = {}
    contributions: dict[str, Contribution] = {}
    account = _AccountCount.of(companies, rules)
    assess = _Assess(rules, now_ms, outcome, account)
    models = assess.models
    bt.interests = [InterestBacktest(i.name) for i in rules.spec.interests]
    for assessed in _assessed(inputs, assess):
        bt.contacts += 1
        if progress is not None:
            progress(bt.contacts)
        result = assessed.result
        if assessed.not_yet_created:
            bt.not_yet_created += 1
            continue
        if result is None:
            bt.problems.append(assessed.problem)
            continue
        if result.excluded or result.model is None:
            bt.excluded[result.exclusion_reason or "no_model"] += 1
            continue
        converted = assessed.converted
        bt.scored[
            Scored(
                result.model,
                result.score,
                result.fit_grade,
                result.engagement_grade,
                result.grade,
                result.holdout,
                converted,
                assessed.rule_stages,
            )
        ] += 1
        bt.overall.add(converted)
        (bt.holdout if result.holdout else bt.written).add(converted)
        _count_rules(result, converted, rule_rates, contributions)
        _count_interests(bt.interests, result, converted)
    bt.bands = _bands(bt.scored, band_width)
    for tally in bt.interests:
        tally.bands = _bands(tally.scored, band_width)
    bt.grades = _grades(bt.scored, models)
    bt.thresholds = [
        _threshold(bt.scored, model, th, band_width) for model in rules.models for th in model.spec.lifecycle.thresholds
    ]
    bt.models = [ModelInfo.of(model) for model in rules.models]
    bt.stage_rules = [_stage_rule(bt.scored, model, stage) for model in rules.models for stage in _rule_stages(model)]
    for rate in rule_rates.values():
        rate.low_support = rate.counts.contacts < bt.min_support
    bt.rules = sorted(
        rule_rates.values(),
        key=lambda r: (r.low_support, -(r.counts.rate or 0), -r.counts.contacts, r.key),
    )
    bt.contributions = sorted(contributions.values(), key=lambda c: (-abs(c.net), c.rule))
    bt.warnings = _outcome_warnings(bt, rules) + _warnings(bt, models)
    bt.accounts = account.backtest(now_ms, band_width) if account is not None else None
    return bt


def _assessed(inputs: Iterable[tuple[Contact, list[Event]]] | Mapped, assess: _Assess) -> Iterator[Assessed]:
    """Each contact's `Assessed`, in order: worked out by the source as it reads (on every core where it can),
    but where the account roll-up needs each contact and its events here."""
    account = assess.account
    if isinstance(inputs, Mapped) and (account is None or account.accounts is None):
        yield from (assessed for _, assessed in inputs.results(assess))
        return
    contacts = inputs.inputs() if isinstance(inputs, Mapped) else inputs
    for bare, events in contacts:
        contact = assess.contact(bare)
        assessed = assess.assess(contact, events)
        if account is not None and assessed.result is not None:
            account.add(contact, assessed.result, events, assess.now_ms, assess.outcome)
        yield assessed


def _score(
    contact: Contact, events: list[Event], rules: RuleSet, models: dict[str, CompiledModel], now_ms: int
) -> tuple[ScoreResult, frozenset[str]]:
    """The contact's result, and the stages its model's stage rules give it."""
    result = score_at(contact, events, rules, now_ms)
    model = models.get(result.model or "")
    if model is None or not model.stage_rules:  # a second context only where stage rules need one
        return result, frozenset()
    ctx = rules.context(contact, events, now_ms)
    return result, frozenset(s for s, pred in model.stage_rules if pred(ctx))


def _count_interests(tallies: list[InterestBacktest], result: ScoreResult, converted: bool) -> None:
    """Each interest score the contact has (outside an interest's segment it has none)."""
    for tally, interest in zip(tallies, result.interests, strict=True):
        if interest.score is not None:
            tally.scored[Scored(interest.name, interest.score, None, None, None, result.holdout, converted)] += 1
            tally.overall.add(converted)


def _count_rules(
    result: ScoreResult, converted: bool, rates: dict[str, RuleRate], contributions: dict[str, Contribution]
) -> None:
    seen: set[str] = set()
    for hit in result.breakdown:
        if hit.kind in ADJUSTMENT_KINDS or not hit.cents:
            continue
        total = contributions.get(hit.rule)
        if total is None:
            total = contributions[hit.rule] = Contribution(hit.rule, hit.group)
        if hit.cents > 0:
            total.positive += hit.cents
        else:
            total.negative += hit.cents
        total.contacts += 1
        if not hit.matched:
            continue  # a map rule's default for an unmapped value: no rule matched
        key = rule_key(hit)
        if key in seen:
            continue
        seen.add(key)
        rate = rates.get(key)
        if rate is None:
            rate = rates[key] = RuleRate(key, hit.rule, hit.group)
        rate.counts.add(converted)
        rate.cents += hit.cents


def rule_key(hit: RuleHit) -> str:
    """A rule's row: a map rule gives different points per value, a band rule per band, decay per step."""
    if hit.kind in ("map", "decay") and hit.label:
        return hit.label  # "industry=ENERGY", "inactive 60d"
    if hit.kind == "bands":
        _, _, band = hit.detail.partition(" ")  # "numberofemployees >=100 <=500"
        return f"{hit.rule} {band}" if band else hit.rule
    return hit.rule


def band_of(score: float, width: int) -> int:
    """The lowest score of the band holding `score` (bands start at multiples of `width`)."""
    return math.floor(score / width) * width


def _bands(scored: Scores, width: int) -> list[BandRate]:
    if not scored:
        return []
    low = band_of(min(s.score for s in scored), width)
    high = band_of(max(s.score for s in scored), width)
    bands = {start: BandRate(start, start + width) for start in range(low, high + 1, width)}
    for s, n in scored.items():
        bands[band_of(s.score, width)].counts.add(s.converted, n)
    # The top band ends at the highest score seen: a clamped 100 reads "100", not "100-109".
    bands[high].high = max(s.score for s in scored) + 1
    return list(bands.values())


def _grades(scored: Scores, models: dict[str, CompiledModel]) -> list[GradeRate]:
    rows: dict[tuple[str, str | None], GradeRate] = {}
    for s, n in scored.items():
        row = rows.get((s.model, s.grade))
        if row is None:
            row = rows[(s.model, s.grade)] = GradeRate(s.model, s.grade, s.fit_grade, s.engagement_grade)
        row.counts.add(s.converted, n)
    model_order = list(models)

    for row in rows.values():
        grades = models[row.model].spec.grades
        if grades is not None:
            names = [b.grade for b in grades.engagement]
            row.engagement_rank = names.index(row.engagement_grade) if row.engagement_grade in names else 99

    def order(row: GradeRate) -> tuple[int, int, int, str]:
        fit = models[row.model].fit_grade_rank.get(row.fit_grade or "", 99)
        return model_order.index(row.model), fit, row.engagement_rank, row.grade or ""

    return sorted(rows.values(), key=order)


def grade_at_least(model: CompiledModel, grade: str | None, minimum: str | None) -> bool:
    """Is `grade` `minimum` or better? Better means earlier in the model's fit grade bands."""
    if minimum is None:
        return True
    if grade is None or grade not in model.fit_grade_rank:
        return False
    return model.fit_grade_rank[grade] <= model.fit_grade_rank[minimum]


def _threshold(scored: Scores, model: CompiledModel, th: StageThreshold, width: int) -> ThresholdResult:
    rules_to = [r.stage for r in model.spec.lifecycle.rules]
    index = model.spec.lifecycle.index
    out = ThresholdResult(
        model.spec.name,
        th.stage,
        th.min_score,
        th.min_fit_grade,
        below_from=th.min_score - width,
        by_rules=any(index.get(stage, -1) >= index[th.stage] for stage in rules_to),
    )
    for s, n in scored.items():
        if s.model != out.model:
            continue
        out.population.add(s.converted, n)
        grade_ok = grade_at_least(model, s.fit_grade, th.min_fit_grade)
        by_rule = any(index.get(stage, -1) >= index[th.stage] for stage in s.rule_stages)
        if (grade_ok and s.score >= th.min_score) or by_rule:
            out.qualified.add(s.converted, n)
            (out.holdout if s.holdout else out.written).add(s.converted, n)
        elif grade_ok and out.below_from <= s.score < th.min_score:
            out.below.add(s.converted, n)
    return out


def _rule_stages(model: CompiledModel) -> list[str]:
    """The stages a model's stage rules give, earliest in the lifecycle first."""
    index = model.spec.lifecycle.index
    return sorted(dict.fromkeys(r.stage for r in model.spec.lifecycle.rules), key=lambda s: index.get(s, -1))


def _stage_rule(scored: Scores, model: CompiledModel, stage: str) -> StageRuleResult:
    index = model.spec.lifecycle.index
    out = StageRuleResult(model.spec.name, stage)
    for s, n in scored.items():
        if s.model != out.model:
            continue
        out.population.add(s.converted, n)
        if any(index.get(given, -1) >= index.get(stage, -1) for given in s.rule_stages):
            out.qualified.add(s.converted, n)
            (out.holdout if s.holdout else out.written).add(s.converted, n)
    return out


def stage_name(stage: str) -> str:
    return STAGE_NAMES.get(stage, stage)


def _outcome_warnings(bt: Backtest, rules: RuleSet) -> list[BacktestWarning]:
    """An outcome the rules read, or one the worker writes itself, measures the scores against themselves."""
    out = []
    prop = bt.outcome.property
    if prop in rules.properties_read:
        out.append(
            BacktestWarning(
                "outcome_read_by_rules",
                f"The rules read {prop}, the property the outcome is taken from: the scores already know the "
                "answer, so close rates and lifts overstate how well they predict it.",
            )
        )
    if prop == LIFECYCLE_STAGE:
        managed = {s.casefold() for m in rules.spec.models for s in m.lifecycle.managed}
        written = sorted(v for v in bt.outcome.values if v.casefold() in managed)
        if written:
            out.append(
                BacktestWarning(
                    "outcome_set_by_leadsync",
                    f"leadsync itself sets lifecyclestage to {', '.join(written)} from the score: measured "
                    "against that, every threshold looks better than it is. Back-test against a later stage "
                    "(opportunity, customer).",
                )
            )
    return out


def _warnings(bt: Backtest, models: dict[str, CompiledModel]) -> list[BacktestWarning]:
    out: list[BacktestWarning] = []
    if bt.overall.contacts and not bt.overall.converted:
        out.append(
            BacktestWarning(
                "no_conversions",
                f"None of the {bt.overall.contacts} scored contacts has {bt.outcome}, so there is nothing to "
                "measure the scores against. Check --outcome: the property name and its values as HubSpot stores "
                "them (internal values, not labels).",
            )
        )
        return out
    if bt.overall.contacts and bt.overall.converted == bt.overall.contacts:
        out.append(
            BacktestWarning(
                "all_converted",
                f"Every scored contact has {bt.outcome}, so no score can tell converters apart. "
                "Check --outcome, or back-test a snapshot that includes contacts who did not convert.",
            )
        )
        return out
    for th in bt.thresholds:
        lift, share, recall, below_lift = th.lift, th.share, th.recall, th.below_lift
        if (
            lift is not None
            and share is not None
            and share >= TOO_LOW_SHARE
            and lift < TOO_LOW_LIFT
            and th.qualified.contacts >= bt.min_support
        ):
            better = _better_threshold(bt, models[th.model], th)
            advice = (
                f" From score {better[0]} up, contacts convert {better[1]:.1f}x as often: "
                f"consider raising min_score to {better[0]}."
                if better
                else " No higher threshold does much better, so the score itself does not yet separate buyers "
                "from the rest: review the rules with the lowest close rates below."
            )
            out.append(
                BacktestWarning(
                    "threshold_too_low",
                    f"The {th.name} threshold ({th.condition}) looks too low: {share:.0%} of scored contacts "
                    f"reach it, but they convert only {lift:.1f}x as often as the average contact "
                    f"({pct(th.precision)} against {pct(th.population.rate)}). Sales would spend time on "
                    f"many leads that do not buy.{advice}",
                    th.model,
                    th.stage,
                )
            )
        if (
            recall is not None
            and recall < TOO_HIGH_RECALL
            and below_lift is not None
            and below_lift >= BELOW_LIFT
            and th.below.contacts >= bt.min_support
        ):
            low = num(th.below_from)
            out.append(
                BacktestWarning(
                    "threshold_too_high",
                    f"The {th.name} threshold ({th.condition}) looks too high: it catches only {recall:.0%} of "
                    f"the contacts who converted, while contacts just below it (score {low} to "
                    f"{th.min_score - 1:g}) convert {below_lift:.1f}x as often as average. Consider lowering "
                    f"min_score to {low} so sales hears about these leads too.",
                    th.model,
                    th.stage,
                )
            )
    return out


def _better_threshold(bt: Backtest, model: CompiledModel, th: ThresholdResult) -> tuple[int, float] | None:
    """The lowest band start above the threshold whose contacts (and those above) reach TOO_LOW_LIFT."""
    base = th.population.rate
    mine = [
        (s, n)
        for s, n in bt.scored.items()
        if s.model == th.model and grade_at_least(model, s.fit_grade, th.min_fit_grade)
    ]
    start = band_of(th.min_score, bt.band_width) + bt.band_width
    top = max((s.score for s, _ in mine), default=start - 1)
    for candidate in range(start, top + 1, bt.band_width):
        above = Rate()
        for s, n in mine:
            if s.score >= candidate:
                above.add(s.converted, n)
        lift = above.lift(base)
        if above.contacts < bt.min_support:
            return None
        if lift is not None and lift >= TOO_LOW_LIFT:
            return candidate, lift
    return None


# -- helpers ------------------------------------------------------------------------------------


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
