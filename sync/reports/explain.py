"""`leadsync explain`: one contact's score, rule by rule, and what a run would write.

Everything shown is recomputed with the worker's own core: the breakdown of
the score, the events each event rule counted (with their ages), the
exclusion or holdout verdict, the grade bands, the stage decision, and the
values HubSpot holds now beside the ones a run would write. What-if
scenarios add hypothetical events or property values and show the result
beside the real one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.core.accounts import (
    AccountSpec,
    CompiledAccounts,
    ContactsRule,
    current_interest,
    score_tally,
    with_run_outputs,
)
from sync.core.conditions import Ctx, company_property, compile_event_filter, describe_condition, describe_filter
from sync.core.decision import Decision, decide
from sync.core.likelihood import Likelihood, Predictive, likelihood
from sync.core.model import (
    EMAIL_EVENT_TYPES,
    FORM_SUBMISSION,
    AccountResult,
    Company,
    Contact,
    EmailEvent,
    Event,
    FormSubmission,
    InterestResult,
    RuleHit,
    ScoredContact,
    ScoreResult,
)
from sync.core.rules import BandRule, ConditionRule, Decay, EventRule, InterestSpec, MapRule, ModelSpec, Rule, RuleSet
from sync.core.scoring import breakdown_reasons, score_at
from sync.core.wire import EMAIL, LIFECYCLE_STAGE
from sync.errors import ConfigError, ConfigProblem
from sync.reports.text import iso_ms

DAY_MS = 86_400_000


# -- what-if ------------------------------------------------------------------------------------


@dataclass
class WhatIf:
    """Hypothetical property values and events, and the time to score at (the latest of them)."""

    properties: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def apply(self, contact: Contact, events: Sequence[Event], now_ms: int) -> tuple[Contact, list[Event], int]:
        props = {**contact.properties, **self.properties}
        stage = props.get(LIFECYCLE_STAGE, contact.lifecycle_stage)
        email = props.get(EMAIL, contact.email).strip().lower()
        changed = Contact(
            contact.id, props, email, contact.created_at_ms, stage, contact.list_ids, contact.company_properties
        )
        # Real events reach a contact through its email address: without one, none would count.
        added = [_with_email(e, email) for e in self.events] if email else []
        at = max([now_ms, *(e.at_ms for e in added)])
        return changed, [*events, *added], at


_EVENT_KINDS = (
    {"form": FORM_SUBMISSION, FORM_SUBMISSION: FORM_SUBMISSION}
    | {k: k for k in EMAIL_EVENT_TYPES}
    | {k.removeprefix("email_"): k for k in EMAIL_EVENT_TYPES}
)
_WHEN = re.compile(r"^([+-])(\d+(?:\.\d+)?)([dhm])$")

WHAT_IF_HELP = (
    "a hypothetical, repeatable: PROPERTY=VALUE sets a property (PROPERTY= clears it); "
    "KIND[:TEXT][@WHEN] adds an event: KIND is form or an email event (open, click, bounce, unsubscribe, "
    "spam_report, delivered, sent), TEXT the form name (form:'Demo request') or the clicked URL, "
    "WHEN now (default), +1d, -3h, +30m or an ISO time. A future event scores the contact as of that time."
)


def parse_what_if(specs: Sequence[str], now_ms: int) -> WhatIf:
    """Parse --what-if values; every bad one is reported (ConfigError), none silently dropped."""
    what = WhatIf()
    problems: list[str] = []
    for n, spec in enumerate(specs):
        name, eq, value = spec.partition("=")
        if eq and ":" not in name and "@" not in name and name.strip():
            what.properties[name.strip()] = value
            what.labels.append(f"{name.strip()}={value}" if value else f"{name.strip()} cleared")
            continue
        head, _, when = spec.partition("@")
        kind_text, _, text = head.partition(":")
        kind = _EVENT_KINDS.get(kind_text.strip().lower())
        if kind is None:
            problems.append(
                f"--what-if {spec!r}: not PROPERTY=VALUE, and {kind_text!r} is not an event kind "
                f"(one of: {', '.join(sorted(k for k in _EVENT_KINDS if '_' not in k or k == 'spam_report'))})"
            )
            continue
        try:
            at_ms = _when(when.strip(), now_ms)
            stamp = iso_ms(at_ms)
        except (ValueError, OverflowError, OSError) as exc:
            problems.append(f"--what-if {spec!r}: {exc}")
            continue
        text = text.strip().strip("'\"")
        event_id = f"what-if-{n + 1}"
        event: Event
        if kind == FORM_SUBMISSION:
            event = FormSubmission(event_id, at_ms, "", "what-if", text or "what-if form", "")
        else:
            event = EmailEvent(event_id, kind, at_ms, "", "what-if", text)
        what.events.append(event)
        what.labels.append(f"{kind}{f' {text!r}' if text else ''} at {stamp}")
    if problems:
        raise ConfigError([ConfigProblem("leadsync explain", None, "", p) for p in problems])
    return what


def _when(text: str, now_ms: int) -> int:
    if text in ("", "now"):
        return now_ms
    found = _WHEN.match(text)
    if found:
        sign, amount, unit = found.groups()
        ms = float(amount) * {"d": DAY_MS, "h": 3_600_000, "m": 60_000}[unit]
        return now_ms + int(ms if sign == "+" else -ms)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"WHEN {text!r} is not now, +Nd, -Nh, +Nm or an ISO 8601 time") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _with_email(event: Event, email: str) -> Event:
    if isinstance(event, FormSubmission):
        return FormSubmission(event.event_id, event.at_ms, email, event.form_id, event.form_name, event.page_url)
    return EmailEvent(event.event_id, event.kind, event.at_ms, email, event.campaign_id, event.url, event.filtered)


# -- the explanation ----------------------------------------------------------------------------


@dataclass
class RuleLine:
    rule: str
    group: str
    kind: str
    matched: bool
    points: float
    detail: str
    reads: str = ""  # the property value or the condition the rule looked at
    events: list[dict[str, Any]] = field(default_factory=list)  # the events an event rule counted


@dataclass
class InterestExplanation:
    """One product-interest score of the contact, rule by rule (it never moves a stage)."""

    name: str
    score: int | None  # None: the contact is outside the interest's segment
    points: int
    decay: int
    segment: str  # the segment's condition and whether the contact is in it; "" without a segment
    reasons: str
    lines: list[RuleLine]

    def json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "score": self.score,
            "points": self.points,
            "decay": self.decay,
            "segment": self.segment or None,
            "reasons": self.reasons,
            "rules": [line.__dict__ for line in self.lines],
        }


@dataclass
class Explanation:
    contact: Contact
    result: ScoreResult
    now_ms: int
    lines: list[RuleLine]
    verdict: list[str]  # exclusion, holdout, model
    grades: list[str]
    stage: list[str]
    hubspot: list[tuple[str, str, str | None]]  # property, HubSpot now, would be written (None: unchanged)
    stage_move: str | None
    written_stage: str | None = None  # the stage leadsync last wrote (state store), None when none or unknown
    ownership_known: bool = False  # whether the state store was read (--db)
    scored_at: str = ""  # the model's scored_at property: epoch ms, shown with its ISO time
    interests: list[InterestExplanation] = field(default_factory=list)  # the product-interest scores
    likelihood: Likelihood | None = None  # with a `predictive:` section: the learned likelihood, feature by feature

    def json(self) -> dict[str, Any]:
        r = self.result
        return {
            "contact_id": self.contact.id,
            "email": self.contact.email,
            "as_of": iso_ms(self.now_ms),
            "version": r.version,
            "model": r.model,
            "score": r.score,
            "fit": r.fit,
            "engagement": r.engagement,
            "decay": r.decay,
            "grade": r.grade,
            "excluded": r.excluded,
            "exclusion_reason": r.exclusion_reason,
            "holdout": r.holdout,
            "verdict": self.verdict,
            "rules": [line.__dict__ for line in self.lines],
            "grades": self.grades,
            "stage": {
                "current": r.current_stage,
                "target": r.stage_target,
                "write": r.stage_write,
                "reason": r.stage_reason,
                "held_back": r.stage_held,
                "written_by_leadsync": self.written_stage,
                "ownership": "read from the state store" if self.ownership_known else "unknown (no --db)",
                "checks": self.stage,
            },
            "hubspot": [{"property": p, "now": now, "would_write": new} for p, now, new in self.hubspot],
            "stage_move": self.stage_move,
            **({"interests": [i.json() for i in self.interests]} if self.interests else {}),
            **({"likelihood": likelihood_json(self.likelihood)} if self.likelihood is not None else {}),
        }


def likelihood_json(predicted: Likelihood) -> dict[str, Any]:
    """The learned likelihood with every feature's contribution (log-odds), the model's order."""
    return {
        "model": predicted.model_version,
        "probability": round(predicted.probability, 6),
        "value": predicted.value,
        "factors": predicted.factors(),
        "intercept": predicted.intercept,
        "features": [
            {"feature": c.feature.label, "value": c.value, "coefficient": c.coefficient, "contribution": c.contribution}
            for c in predicted.contributions
        ],
    }


def explain(
    contact: Contact,
    events: Sequence[Event],
    rules: RuleSet,
    now_ms: int,
    *,
    written_stage: str | None = None,
    ownership_known: bool = False,
) -> Explanation:
    """`written_stage` is the stage leadsync last wrote (from the state store, when `ownership_known`)."""
    decision = decide(contact, events, rules, now_ms, contact.properties, written_stage=written_stage)
    result, model = decision.result, decision.model
    predictive, predicted = rules.spec.predictive, decision.likelihood
    if predictive is not None and predicted is None:  # not written (holdout, excluded), still shown
        predicted = likelihood(predictive.model, contact, events, now_ms, result.breakdown)
    ctx = rules.context(contact, events, now_ms)
    stage = _stage_checks(rules, result, model, ctx)
    if model is not None and model.lifecycle.demote:
        stage.insert(-1, _ownership(model, result.current_stage, written_stage, ownership_known))
    return Explanation(
        contact=contact,
        result=result,
        now_ms=now_ms,
        lines=_lines(result, model, ctx),
        verdict=_verdict(rules, result, model, ctx),
        grades=_grades(result, model),
        stage=stage,
        hubspot=_hubspot(decision, rules.spec.interests) + _likelihood_hubspot(decision, predictive),
        stage_move=decision.stage_move,
        written_stage=written_stage,
        ownership_known=ownership_known,
        scored_at=model.properties.scored_at if model is not None else "",
        interests=[
            _interest(spec, found, ctx) for spec, found in zip(rules.spec.interests, result.interests, strict=True)
        ],
        likelihood=predicted,
    )


def _interest(spec: InterestSpec, result: InterestResult, ctx: Ctx) -> InterestExplanation:
    segment = ""
    if spec.segment is not None:
        verdict = "outside it: no score, its properties are cleared" if result.score is None else "in it"
        segment = f"segment: {describe_condition(spec.segment)} -> {verdict}"
    rules = {r.id: r for r in spec.rules.rules}
    return InterestExplanation(
        name=spec.name,
        score=result.score,
        points=result.points,
        decay=result.decay,
        segment=segment,
        reasons=breakdown_reasons(result.breakdown),
        lines=_lines_of(result.breakdown, rules, spec.decay, ctx),
    )


def _likelihood_hubspot(decision: Decision, predictive: Predictive | None) -> list[tuple[str, str, str | None]]:
    if predictive is None or decision.model is None:
        return []
    update = decision.plan.update
    writes = dict(update.properties) if update is not None else {}
    names = (predictive.likelihood_property, predictive.factors_property)
    return [(name, decision.contact.properties.get(name, ""), writes.get(name)) for name in names]


def _ownership(model: ModelSpec, current: str, written: str | None, known: bool) -> str:
    """Whose the current stage is: a demotion moves back only leadsync's own (docs/SCORING.md section 3)."""
    if model.lifecycle.own_stages == "all":
        return "own_stages: all: leadsync may move back any stage this model sets, whoever set it"
    if not known:
        return (
            "stage ownership unknown (no --db): leadsync's record of the stages it wrote was not read, "
            "so a demotion is held back"
        )
    if written is None:
        return "leadsync has written no stage for this contact: a demotion is held back"
    if written == current:
        return f"leadsync last wrote {written} and HubSpot still holds it: leadsync may move it back"
    return (
        f"leadsync last wrote {written}, HubSpot now holds {current or '(none)'} (a person or another tool "
        "set it): a demotion is held back"
    )


