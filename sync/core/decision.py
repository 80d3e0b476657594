"""decide(): score a contact, choose its model, plan the minimal writes.

The one path from a contact to what HubSpot should hold: the worker writes
what it decides, `leadsync plan` counts it, `leadsync explain` shows it. Each
caller supplies what HubSpot holds (`current`): the worker overlays the values
it wrote itself and HubSpot may not show yet, the reports pass the contact's
own properties.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sync.core.conditions import parse_number
from sync.core.likelihood import Likelihood, Predictive, likelihood
from sync.core.model import Contact, Event, PropertyUpdate, ScoreResult
from sync.core.planning import ContactPlan, plan_contact, same
from sync.core.rules import ModelSpec, OutputProperties, RuleSet
from sync.core.scoring import reasons_text, score_at
from sync.core.wire import LIFECYCLE_STAGE


class Holding:
    """Score, grade and lifecycle stage a contact has in HubSpot: now, or after a decision's writes."""

    def __init__(self, score: float | None, grade: str | None, stage: str) -> None:
        self.score: Final = score
        self.grade: Final = grade
        self.stage: Final = stage

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Holding)
            and self.score == other.score
            and self.grade == other.grade
            and self.stage == other.stage
        )

    def __hash__(self) -> int:
        return hash((self.score, self.grade, self.stage))

    def __repr__(self) -> str:
        return f"Holding(score={self.score!r}, grade={self.grade!r}, stage={self.stage!r})"


class Decision:
    """One contact's score, its model (None: no segment matched), the writes and what HubSpot holds around them.

    `before` and `after` are computed when asked: the worker needs them only for a contact it writes. So is
    `reasons` where the writes did not need it (holdout, excluded).
    """

    def __init__(
        self,
        contact: Contact,
        result: ScoreResult,
        model: ModelSpec | None,
        plan: ContactPlan,
        current: Mapping[str, str],
        reasons: str | None,
        shown: OutputProperties,
        likelihood: Likelihood | None = None,
    ) -> None:
        self.contact: Final = contact
        self.result: Final = result
        self.model: Final = model
        self.plan: Final = plan
        self.current: Final = current
        self._reasons = reasons
        self._shown: Final = shown  # whose score and grade properties `before` and `after` read
        self.likelihood: Final = likelihood  # with a `predictive:` section, for a contact whose values are written

    @property
    def reasons(self) -> str:
        """The result's reasons text, as written to HubSpot with the score."""
        if self._reasons is None:
            self._reasons = reasons_text(self.result)
        return self._reasons

    @property
    def stage_move(self) -> str | None:
        """The stage of a backward move (sent as clear, then set), or None."""
        change = self.plan.stage_change
        return change.stage if change is not None else None

    @property
    def planned_stage(self) -> str | None:
        """The stage the writes move the contact to, forward or backward; None when they leave it."""
        change = self.plan.stage_change
        if change is not None:
            return change.stage
        update = self.plan.update
        return update.properties.get(LIFECYCLE_STAGE) if update is not None else None

    @property
    def before(self) -> Holding:
        """What HubSpot holds now (`current`, and the contact's stage)."""
        props = self._shown
        return Holding(
            parse_number(self.current.get(props.score)),
            self.current.get(props.grade) or None,
            self.contact.lifecycle_stage,
        )

    @property
    def after(self) -> Holding:
        """What HubSpot would hold once the writes are made."""
        props = self._shown
        update = self.plan.update
        written: Mapping[str, str] = update.properties if update is not None else {}
        score = written[props.score] if props.score in written else self.current.get(props.score)
        grade = written[props.grade] if props.grade in written else self.current.get(props.grade)
        stage = self.planned_stage
        return Holding(parse_number(score), grade or None, self.contact.lifecycle_stage if stage is None else stage)


def model_named(rules: RuleSet, name: str | None) -> ModelSpec | None:
    """The rule set's model of that name (a result names the model that scored it; None when none did)."""
    if name is None:
        return None
    for model in rules.spec.models:
        if model.name == name:
            return model
    return None


def decide(
    contact: Contact,
    events: Iterable[Event],
    rules: RuleSet,
    now_ms: int,
    current: Mapping[str, str],
    *,
    written_stage: str | None = None,
) -> Decision:
    """Score `contact` as of `now_ms` and plan the writes that bring HubSpot from `current` to the result.

    `current` is what HubSpot holds for the contact's properties; `written_stage` the stage leadsync last
    wrote for it (None: none known; see `score_at`). `scored_at` is written as `now_ms`, with a real change only.
    """
    predictive = rules.spec.predictive
    if predictive is not None:
        events = list(events)  # read twice: by the score and by the likelihood
    result = score_at(contact, events, rules, now_ms, written_stage=written_stage)
    model = model_named(rules, result.model)
    if model is None:
        # No model, nothing to write; what HubSpot holds is read through the first model's properties.
        return Decision(contact, result, None, ContactPlan(None, None), current, None, rules.spec.models[0].properties)
    props = model.properties
    # Only a scored contact's values carry the reasons: computed once for the plan and the caller, and only then.
    reasons = None if result.holdout or result.excluded else reasons_text(result)
    plan = plan_contact(
        result,
        contact,
        props,
        rules.spec.exclusion_action,
        now_ms,
        current,
        reasons=reasons,
        interests=rules.spec.interests,
    )
    if predictive is None or result.holdout or result.excluded:
        return Decision(contact, result, model, plan, current, reasons, props)
    predicted = likelihood(predictive.model, contact, events, now_ms, result.breakdown)
    plan = with_likelihood(plan, contact.id, predictive, predicted, current, props.scored_at, now_ms)
    return Decision(contact, result, model, plan, current, reasons, props, predicted)


def with_likelihood(
    plan: ContactPlan,
    contact_id: str,
    predictive: Predictive,
    predicted: Likelihood,
    current: Mapping[str, str],
    scored_at: str,
    now_ms: int,
) -> ContactPlan:
    """The plan with the likelihood and its factors added where they differ from what HubSpot holds (diff-only,
    as the score's values: `scored_at` moves only with a real change)."""
    wanted = {
        predictive.likelihood_property: str(predicted.value),
        predictive.factors_property: predicted.factors(),
    }
    changed = {name: value for name, value in wanted.items() if not same(current.get(name), value)}
    if not changed:
        return plan
    merged = dict(plan.update.properties) if plan.update is not None else {}
    merged.update(changed)
    merged[scored_at] = str(now_ms)
    return ContactPlan(PropertyUpdate(contact_id, merged), plan.stage_change)
