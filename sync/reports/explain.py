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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sync.core.conditions import Ctx, compile_event_filter, describe_condition, describe_filter
from sync.core.decision import Decision, decide
from sync.core.model import (
    EMAIL_EVENT_TYPES,
    FORM_SUBMISSION,
    Contact,
    EmailEvent,
    Event,
    FormSubmission,
    ScoreResult,
)
from sync.core.rules import BandRule, ConditionRule, EventRule, MapRule, ModelSpec, Rule, RuleSet
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
        changed = Contact(contact.id, props, email, contact.created_at_ms, stage, contact.list_ids)
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
        hubspot=_hubspot(decision),
        stage_move=decision.stage_move,
        written_stage=written_stage,
        ownership_known=ownership_known,
    )


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
    lines = []
    for hit in result.breakdown:
        line = RuleLine(hit.rule, hit.group, hit.kind, hit.matched, hit.points, hit.detail)
        spec = specs.get(hit.rule)
        if isinstance(spec, EventRule):
            found = compile_event_filter(spec.filter)(ctx)
            line.reads = describe_filter(spec.filter)
            line.events = [_event_json(age, event) for age, event in sorted(found, key=lambda x: x[1].at_ms)]
        elif isinstance(spec, BandRule) or (isinstance(spec, MapRule) and not hit.matched):
            value = ctx.props.get(spec.property)
            line.reads = f"{spec.property} = {value!r}" if value not in (None, "") else f"{spec.property} is empty"
        elif isinstance(spec, ConditionRule):
            line.reads = describe_condition(spec.condition)
        if spec is not None and spec.when is not None:
            line.reads += f" (only when {describe_condition(spec.when)})"
        if hit.kind == "decay" and model is not None and model.decay is not None:
            ages = [age for kind in sorted(model.decay.events) for age, _ in ctx.aged(kind)]
            line.reads = (
                f"last engagement ({', '.join(sorted(model.decay.events))}) {min(ages)} days ago"
                if ages
                else "no engagement events"
            )
        lines.append(line)
    return lines


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


def _hubspot(decision: Decision) -> list[tuple[str, str, str | None]]:
    if decision.model is None:
        return []
    p = decision.model.properties
    update = decision.plan.update
    writes = dict(update.properties) if update is not None else {}
    if decision.stage_move is not None:
        writes[LIFECYCLE_STAGE] = decision.stage_move
    names = [p.score, p.fit, p.engagement, p.grade, p.reasons, p.scored_at, LIFECYCLE_STAGE]
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
    if ex.hubspot:
        console.print(_hubspot_table(ex))


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
    for prop, now, new in ex.hubspot:
        shown = "(unchanged)" if new is None else (repr(new) if new == "" else new)
        if prop == LIFECYCLE_STAGE and ex.stage_move:
            shown += " (clear, then set: HubSpot only moves stages forward)"
        held.add_row(prop, now or "", shown)
    return held


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