def _lines(result: ScoreResult, model: ModelSpec | None, ctx: Ctx) -> list[RuleLine]:
    specs: dict[str, Rule] = {}
    if model is not None:
        specs = {r.id: r for r in (*model.fit.rules, *model.engagement.rules)}
    return _lines_of(result.breakdown, specs, model.decay if model is not None else None, ctx)


def _lines_of(breakdown: Sequence[RuleHit], specs: dict[str, Rule], decay: Decay | None, ctx: Ctx) -> list[RuleLine]:
    """A breakdown's lines with what each rule read: the property value, the condition, the events it counted."""
    lines = []
    for hit in breakdown:
        line = RuleLine(hit.rule, hit.group, hit.kind, hit.matched, hit.points, hit.detail)
        spec = specs.get(hit.rule)
        if isinstance(spec, EventRule):
            found = compile_event_filter(spec.filter)(ctx)
            line.reads = describe_filter(spec.filter)
            line.events = [_event_json(age, event) for age, event in sorted(found, key=lambda x: x[1].at_ms)]
        elif isinstance(spec, BandRule) or (isinstance(spec, MapRule) and not hit.matched):
            line.reads = _reads(ctx, spec.property)
        elif isinstance(spec, ConditionRule):
            line.reads = describe_condition(spec.condition)
        if spec is not None and spec.when is not None:
            line.reads += f" (only when {describe_condition(spec.when)})"
        if hit.kind == "decay" and decay is not None:
            ages = [age for kind in sorted(decay.events) for age, _ in ctx.aged(kind)]
            line.reads = (
                f"last engagement ({', '.join(sorted(decay.events))}) {min(ages)} days ago"
                if ages
                else "no engagement events"
            )
        lines.append(line)
    return lines


