"""Account scores: a company's fit from its own properties, and the roll-up of its contacts' interest.

docs/SCORING.md section 6. A company goes through the contact scorer's own steps (groups, caps, rounding,
clamp, grades), so the two can never drift apart. What is new is the engagement group: the company's contacts
are fed one at a time into an `AccountTally` (a running sum, max, the three highest values and a match counter
per `contacts:` rule), so a company with 20,000 contacts needs no more memory than one with three, and a caller
streaming contacts can keep one tally per company.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sync.core.conditions import (
    Condition,
    CountSpec,
    Ctx,
    Predicate,
    PropertyTest,
    company_property,
    compile_condition,
    describe_condition,
    event_kinds,
    parse_number,
    walk,
)
from sync.core.model import (
    EMAIL_BOUNCE,
    EMAIL_UNBOUNCE,
    AccountResult,
    Company,
    Contact,
    RuleHit,
    ScoredContact,
    ScoreResult,
)
from sync.core.rules import (
    BandRule,
    CompiledModel,
    ConditionRule,
    EventRule,
    Grades,
    MapRule,
    ModelSpec,
    OutputProperties,
    Rule,
    RuleGroup,
    RuleSet,
    compile_model,
    compile_rule,
)
from sync.core.scoring import capped_points, clamp_total, grades_for, group_points

Rollup = Literal["sum", "max", "top_3"]
ENGAGEMENT = "engagement"
_TOP = 3  # top_3: the sum of this many highest values


@dataclass(frozen=True)
class ContactsRule:
    """Points when enough of the company's counted contacts match `where` (no count: at least one).

    `when`, if set, is tested on the company. Inside `where`, a contact model's own output properties
    (ls_score, ls_fit, ls_engagement, ls_grade) read the values scored in this run.
    """

    id: str
    where: Condition
    points: int  # cents
    count: CountSpec = field(default_factory=CountSpec)
    when: Condition | None = None


AccountRule = Rule | ContactsRule


@dataclass(frozen=True)
class AccountEngagement:
    """How the contacts' current interest combines (`rollup`), the rules that add to it, and the group's caps."""

    rollup: Rollup = "sum"
    rules: tuple[AccountRule, ...] = ()
    max: int | None = None  # cents
    min: int | None = None


@dataclass(frozen=True)
class AccountProperties:
    """The company properties this worker owns."""

    group: str = "lead_scoring_sync"
    score: str = "ls_account_score"
    fit: str = "ls_account_fit"
    engagement: str = "ls_account_engagement"
    grade: str = "ls_account_grade"
    reasons: str = "ls_account_reasons"
    scored_at: str = "ls_account_scored_at"


@dataclass(frozen=True)
class AccountSpec:
    """The `accounts:` section, points in cents like a contact model's. `fit` rules read the company's own
    properties (event rules have nothing to read on a company and are refused)."""

    fit: RuleGroup
    engagement: AccountEngagement = AccountEngagement()
    clamp: tuple[int, int] | None = None
    grades: Grades | None = None
    properties: AccountProperties = AccountProperties()
    version: str = ""  # the config's hash of this section and of the contact rules it reads


# --- compiled -------------------------------------------------------------------

# A line of the engagement group from the company's context and the match count of each `contacts:` rule.
AccountEvaluator = Callable[[Ctx, Sequence[int]], RuleHit]
# Which of a contact model's output properties `where` conditions read, and the result field each one holds.
OutputReads = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CompiledAccounts:
    spec: AccountSpec
    # The account as a contact model (its fit group, engagement caps, clamp, grades), for the scorer's steps.
    model: CompiledModel
    engagement: tuple[AccountEvaluator, ...]
    where: tuple[Predicate, ...]  # one per `contacts:` rule, in order
    event_kinds: frozenset[str]  # the event types `where` conditions look at
    outputs: Mapping[str, OutputReads]  # contact model name -> the outputs its contacts' `where` reads
    company_properties_read: frozenset[str]
    contact_properties_read: frozenset[str]  # by `where` conditions

    @property
    def version(self) -> str:
        return self.spec.version

    def tally(self) -> AccountTally:
        """An empty roll-up for one company; feed it each of the company's contacts once."""
        return AccountTally(self)


