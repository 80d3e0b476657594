"""`leadsync plan`: what a run would write, computed and never sent.

Each contact is decided by the worker's own `decide` (score, model, minimal
writes) against the values HubSpot holds now, so the predicted writes are the
writes a following full sync makes. With a base
config the "before" side is what the base config would leave in HubSpot, so
the difference is the rule change alone.

A demotion moves back only a stage leadsync itself last wrote (or any stage,
with `own_stages: all`). Which stages those are is in the state store: given
it (`written_stages`), the plan decides as the worker will; without it the
ownership is unknown and every demotion it depends on is counted as held back.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from sync.core.account_planning import account_writes
from sync.core.accounts import AccountSpec
from sync.core.conditions import parse_number
from sync.core.decision import Decision, Holding
from sync.core.model import AccountResult, Company, Contact, Event, ScoreResult, with_company
from sync.core.rules import RuleSet
from sync.core.scoring import breakdown_reasons
from sync.core.wire import LIFECYCLE_STAGE
from sync.observability import email_for_log
from sync.pipeline import BATCH, owned_properties
from sync.pipeline.parallel import Ask, Decided, Failure, Parallel, decider, decision_of
from sync.ports import PropertyInfo
from sync.reports.accounts import AccountPass, CompanyInputs
from sync.reports.dataset import Mapped
from sync.reports.spill import Lazy, Spill, materialize, write_json
from sync.reports.text import count, iso_ms, num, show

# Calls one batch of backward stage moves costs: read the old stages, clear, set, read back.
STAGE_MOVE_CALLS = 4


def holding_json(held: Holding) -> dict[str, Any]:
    return {"score": num(held.score), "grade": held.grade, "stage": held.stage}


@dataclass
class ContactDiff:
    contact_id: str
    email: str
    before: Holding  # what HubSpot holds now (or after a run of the base config)
    after: Holding
    writes: dict[str, str]  # property values the run writes (its scored_at timestamp left out)
    stage_move: str | None  # a backward stage move, sent as clear then set
    reasons: str
    note: str  # excluded, holdout or the stage decision
    rejected: str = ""  # why HubSpot would refuse these writes (then they are not counted as written)

    @property
    def delta(self) -> float:
        return (self.after.score or 0) - (self.before.score or 0)

    def json(self, emails: bool = True) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "email": email_for_log(self.email, emails),
            "before": holding_json(self.before),
            "after": holding_json(self.after),
            "writes": self.writes,
            "stage_move": self.stage_move,
            "reasons": self.reasons,
            "note": self.note,
            "rejected": self.rejected or None,
        }


def _diff_state(d: ContactDiff) -> list[Any]:
    hold = [[h.score, h.grade, h.stage] for h in (d.before, d.after)]
    return [d.contact_id, d.email, *hold, d.writes, d.stage_move, d.reasons, d.note, d.rejected]


def _diff_of(v: list[Any]) -> ContactDiff:
    return ContactDiff(v[0], v[1], Holding(*v[2]), Holding(*v[3]), v[4], v[5], v[6], v[7], v[8])


def contact_diffs() -> Spill[ContactDiff]:
    return Spill(_diff_state, _diff_of)


@dataclass(frozen=True)
class HeldBack:
    """A demotion the score called for but that was not leadsync's to make."""

    contact_id: str
    email: str
    stage: str
    score: int
    reason: str

    def json(self, emails: bool = True) -> dict[str, Any]:
        return {
            "contact_id": self.contact_id,
            "email": email_for_log(self.email, emails),
            "stage": self.stage,
            "score": self.score,
            "reason": self.reason,
        }


def held_backs() -> Spill[HeldBack]:
    return Spill(lambda h: [h.contact_id, h.email, h.stage, h.score, h.reason], lambda v: HeldBack(*v))


OWNERSHIP_UNKNOWN = (
    "stage ownership is unknown (no --db): leadsync cannot tell which stages it wrote itself, so demotions of "
    "stages not known to be leadsync's are held back; pass --db URL to read them from the state store"
)


def unknown_owner(stage: str) -> str:
    return f"held back: stage {stage} is not known to be leadsync's (stage ownership is unknown without --db)"