def _reads(ctx: Ctx, name: str) -> str:
    """The value a map or bands rule read; `company.<property>` from the contact's primary company."""
    company_name = company_property(name)
    if company_name is not None:
        if ctx.company_props is None:
            return f"{name} is empty (no company)"
        value = ctx.company_view().props.get(company_name)
    else:
        value = ctx.props.get(name)
    return f"{name} = {value!r}" if value not in (None, "") else f"{name} is empty"


def _event_json(age: int, event: Event) -> dict[str, Any]:
    what = (
        event.form_name or event.form_id
        if isinstance(event, FormSubmission)
        else (event.url or f"campaign {event.campaign_id}")
    )
    return {"kind": event.kind, "id": event.event_id, "what": what, "at": iso_ms(event.at_ms), "age_days": age}


def _verdict(rules: RuleSet, result: ScoreResult, model: ModelSpec | None, ctx: Ctx) -> list[str]:
    out = []
    if result.excluded and result.exclusion_reason != "no_model":
        for exclusion in rules.spec.exclusions:
            if exclusion.reason == result.exclusion_reason:
                out.append(
                    f"excluded ({exclusion.reason}): {describe_condition(exclusion.condition)}; "
                    + ("written as zeros" if rules.spec.exclusion_action == "zero" else "nothing is written")
                )
                break
    elif result.model is None:
        out.append("no model's segment matches: nothing is written")
    else:
        out.append("not excluded")
    if result.holdout:
        out.append(
            f"in the holdout ({rules.spec.holdout_percent:g}% control group, salt {rules.spec.holdout_salt!r}): "
            "scored and logged, never written"
        )
    elif rules.spec.holdout_percent:
        out.append(f"not in the holdout ({rules.spec.holdout_percent:g}% control group)")
    if model is not None:
        segment = f" (segment: {describe_condition(model.segment)})" if model.segment is not None else ""
        out.append(f"model {model.name}{segment}")
    return out