def compile_accounts(spec: AccountSpec, contact_rules: RuleSet) -> CompiledAccounts:
    """The account rules compiled once; `contact_rules` give the free-mail list and the models' output names."""
    free_mail = contact_rules.spec.free_mail_domains
    rules = (*spec.fit.rules, *spec.engagement.rules)
    for rule in rules:
        if isinstance(rule, EventRule):
            raise ValueError(f"account rule {rule.id!r}: a company has no events; test its contacts' instead")
    as_model = ModelSpec(
        name="account",
        fit=spec.fit,
        engagement=RuleGroup(ENGAGEMENT, (), spec.engagement.max, spec.engagement.min),
        clamp=spec.clamp,
        grades=spec.grades,
    )
    evaluators: list[AccountEvaluator] = []
    wheres: list[Condition] = []
    for rule in spec.engagement.rules:
        if isinstance(rule, ContactsRule):
            evaluators.append(_compile_contacts_rule(rule, len(wheres), free_mail))
            wheres.append(rule.where)
        else:
            evaluators.append(_on_company_only(compile_rule(rule, ENGAGEMENT, free_mail)))
    kinds = {k for w in wheres for k in event_kinds(w)}
    if EMAIL_BOUNCE in kinds:
        kinds.add(EMAIL_UNBOUNCE)  # as for contact rules: an un-bounce cancels the bounces before it
    where_reads = {n.property for w in wheres for n in walk(w) if isinstance(n, PropertyTest)}
    return CompiledAccounts(
        spec=spec,
        model=compile_model(as_model, free_mail),
        engagement=tuple(evaluators),
        where=tuple(compile_condition(w, free_mail) for w in wheres),
        event_kinds=frozenset(kinds),
        outputs=_output_reads(contact_rules, where_reads),
        company_properties_read=frozenset(_company_reads(rules)),
        contact_properties_read=frozenset(n for n in where_reads if company_property(n) is None),
    )


def _on_company_only(evaluate: Callable[[Ctx], RuleHit]) -> AccountEvaluator:
    return lambda ctx, _counts: evaluate(ctx)


def _compile_contacts_rule(rule: ContactsRule, slot: int, free_mail: frozenset[str]) -> AccountEvaluator:
    lo, hi = rule.count.bounds()
    wanted = f"at least {lo}" if hi is None else f"{lo}..{hi}"
    text = f"contacts where {describe_condition(rule.where)}"
    rid, points = rule.id, rule.points

    def evaluate(ctx: Ctx, counts: Sequence[int]) -> RuleHit:
        n = counts[slot]
        if n >= lo and (hi is None or n <= hi):
            return RuleHit(rid, ENGAGEMENT, "contacts", True, points, f"{n} {text} (wanted {wanted})", rid)
        return RuleHit(rid, ENGAGEMENT, "contacts", False, 0, f"{n} {text}, count not met (wanted {wanted})", rid)

    if rule.when is None:
        return evaluate
    when = compile_condition(rule.when, free_mail)
    gated = RuleHit(rid, ENGAGEMENT, "contacts", False, 0, f"when not met: {describe_condition(rule.when)}", rid)
    return lambda ctx, counts: evaluate(ctx, counts) if when(ctx) else gated


def _output_reads(contact_rules: RuleSet, names: set[str]) -> dict[str, OutputReads]:
    """Per contact model, the output properties `where` reads and the result field that holds each."""
    reads: dict[str, OutputReads] = {}
    for model in contact_rules.spec.models:
        props: OutputProperties = model.properties
        fields = ((props.score, "score"), (props.fit, "fit"), (props.engagement, "engagement"), (props.grade, "grade"))
        wanted = tuple((name, what) for name, what in fields if name in names)
        if wanted:
            reads[model.name] = wanted
    return reads