@dataclass
class Crossing:
    model: str
    stage: str
    min_score: float
    up: int = 0
    down: int = 0


@dataclass
class CompanyDiff:
    """One company whose account outputs a run writes, or whose score or grade moves."""

    company_id: str
    name: str
    before: Holding  # what HubSpot holds now (or after a run of the base config); stage unused
    after: Holding
    writes: dict[str, str]  # property values the run writes (its scored_at timestamp left out)
    reasons: str

    @property
    def delta(self) -> float:
        return (self.after.score or 0) - (self.before.score or 0)

    def json(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "name": self.name,
            "before": {"score": num(self.before.score), "grade": self.before.grade},
            "after": {"score": num(self.after.score), "grade": self.after.grade},
            "writes": self.writes,
            "reasons": self.reasons,
        }


@dataclass
class CompanyPlan:
    """The account scores' part of a plan: every company's new outputs against what HubSpot holds."""

    companies: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    diffs: list[CompanyDiff] = field(default_factory=list)

    @property
    def update_batches(self) -> int:
        return -(-self.counts["written"] // BATCH)  # companies are written 100 a call, changed ones only

    def top(self, n: int) -> list[CompanyDiff]:
        moved = [d for d in self.diffs if d.before != d.after]
        return sorted(moved, key=lambda d: (-abs(d.delta), d.company_id))[:n]

    def json(self, top: int) -> dict[str, Any]:
        return {
            "companies": self.companies,
            "counts": dict(sorted(self.counts.items())),
            "update_batches": self.update_batches,
            "top_changes": [d.json() for d in self.top(top)],
            "companies_written": [d.json() for d in self.diffs if d.writes],
        }


@dataclass
class PlanReport:
    source: str
    version: str
    base: str  # "HubSpot now" or "config FILE (version V)"
    now_ms: int
    contacts: int = 0
    # Every contact the run writes or whose outcome moves: as many as the portal has, kept on disk past a few.
    diffs: Spill[ContactDiff] = field(default_factory=contact_diffs)
    counts: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    crossings: list[Crossing] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    held_back: Spill[HeldBack] = field(default_factory=held_backs)
    ownership: str = ""  # why demotions may be held back without the store; "" when the store was read
    accounts: CompanyPlan | None = None  # with an `accounts:` section
    # Product-interest outputs (property -> interest name), and how many contacts a run writes each of.
    interest_properties: dict[str, str] = field(default_factory=dict)
    interest_writes: Counter[str] = field(default_factory=Counter)

    def top(self, n: int) -> list[ContactDiff]:
        """The `n` largest moves: as sorting them all would give them, in a heap of `n`."""
        moved = (d for d in self.diffs if d.before != d.after)
        return heapq.nsmallest(n, moved, key=lambda d: (-abs(d.delta), d.before.stage == d.after.stage, d.contact_id))

    def json(self, top: int, emails: bool = True) -> dict[str, Any]:
        return materialize(self.document(top, emails))  # type: ignore[no-any-return]

    def write_json(self, out: IO[str], top: int, emails: bool = True) -> None:
        """`json.dumps(self.json(top, emails), ensure_ascii=False, indent=2)`, written a contact at a time."""
        write_json(self.document(top, emails), out, indent=2)

    def document(self, top: int, emails: bool = True) -> dict[str, Any]:
        """The plan's JSON, its per-contact lists `Lazy` (read from `diffs` and `held_back` when written)."""
        return {
            "source": self.source,
            "version": self.version,
            "compared_with": self.base,
            "now_ms": self.now_ms,
            "contacts": self.contacts,
            "counts": dict(sorted(self.counts.items())),
            "stage_transitions": [
                {"from": a or None, "to": b or None, "contacts": n} for (a, b), n in sorted(self.transitions.items())
            ],
            "threshold_crossings": [
                {"model": c.model, "stage": c.stage, "min_score": num(c.min_score), "up": c.up, "down": c.down}
                for c in self.crossings
            ],
            "api_calls": self.calls,
            "top_changes": [d.json(emails) for d in self.top(top)],
            "contacts_written": Lazy(
                d.json(emails) for d in self.diffs if (d.writes or d.stage_move) and not d.rejected
            ),
            "would_be_rejected": Lazy(d.json(emails) for d in self.diffs if d.rejected),
            "stage_ownership": self.ownership or "read from the state store",
            "stages_held_back": Lazy(h.json(emails) for h in self.held_back),
            **({"accounts": self.accounts.json(top)} if self.accounts is not None else {}),
            **({"interest_writes": self.interest_json()} if self.interest_properties else {}),
            "problems": self.problems,
        }

    def interest_json(self) -> list[dict[str, Any]]:
        """Per product-interest property: how many contacts a run writes it for (a change to one interest
        writes that interest's properties only)."""
        return [
            {"interest": name, "property": prop, "contacts": self.interest_writes[prop]}
            for prop, name in self.interest_properties.items()
        ]


@dataclass(frozen=True)
class Acceptance:
    """What HubSpot would take from a run, as far as the portal's property definitions tell."""

    refused: Mapping[str, str]  # property -> why every write of it is refused
    options: Mapping[str, frozenset[str]]  # enumeration property -> the values it takes (after run start)

    def reason(self, writes: Mapping[str, str], stage: str | None) -> str:
        values = {**writes, **({LIFECYCLE_STAGE: stage} if stage else {})}
        reasons = []
        for name, value in sorted(values.items()):
            if name in self.refused:
                reasons.append(self.refused[name])
            elif value and name in self.options and value not in self.options[name]:
                reasons.append(f"{value!r} is not an option of {name}")
        return "; ".join(dict.fromkeys(reasons))


def acceptance(rules: RuleSet, defs: Mapping[str, PropertyInfo]) -> Acceptance:
    """From the portal's contact properties: the writes a run of `rules` would have refused.

    Run start creates leadsync's missing properties and adds its grade labels to their options, so only
    what it cannot change counts: a property outside its group and not adopted, another type, a stage
    lifecyclestage lacks."""
    group, specs = owned_properties(rules)
    refused: dict[str, str] = {}
    options: dict[str, frozenset[str]] = {}
    for spec in specs:
        info = defs.get(spec.name)
        if info is None:
            continue
        if info.group != group and not spec.adopted:
            refused[spec.name] = (
                f"{spec.name} exists in HubSpot in group {info.group!r}, outside leadsync's group {group!r}, "
                "and is not adopted (properties.adopt)"
            )
        elif info.type != spec.type:
            refused[spec.name] = f"{spec.name} is a {info.type} property in HubSpot; leadsync writes a {spec.type}"
        elif spec.type == "enumeration":
            options[spec.name] = frozenset(info.options) | frozenset(spec.options)
    stage = defs.get(LIFECYCLE_STAGE)
    if stage is not None:
        options[LIFECYCLE_STAGE] = frozenset(stage.options)
    return Acceptance(refused, options)


def build_plan(
    inputs: Iterable[tuple[Contact, list[Event]]] | Mapped,
    rules: RuleSet,
    now_ms: int,
    *,
    source: str,
    base: RuleSet | None = None,
    base_label: str = "",
    progress: Callable[[int], None] | None = None,
    written_stages: Mapping[str, str] | None = None,
    accepts: Acceptance | None = None,
    companies: CompanyInputs | None = None,
) -> PlanReport:
    """`written_stages`: the stage leadsync last wrote per contact, from the state store; None when unknown.
    `companies`: each contact reads its primary company's properties, and with an `accounts:` section the
    companies' account outputs are planned after the contacts."""
    report = _empty_report(rules, now_ms, source, base_label, ownership_known=written_stages is not None)
    stages = written_stages if written_stages is not None else {}  # filled a page at a time when streamed
    batches = _Batches()
    rollup = _Rollup.of(companies, rules, base)

    def asked(bare: Contact, events: Sequence[Event]) -> Ask:
        contact = with_company(bare, companies.companies.primary(bare.id)) if companies is not None else bare
        return contact, events, contact.properties, stages.get(contact.id)  # its page's stages, read now

    here = written_stages is not None or rollup is not None  # each contact and its events needed here
    with _Deciding(inputs, asked, _decider(rules, base, now_ms), here=here) as decided:
        for ask, (made, was) in decided:
            contact, events = ask[0], list(ask[1])
            batches.next_contact()
            report.contacts += 1
            failed = made if isinstance(made, Failure) else was if isinstance(was, Failure) else None
            if failed is not None:  # a broken contact is reported, never stops the plan
                report.counts["skipped"] += 1
                report.problems.append(f"contact {contact.id}: {failed.text}")
                continue
            assert not isinstance(made, Failure) and not isinstance(was, Failure)
            decision = decision_of(ask, made, rules)
            # What HubSpot holds before: now, or after a run of the base config.
            before = decision.before if was is None or base is None else decision_of(ask, was, base).after
            if progress is not None:
                progress(report.contacts)
            batches.note(decision)
            _count(report, decision, before, accepts, ownership_known=written_stages is not None)
            if rollup is not None:
                rollup.add(contact, decision.result, was.result if was is not None else None, events, now_ms)
    report.calls = batches.calls()
    if rollup is not None:
        report.accounts = rollup.plan(now_ms)
        report.calls["company_update_batches"] = report.accounts.update_batches
    return report


class _Rollup:
    """The account pass of a plan: the companies' roll-up under the config, and under the base config's
    `accounts:` section when the plan compares two configs."""

    def __init__(self, spec: AccountSpec, new: AccountPass, old: AccountPass | None) -> None:
        self.spec, self.new, self.old = spec, new, old

    @classmethod
    def of(cls, inputs: CompanyInputs | None, rules: RuleSet, base: RuleSet | None) -> _Rollup | None:
        if inputs is None or inputs.accounts is None:
            return None
        old = None
        if base is not None and inputs.base is not None:
            old = AccountPass.build(inputs.base, base, inputs.companies)
        return cls(inputs.accounts, AccountPass.build(inputs.accounts, rules, inputs.companies), old)

    def add(
        self, contact: Contact, result: ScoreResult, base: ScoreResult | None, events: list[Event], now_ms: int
    ) -> None:
        self.new.add(contact, result, events, now_ms)
        if self.old is not None and base is not None:
            self.old.add(contact, base, events, now_ms)

    def plan(self, now_ms: int) -> CompanyPlan:
        out = CompanyPlan()
        olds = {r.company_id: r for r in self.old.results(now_ms)} if self.old is not None else {}
        for result in self.new.results(now_ms):
            company = self.new.companies.by_id[result.company_id]
            old = olds.get(result.company_id)
            _count_company(out, self.spec, company, result, _held(company, self.spec) if old is None else _had(old))
        return out


def _held(company: Company, spec: AccountSpec) -> Holding:
    """The account score and grade the company holds in HubSpot now."""
    props = company.properties
    return Holding(parse_number(props.get(spec.properties.score)), props.get(spec.properties.grade) or None, "")


def _had(result: AccountResult) -> Holding:
    return Holding(result.score, result.grade, "")


def _count_company(
    out: CompanyPlan, spec: AccountSpec, company: Company, result: AccountResult, before: Holding
) -> None:
    out.companies += 1
    writes = account_writes(result, spec.properties, company.properties)
    after = Holding(result.score, result.grade, "")
    out.counts["written"] += bool(writes)
    if not writes and before == after:
        out.counts["unchanged"] += 1
        return
    out.counts["score_changed"] += before.score != after.score
    out.counts["grade_changed"] += before.grade != after.grade
    name = company.properties.get("name") or ""
    out.diffs.append(CompanyDiff(company.id, name, before, after, writes, breakdown_reasons(result.breakdown)))


def _empty_report(rules: RuleSet, now_ms: int, source: str, base_label: str, *, ownership_known: bool) -> PlanReport:
    report = PlanReport(source, rules.version, base_label or "HubSpot now", now_ms)
    for interest in rules.spec.interests:
        for prop in (interest.properties.score, interest.properties.reasons):
            if prop is not None:
                report.interest_properties[prop] = interest.name
    if not ownership_known and any(m.lifecycle.demote and m.lifecycle.own_stages != "all" for m in rules.spec.models):
        report.ownership = OWNERSHIP_UNKNOWN
    for name in ("promotions", "demotions", "stages_held_back"):
        report.counts[name] += 0  # listed even when none
    report.crossings = [
        Crossing(m.name, th.stage, th.min_score) for m in rules.spec.models for th in m.lifecycle.thresholds
    ]
    return report


Made = tuple[Decided | Failure, Decided | Failure | None]  # a contact's decision, and under the base config


class _Deciding:
    """Each contact's ask and its decisions, in order. Where the source can (a large JSON Lines file), the workers
    that read the contacts decide them too and send back each contact without its events; `here` keeps the
    deciding in this process, where the stages written (read from the store a page at a time) or the account
    roll-up need each contact and its events here."""

    def __init__(
        self,
        inputs: Iterable[tuple[Contact, list[Event]]] | Mapped,
        ask: Callable[[Contact, Sequence[Event]], Ask],
        decide: Callable[[Ask], Made],
        *,
        here: bool,
    ) -> None:
        self.inputs, self.ask, self.decide, self.here = inputs, ask, decide, here
        self._pool = Parallel(decide)

    def __iter__(self) -> Generator[tuple[Ask, Made], None, None]:
        if isinstance(self.inputs, Mapped) and not self.here:
            for _, (contact, outcome) in self.inputs.results(self._read):
                yield (contact, (), contact.properties, None), outcome
            return
        contacts = self.inputs.inputs() if isinstance(self.inputs, Mapped) else self.inputs
        yield from self._pool.map(self.ask(bare, events) for bare, events in contacts)

    def _read(self, bare: Contact, events: list[Event]) -> tuple[Contact, Made]:
        ask = self.ask(bare, events)
        return ask[0], self.decide(ask)

    def __enter__(self) -> Iterator[tuple[Ask, Made]]:
        self._iterating = self.__iter__()
        return self._iterating

    def __exit__(self, *exc: object) -> None:
        self._iterating.close()  # ends a pool of reading workers too
        self._pool.close()


def _decider(rules: RuleSet, base: RuleSet | None, now_ms: int) -> Callable[[Ask], Made]:
    """A contact's decision under `rules` and under the base config (None without one)."""
    new = decider(rules, now_ms)
    old = decider(base, now_ms) if base is not None else None

    def work(ask: Ask) -> Made:
        return new(ask), old(ask) if old is not None else None

    return work


class _Batches:
    """The worker's write calls: one property update and one run of backward stage moves per page of contacts."""

    def __init__(self) -> None:
        self.position = self.update_calls = self.stage_batches = 0
        self.updates = self.moves = False

    def next_contact(self) -> None:
        if self.position and self.position % BATCH == 0:
            self._close()
        self.position += 1

    def note(self, decision: Decision) -> None:
        self.updates |= decision.plan.update is not None
        self.moves |= decision.stage_move is not None

    def calls(self) -> dict[str, int]:
        self._close()
        return {"update_batches": self.update_calls, "stage_move_calls": self.stage_batches * STAGE_MOVE_CALLS}

    def _close(self) -> None:
        self.update_calls += self.updates
        self.stage_batches += self.moves
        self.updates = self.moves = False


def _count(
    report: PlanReport, decision: Decision, before: Holding, accepts: Acceptance | None, *, ownership_known: bool
) -> None:
    """Adds one scored contact to the report's counts, transitions, crossings and changed contacts."""
    result, contact = decision.result, decision.contact
    report.counts["excluded"] += result.excluded
    report.counts["holdout"] += result.holdout
    if result.stage_held is not None:
        report.counts["stages_held_back"] += 1
        why = result.stage_held if ownership_known else unknown_owner(result.current_stage)
        report.held_back.append(HeldBack(contact.id, contact.email, result.current_stage, result.score, why))
    writes, move, after = _shown_writes(decision), decision.stage_move, decision.after
    report.counts["promotions"] += bool(writes.get(LIFECYCLE_STAGE))
    report.counts["demotions"] += move is not None
    if not writes and move is None and before == after:
        report.counts["unchanged"] += 1
        return
    update = decision.plan.update
    rejected = accepts.reason(update.properties if update is not None else {}, move) if accepts else ""
    if rejected:
        report.counts["rejected"] += 1  # HubSpot would refuse the batch entry: not a success
    else:
        report.counts["written"] += bool(writes or move)
        report.interest_writes.update(name for name in writes if name in report.interest_properties)
    report.counts["score_changed"] += before.score != after.score
    report.counts["grade_changed"] += before.grade != after.grade
    report.counts["stage_changed"] += before.stage != after.stage
    if before.stage != after.stage:
        report.transitions[(before.stage, after.stage)] += 1
    _cross(report.crossings, result.model, before, after)
    diff = ContactDiff(
        contact.id, contact.email, before, after, writes, move, decision.reasons, _note(result), rejected
    )
    report.diffs.append(diff)


def _shown_writes(decision: Decision) -> dict[str, str]:
    """The property values a run writes, its scored_at timestamp left out."""
    update, model = decision.plan.update, decision.model
    if update is None or model is None:
        return {}
    return {k: v for k, v in update.properties.items() if k != model.properties.scored_at}


def _cross(crossings: Iterable[Crossing], model: str | None, before: Holding, after: Holding) -> None:
    for crossing in crossings:
        if crossing.model == model:
            was, now = _at_or_above(before.score, crossing.min_score), _at_or_above(after.score, crossing.min_score)
            crossing.up += now and not was
            crossing.down += was and not now


def _note(result: ScoreResult) -> str:
    if result.excluded:
        return f"excluded: {result.exclusion_reason}"
    return "holdout: scored, never written" if result.holdout else result.stage_reason


def _at_or_above(score: float | None, threshold: float) -> bool:
    """True when at or above the threshold (never scored counts as below)."""
    return score is not None and score >= threshold


def properties_setup_calls(rules: RuleSet) -> int:
    """A process's first run checks the property group and each owned property once."""
    _, specs = owned_properties(rules)
    return 1 + len(specs)


def print_plan(report: PlanReport, console: Console, top: int, *, live: bool) -> None:
    _print_summary(report, console)
    _print_held_back(report, console, top)
    _print_rejected(report, console)
    _print_transitions(report, console)
    _print_crossings(report, console)
    _print_calls(report, console, live=live)
    _print_interests(report, console)
    _print_top(report, console, top)
    if report.accounts is not None:
        _print_accounts(report.accounts, console, top)


def _print_summary(report: PlanReport, console: Console) -> None:
    c = report.counts
    console.print(
        f"[bold]plan[/bold] for {report.source}: rule-set version {report.version} compared with {report.base}, "
        f"as of {iso_ms(report.now_ms)}. Nothing was written."
    )
    console.print(
        f"{report.contacts} contacts: {c['score_changed']} change score, {c['grade_changed']} change grade, "
        f"{c['stage_changed']} change stage; {c['written']} would be written, {c['unchanged']} would not"
        + (f", {c['skipped']} could not be scored" if c["skipped"] else "")
        # The holdout is drawn from every contact, excluded ones too: the two counts overlap, so they are not a
        # breakdown of the contacts left unwritten.
        + f". Of all {report.contacts}: {c['excluded']} excluded, {c['holdout']} in the holdout (a contact can be "
        "both)."
    )
    console.print(
        f"Lifecycle stages: {c['promotions']} promotions, {c['demotions']} demotions, "
        f"{c['stages_held_back']} demotions held back (stages leadsync did not set are left as people set them)."
    )
    if report.ownership:
        console.print(f"Note: {report.ownership}.")


def _print_rejected(report: PlanReport, console: Console) -> None:
    if not report.counts["rejected"]:
        return
    why = Counter(d.rejected for d in report.diffs if d.rejected)
    console.print(f"[bold red]{report.counts['rejected']} contacts' writes would be rejected by HubSpot[/bold red]:")
    for reason, n in why.most_common(5):
        console.print(f"  {n}: {reason}")


def _print_transitions(report: PlanReport, console: Console) -> None:
    if not report.transitions:
        console.print("No stage changes.")
        return
    stages_from = sorted({a for a, _ in report.transitions})
    stages_to = sorted({b for _, b in report.transitions})
    matrix = Table(title="Stage transitions (rows: before, columns: after)", header_style="bold")
    matrix.add_column("before \\ after")
    for stage in stages_to:
        matrix.add_column(stage or "(none)", justify="right")
    for a in stages_from:
        matrix.add_row(a or "(none)", *(str(report.transitions.get((a, b), "")) for b in stages_to))
    console.print(matrix)


def _print_crossings(report: PlanReport, console: Console) -> None:
    if not report.crossings:
        return
    crossings = Table(title="Threshold crossings", header_style="bold")
    for name in ("model", "stage", "min score", "cross up", "cross down"):
        crossings.add_column(name, justify="right" if name.startswith(("cross", "min")) else "left")
    for x in report.crossings:
        crossings.add_row(x.model, x.stage, f"{x.min_score:g}", str(x.up), str(x.down))
    console.print(crossings)


def _print_calls(report: PlanReport, console: Console, *, live: bool) -> None:
    calls = report.calls
    reads = f"{calls.get('reads', 0)} reads (as this plan made)" if live else "reads as for a full pull"
    console.print(
        f"API calls a first full sync (backfill) would make, about: {reads}, "
        f"{calls.get('property_checks', 0)} property checks, "
        f"{count(calls.get('update_batches', 0), 'batch update')}, "
        f"{count(calls.get('stage_move_calls', 0), 'call')} for backward stage moves"
        + (
            f", {count(calls['company_update_batches'], 'company batch update')}"
            if "company_update_batches" in calls
            else ""
        )
        + (f"; {calls['total']} in all" if live else "")
    )


def _print_top(report: PlanReport, console: Console, top: int) -> None:
    changed = report.top(top)
    if not changed:
        console.print("No contact's score, grade or stage changes.")
        return
    table = Table(title=f"Top {len(changed)} changed contacts", header_style="bold")
    for name in ("contact", "email", "score", "grade", "stage", "why"):
        table.add_column(name, overflow="fold")
    for d in changed:
        table.add_row(
            d.contact_id,
            d.email,
            f"{show(d.before.score)} -> {show(d.after.score)}",
            f"{d.before.grade or '-'} -> {d.after.grade or '-'}",
            f"{d.before.stage or '-'} -> {d.after.stage or '-'}" if d.before.stage != d.after.stage else d.after.stage,
            _short(d.reasons if not d.note.startswith(("excluded", "holdout")) else d.note, 90),
        )
    console.print(table)


def _print_accounts(plan: CompanyPlan, console: Console, top: int) -> None:
    c = plan.counts
    console.print(
        f"{count(plan.companies, 'company', 'companies')} (account scores): {c['score_changed']} change score, "
        f"{c['grade_changed']} change grade; {c['written']} would be written in "
        f"{count(plan.update_batches, 'batch update')} of {BATCH}, "
        f"{c['unchanged']} would not."
    )
    changed = plan.top(top)
    if not changed:
        console.print("No company's account score or grade changes.")
        return
    table = Table(title=f"Top {len(changed)} changed companies", header_style="bold")
    for name in ("company", "name", "score", "grade", "why"):
        table.add_column(name, overflow="fold")
    for d in changed:
        table.add_row(
            d.company_id,
            d.name,
            f"{show(d.before.score)} -> {show(d.after.score)}",
            f"{d.before.grade or '-'} -> {d.after.grade or '-'}",
            _short(d.reasons, 90),
        )
    console.print(table)


def _print_interests(report: PlanReport, console: Console) -> None:
    if not report.interest_properties:
        return
    console.print("Product-interest scores (never a stage): contacts written per property")
    for row in report.interest_json():
        console.print(f"  {row['interest']}: {row['property']} {row['contacts']}")


def _print_held_back(report: PlanReport, console: Console, top: int) -> None:
    if not report.held_back or not top:
        return
    shown = report.held_back.first(top)
    table = Table(title=f"Demotions held back ({len(shown)} of {len(report.held_back)})", header_style="bold")
    for name in ("contact", "email", "stage", "score", "why"):
        table.add_column(name, overflow="fold")
    for h in shown:
        table.add_row(h.contact_id, h.email, h.stage, str(h.score), h.reason)
    console.print(table)


def _short(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: text.rfind(";", 0, width - 1) + 1 or width - 1].rstrip(";") + " ..."