def _band_text(bands: Sequence[Any], chosen: str | None) -> str:
    parts = [f"{b.grade} {'>= ' + format(b.min, 'g') if b.min is not None else 'otherwise'}" for b in bands]
    return f"{chosen} (bands: {', '.join(parts)})"


def _grades(result: ScoreResult, model: ModelSpec | None) -> list[str]:
    if model is None or model.grades is None:
        return ["no grades configured"]
    return [
        f"fit {result.fit} -> {_band_text(model.grades.fit, result.fit_grade)}",
        f"engagement {result.engagement + result.decay} (after decay) -> "
        f"{_band_text(model.grades.engagement, result.engagement_grade)}",
        f"grade {result.grade} ({model.grades.label})",
    ]


def _stage_checks(rules: RuleSet, result: ScoreResult, model: ModelSpec | None, ctx: Ctx) -> list[str]:
    if model is None:
        return []
    lc = model.lifecycle
    out = [f"mode {lc.mode}; current stage {result.current_stage or '(none)'}"]
    for th in lc.thresholds:
        ok = result.score >= th.min_score
        line = f"{th.stage}: score {result.score} {'>=' if ok else '<'} {th.min_score:g}"
        if th.min_fit_grade is not None:
            line += f", fit grade {result.fit_grade} (needs {th.min_fit_grade} or better)"
        out.append(line)
    compiled = next(m for m in rules.models if m.spec.name == model.name)
    for stage_rule, (_, predicate) in zip(lc.rules, compiled.stage_rules, strict=True):
        matched = predicate(ctx)
        out.append(
            f"{stage_rule.stage} by rule: {describe_condition(stage_rule.condition)} -> "
            f"{'matches' if matched else 'does not match'}"
        )
    if lc.never_touch:
        out.append(f"never touched: {', '.join(sorted(lc.never_touch))}")
    out.append(f"decision: {result.stage_write} - {result.stage_reason}")
    return out