def _company_reads(rules: Iterable[AccountRule]) -> set[str]:
    """Company properties the account rules read (on the company, `company.x` is the company's own `x`)."""
    names: set[str] = set()
    for rule in rules:
        conditions = [rule.when] if rule.when is not None else []
        if isinstance(rule, ConditionRule):
            conditions.append(rule.condition)
        if isinstance(rule, MapRule | BandRule):
            names.add(rule.property)
        names.update(n.property for c in conditions for n in walk(c) if isinstance(n, PropertyTest))
    return {company_property(n) or n for n in names}


# --- the roll-up ------------------------------------------------------------------


def current_interest(result: ScoreResult) -> int:
    """What one contact adds to its company: engagement + decay of its own model, floored at 0."""
    interest = result.engagement + result.decay
    return interest if interest > 0 else 0


def _output_value(result: ScoreResult, what: str) -> str:
    if what == "score":
        return str(result.score)
    if what == "fit":
        return str(result.fit)
    if what == "engagement":
        return str(result.engagement)
    return result.grade or ""


def with_run_outputs(contact: Contact, result: ScoreResult, reads: OutputReads) -> Contact:
    """The contact with the model outputs named in `reads` set to this run's result, not HubSpot's stale values."""
    props = dict(contact.properties)
    for name, what in reads:
        props[name] = _output_value(result, what)
    return Contact(
        contact.id,
        props,
        contact.email,
        contact.created_at_ms,
        contact.lifecycle_stage,
        contact.list_ids,
        contact.company_properties,
    )


class AccountTally:
    """A company's contacts so far, in constant memory: how many counted, the running sum, max and three
    highest interest values, and how many matched each `contacts:` rule."""

    def __init__(self, accounts: CompiledAccounts) -> None:
        self.accounts = accounts
        self.counted = 0
        self.excluded = 0
        self.total = 0
        self.highest = 0
        self.top: list[int] = []  # a min-heap of at most _TOP values
        self.matches: list[int] = [0] * len(accounts.where)

    def add(self, member: ScoredContact, now_ms: int) -> None:
        """Count one contact. An excluded contact (no model's segment matching included) counts for nothing;
        a holdout contact counts like any other: only its own write is held back."""
        result = member.result
        if result.excluded:
            self.excluded += 1
            return
        self.counted += 1
        interest = current_interest(result)
        self.total += interest
        self.highest = max(self.highest, interest)
        if len(self.top) < _TOP:
            heapq.heappush(self.top, interest)
        elif interest > self.top[0]:
            heapq.heapreplace(self.top, interest)
        if self.accounts.where:
            self._match(member, now_ms)

    def _match(self, member: ScoredContact, now_ms: int) -> None:
        accounts = self.accounts
        contact = member.contact
        reads = accounts.outputs.get(member.result.model or "")
        if reads:
            contact = with_run_outputs(contact, member.result, reads)
        if accounts.event_kinds:
            ctx = Ctx.build(contact, member.events, now_ms, accounts.event_kinds)
        else:
            ctx = Ctx(contact, {}, now_ms)
        for slot, where in enumerate(accounts.where):
            if where(ctx):
                self.matches[slot] += 1

    def rolled_up(self) -> int:
        """The contacts' interest combined as the `rollup` says, in points."""
        rollup = self.accounts.spec.engagement.rollup
        if rollup == "max":
            return self.highest
        if rollup == "top_3":
            return sum(self.top)
        return self.total

    def line(self) -> RuleHit:
        """The breakdown line of the roll-up."""
        rollup = self.accounts.spec.engagement.rollup
        value = self.rolled_up()
        if rollup == "max":
            detail = f"highest interest of {self.counted} contacts"
        elif rollup == "top_3":
            shown = ", ".join(str(v) for v in sorted(self.top, reverse=True))
            detail = f"sum of the {min(self.counted, _TOP)} highest interest of {self.counted} contacts ({shown})"
        else:
            detail = f"sum of the interest of {self.counted} contacts"
        if self.excluded:
            detail += f"; {self.excluded} excluded contacts not counted"
        label = f"contacts' interest ({rollup})"
        return RuleHit(f"{ENGAGEMENT}:rollup", ENGAGEMENT, "rollup", self.counted > 0, value * 100, detail, label)