def _hubspot(decision: Decision, interests: Sequence[InterestSpec] = ()) -> list[tuple[str, str, str | None]]:
    if decision.model is None:
        return []
    p = decision.model.properties
    update = decision.plan.update
    writes = dict(update.properties) if update is not None else {}
    if decision.stage_move is not None:
        writes[LIFECYCLE_STAGE] = decision.stage_move
    names = [p.score, p.fit, p.engagement, p.grade, p.reasons, p.scored_at, LIFECYCLE_STAGE]
    names += [name for i in interests for name in (i.properties.score, i.properties.reasons) if name is not None]
    return [(name, decision.contact.properties.get(name, ""), writes.get(name)) for name in names]


# -- printing -----------------------------------------------------------------------------------


def print_explanation(ex: Explanation, console: Console, title: str = "") -> None:
    r, c = ex.result, ex.contact
    console.print(
        f"[bold]{title or 'contact'} {c.id}[/bold] {c.email or '(no email)'} as of {iso_ms(ex.now_ms)}, "
        f"rule-set version {r.version}"
    )
    console.print(
        f"score [bold]{r.score}[/bold] = fit {r.fit} + engagement {r.engagement} + decay {r.decay}"
        f"{' (clamped)' if r.score != r.fit + r.engagement + r.decay else ''}; grade {r.grade or '-'}"
    )
    for verdict in ex.verdict:
        console.print(f"  {verdict}")
    console.print(_rules_table(ex.lines))
    console.print("[bold]grades[/bold]")
    for grade in ex.grades:
        console.print(f"  {grade}")
    console.print("[bold]lifecycle stage[/bold]")
    for check in ex.stage:
        console.print(f"  {check}")
    for interest in ex.interests:
        _print_interest(interest, console)
    if ex.likelihood is not None:
        console.print(_likelihood_table(ex.likelihood))
    if ex.hubspot:
        console.print(_hubspot_table(ex))


def _print_interest(interest: InterestExplanation, console: Console) -> None:
    if interest.score is None:
        head = "no score"
    else:
        head = f"[bold]{interest.score}[/bold] = rules {interest.points} + decay {interest.decay}"
        head += " (clamped)" if interest.score != interest.points + interest.decay else ""
    console.print(f"[bold]interest {interest.name}[/bold]: {head} (never moves a stage)")
    if interest.segment:
        console.print(f"  {interest.segment}")
    if interest.lines:
        console.print(_rules_table(interest.lines))


def _likelihood_table(predicted: Likelihood) -> Table:
    """Every feature of the learned model: the contact's value, the coefficient and its contribution."""
    table = Table(
        title=f"likelihood {predicted.value} ({predicted.probability:.1%}), model {predicted.model_version}: "
        f"intercept {predicted.intercept:+.2f} plus each feature's contribution (log-odds)",
        header_style="bold",
    )
    for name in ("feature", "value", "coefficient", "contribution"):
        table.add_column(name, justify="left" if name == "feature" else "right", overflow="fold")
    for c in sorted(predicted.contributions, key=lambda c: -abs(c.contribution)):
        table.add_row(c.feature.label, f"{c.value:g}", f"{c.coefficient:+.3f}", f"{c.contribution:+.3f}")
    return table


def _rules_table(lines: Sequence[RuleLine]) -> Table:
    table = Table(header_style="bold", show_lines=False)
    for name in ("rule", "group", "matched", "points", "detail"):
        table.add_column(name, overflow="fold")
    for line in lines:
        detail = line.detail
        if line.reads and line.reads not in detail:
            detail += f"\n[dim]{line.reads}[/dim]"
        for event in line.events:
            detail += (
                f"\n[dim]  {event['kind']} {event['what']!s} on {event['at'][:10]} ({event['age_days']}d ago)[/dim]"
            )
        points = f"{line.points:+g}" if line.points or line.matched else "0"
        table.add_row(line.rule, line.group, "yes" if line.matched else "no", points, detail)
    return table


def _hubspot_table(ex: Explanation) -> Table:
    held = Table(title="HubSpot now and what a run would write", header_style="bold")
    for name in ("property", "HubSpot now", "would write"):
        held.add_column(name, overflow="fold")
    for prop, held_now, new in ex.hubspot:
        timed = prop == ex.scored_at
        wanted = _with_time(new) if timed and new is not None else new
        shown = "(unchanged)" if wanted is None else (repr(wanted) if wanted == "" else wanted)
        if prop == LIFECYCLE_STAGE and ex.stage_move:
            shown += " (clear, then set: HubSpot only moves stages forward)"
        held.add_row(prop, (_with_time(held_now) if timed else held_now) or "", shown)
    return held


def _with_time(ms: str) -> str:
    """Epoch milliseconds as HubSpot holds them, with the time they stand for."""
    return f"{ms} ({iso_ms(int(ms))})" if ms.isascii() and ms.isdigit() else ms


def print_what_if(real: Explanation, hypo: Explanation, labels: Sequence[str], console: Console) -> None:
    a, b = real.result, hypo.result
    console.print()
    console.print("[bold]what if[/bold] " + "; ".join(labels))
    console.print(
        f"  score {a.score} -> {b.score} ({b.score - a.score:+d}), grade {a.grade or '-'} -> {b.grade or '-'}, "
        f"stage {a.stage_target or a.current_stage or '-'} -> {b.stage_target or b.current_stage or '-'} "
        f"({b.stage_reason})"
    )
    console.print()
    print_explanation(hypo, console, title="what-if: contact")