def score_account(
    company: Company, contacts: Iterable[ScoredContact], accounts: CompiledAccounts, now_ms: int
) -> AccountResult:
    """Score one company from its properties and its contacts (each once, in any order, e.g. a generator)."""
    tally = accounts.tally()
    for member in contacts:
        tally.add(member, now_ms)
    return score_tally(company, tally, now_ms)


def score_tally(company: Company, tally: AccountTally, now_ms: int) -> AccountResult:
    """Score one company whose contacts were fed to `tally`; the breakdown adds up to the score exactly."""
    accounts = tally.accounts
    model, spec = accounts.model, accounts.spec
    ctx = Ctx.for_company(company, now_ms)
    lines: list[RuleHit] = []
    fit = group_points(model, model.fit, ctx, lines)
    rolled = tally.line()
    lines.append(rolled)
    raw = rolled.cents
    for evaluate in accounts.engagement:
        hit = evaluate(ctx, tally.matches)
        lines.append(hit)
        raw += hit.cents
    engagement = capped_points(model, ENGAGEMENT, raw, spec.engagement.max, spec.engagement.min, lines)
    total = clamp_total(fit + engagement, spec.clamp, lines)
    fit_grade, engagement_grade, label = grades_for(spec.grades, fit, engagement)
    return AccountResult(
        company_id=company.id,
        fit=fit,
        engagement=engagement,
        score=total,
        fit_grade=fit_grade,
        engagement_grade=engagement_grade,
        grade=label,
        rollup=tally.rolled_up(),
        contacts=tally.counted,
        excluded_contacts=tally.excluded,
        version=spec.version,
        breakdown=tuple(lines),
    )


_NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})


def numeric_company_reads(rules: RuleSet, accounts: AccountSpec | None) -> frozenset[str]:
    """The company properties rules read as numbers (bands, gt/gte/lt/lte): a value there that does not parse
    is read as missing, and reported."""
    names: set[str] = set()
    contact_rules: list[Rule] = [r for m in rules.spec.models for r in (*m.fit.rules, *m.engagement.rules)]
    for rule in contact_rules:
        names.update(n for n in _numeric_reads(rule) if company_property(n) is not None)
    if accounts is not None:
        for account_rule in (*accounts.fit.rules, *accounts.engagement.rules):
            if isinstance(account_rule, MapRule | BandRule | ConditionRule):
                names.update(_numeric_reads(account_rule))
    return frozenset(company_property(n) or n for n in names)


def _numeric_reads(rule: Rule) -> Iterator[str]:
    if isinstance(rule, BandRule):
        yield rule.property
    conditions = [rule.when] if rule.when is not None else []
    if isinstance(rule, ConditionRule):
        conditions.append(rule.condition)
    for cond in conditions:
        for node in walk(cond):
            if isinstance(node, PropertyTest) and node.op in _NUMERIC_OPS:
                yield node.property


def number_problems(companies: Iterable[Company], numeric: Iterable[str]) -> list[str]:
    """One line per company number that does not parse."""
    names = sorted(numeric)
    problems = []
    for company in companies:
        for name in names:
            value = company.properties.get(name)
            if value and parse_number(value) is None:
                problems.append(f"company {company.id}: {name} {value!r} is not a number; rules read it as missing")
    return problems