def what_if_json(real: Explanation, hypo: Explanation, labels: Sequence[str]) -> dict[str, Any]:
    return {**real.json(), "what_if": {"hypotheticals": list(labels), **hypo.json()}}


# -- a company ----------------------------------------------------------------------------------


@dataclass
class MemberLine:
    """One of the company's contacts in its roll-up."""

    contact_id: str
    email: str
    model: str | None
    interest: int  # engagement + decay, floored at 0: what the contact adds
    counted: bool
    status: str  # "excluded: <reason>", "holdout" or ""
    primary: str | None  # the contact's primary company (what its company.<property> reads)
    matched: list[str] = field(default_factory=list)  # the contacts rules it matched


@dataclass
class CompanyExplanation:
    company: Company
    result: AccountResult
    now_ms: int
    rollup: str
    lines: list[RuleLine]
    members: list[MemberLine]
    grades: list[str]
    hubspot: list[tuple[str, str, str | None]]  # property, HubSpot now, this run's value (None: unchanged)

    def json(self) -> dict[str, Any]:
        r = self.result
        return {
            "company_id": self.company.id,
            "name": self.company.properties.get("name"),
            "as_of": iso_ms(self.now_ms),
            "version": r.version,
            "score": r.score,
            "fit": r.fit,
            "engagement": r.engagement,
            "grade": r.grade,
            "fit_grade": r.fit_grade,
            "engagement_grade": r.engagement_grade,
            "rollup": {"how": self.rollup, "value": r.rollup},
            "contacts": {"counted": r.contacts, "excluded": r.excluded_contacts},
            "reasons": breakdown_reasons(r.breakdown),
            "rules": [line.__dict__ for line in self.lines],
            "roll_up": [member.__dict__ for member in self.members],
            "grades": self.grades,
            "hubspot": [{"property": p, "now": now, "would_write": new} for p, now, new in self.hubspot],
        }


def explain_company(
    company: Company,
    members: Iterable[tuple[Contact, Sequence[Event], str | None]],
    rules: RuleSet,
    accounts: CompiledAccounts,
    now_ms: int,
) -> CompanyExplanation:
    """The company's score as the account pass computes it, with its contacts one by one. Each of `members`
    carries its own primary company's properties already (they may be another company's) and that company's id."""
    tally = accounts.tally()
    lines: list[MemberLine] = []
    for contact, events, primary in members:
        scored = score_at(contact, events, rules, now_ms)
        member = ScoredContact(contact, scored, events if accounts.event_kinds else ())
        tally.add(member, now_ms)
        lines.append(_member_line(accounts, member, primary, now_ms))
    result = score_tally(company, tally, now_ms)
    spec = accounts.spec
    return CompanyExplanation(
        company=company,
        result=result,
        now_ms=now_ms,
        rollup=spec.engagement.rollup,
        lines=_account_lines(result, spec, company),
        members=lines,
        grades=_account_grades(result, spec),
        hubspot=_account_hubspot(result, spec, company),
    )


def _member_line(accounts: CompiledAccounts, member: ScoredContact, primary: str | None, now_ms: int) -> MemberLine:
    contact, result = member.contact, member.result
    status = f"excluded: {result.exclusion_reason}" if result.excluded else "holdout" if result.holdout else ""
    line = MemberLine(
        contact.id, contact.email, result.model, current_interest(result), not result.excluded, status, primary
    )
    if result.excluded:
        return line
    reads = accounts.outputs.get(result.model or "")
    seen = with_run_outputs(contact, result, reads) if reads else contact
    ctx = Ctx.build(seen, member.events, now_ms, accounts.event_kinds)
    contacts_rules = [r for r in accounts.spec.engagement.rules if isinstance(r, ContactsRule)]
    line.matched = [r.id for r, where in zip(contacts_rules, accounts.where, strict=True) if where(ctx)]
    return line


def _account_lines(result: AccountResult, spec: AccountSpec, company: Company) -> list[RuleLine]:
    rules: dict[str, Rule | ContactsRule] = {r.id: r for r in (*spec.fit.rules, *spec.engagement.rules)}
    ctx = Ctx.for_company(company, 0)
    lines = []
    for hit in result.breakdown:
        line = RuleLine(hit.rule, hit.group, hit.kind, hit.matched, hit.points, hit.detail)
        rule = rules.get(hit.rule)
        if isinstance(rule, ContactsRule):
            line.reads = f"contacts where {describe_condition(rule.where)}"
        elif isinstance(rule, BandRule | MapRule):
            line.reads = _reads(ctx, company_property(rule.property) or rule.property)
        elif isinstance(rule, ConditionRule):
            line.reads = describe_condition(rule.condition)
        if rule is not None and rule.when is not None:
            line.reads += f" (only when {describe_condition(rule.when)})"
        lines.append(line)
    return lines


def _account_grades(result: AccountResult, spec: AccountSpec) -> list[str]:
    if spec.grades is None:
        return ["no grades configured"]
    return [
        f"fit {result.fit} -> {_band_text(spec.grades.fit, result.fit_grade)}",
        f"engagement {result.engagement} -> {_band_text(spec.grades.engagement, result.engagement_grade)}",
        f"grade {result.grade} ({spec.grades.label})",
    ]


def _account_hubspot(result: AccountResult, spec: AccountSpec, company: Company) -> list[tuple[str, str, str | None]]:
    """The account outputs HubSpot holds and this run's values where they differ (scored_at moves with them)."""
    props = spec.properties
    values = {
        props.score: str(result.score),
        props.fit: str(result.fit),
        props.engagement: str(result.engagement),
        props.grade: result.grade or "",
        props.reasons: breakdown_reasons(result.breakdown),
    }
    out: list[tuple[str, str, str | None]] = []
    for name, value in values.items():
        now = company.properties.get(name, "")
        out.append((name, now, None if now == value else value))
    return out


def print_company(ex: CompanyExplanation, console: Console) -> None:
    r, c = ex.result, ex.company
    name = c.properties.get("name")
    console.print(
        f"[bold]company {c.id}[/bold] {name or '(no name)'} as of {iso_ms(ex.now_ms)}, rule-set version {r.version}"
    )
    clamped = " (clamped)" if r.score != r.fit + r.engagement else ""
    console.print(
        f"score [bold]{r.score}[/bold] = fit {r.fit} + engagement {r.engagement}{clamped}; grade {r.grade or '-'}"
    )
    console.print(
        f"  {r.contacts} contacts counted, {r.excluded_contacts} excluded; their interest rolled up by {ex.rollup}: "
        f"{r.rollup}"
    )
    console.print(_members_table(ex.members))
    console.print(_rules_table(ex.lines))
    console.print("[bold]grades[/bold]")
    for grade in ex.grades:
        console.print(f"  {grade}")
    held = Table(title="HubSpot now and this run's values", header_style="bold")
    for column in ("property", "HubSpot now", "this run"):
        held.add_column(column, overflow="fold")
    for prop, now, new in ex.hubspot:
        held.add_row(prop, now, "(unchanged)" if new is None else new)
    console.print(held)


def _members_table(members: Sequence[MemberLine]) -> Table:
    table = Table(title="the roll-up, contact by contact", header_style="bold")
    for name in ("contact", "email", "model", "interest", "counted", "status", "primary company", "contacts rules"):
        table.add_column(name, overflow="fold")
    for m in members:
        table.add_row(
            m.contact_id,
            m.email or "",
            m.model or "-",
            str(m.interest),
            "yes" if m.counted else "no",
            m.status,
            m.primary or "-",
            ", ".join(m.matched),
        )
    return table
