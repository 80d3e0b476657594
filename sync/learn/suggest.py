"""`leadsync suggest`: the model's coefficients as point values in the rule language, for a person to review.

A coefficient is log-odds per unit of its feature; `points_per_logit` turns it into points (by default so that
the model's strongest rule hit is worth what that rule gives now, which keeps the suggestion on the portal's
own scale). Features the rule language can say become new rules (`learned-...`) in the fit group (properties)
or the engagement group (forms, pages, events); the rules the file already has are listed with the points the
model would give them. The suggestion is then back-tested against the current rules on the same contacts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import yaml

from sync.config.model_file import ModelFile
from sync.core.likelihood import EVENTS, FORM, NUMBER, PAGE, PROPERTY, RULE, Feature
from sync.core.rules import ConditionRule, EventRule, MapRule, Rule, RuleSetSpec
from sync.reports.backtest import Backtest

DEFAULT_POINTS_PER_LOGIT = 10.0
DEFAULT_MIN_POINTS = 3
DEFAULT_LIMIT = 12
MAX_POINTS = 100
FIT, ENGAGEMENT = "fit", "engagement"


@dataclass
class Suggestion:
    """New rules per group, and what the model thinks of the rules the file has (id -> (now, suggested))."""

    points_per_logit: float
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {FIT: [], ENGAGEMENT: []})
    existing: list[tuple[str, float, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rules.values())


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")[:60] or "feature"


def rule_for(feature: Feature, points: int) -> tuple[str, dict[str, Any]] | None:
    """(group, rule) saying the feature in the rule language; None for a feature it cannot say."""
    if feature.kind == PROPERTY:
        rule = {"property": feature.name, "equals": feature.value}
        return FIT, {"id": f"learned-{slug(feature.name)}-{slug(feature.value)}", **rule, "points": points}
    if feature.kind == NUMBER:
        band: dict[str, Any] = {}
        if feature.low is not None:
            band["gte"] = _plain(feature.low)
        if feature.high is not None:
            band["lt"] = _plain(feature.high)
        rid = f"learned-{slug(feature.name)}-{slug(f'{feature.low or 0:g} {feature.high or 0:g}')}"
        return FIT, {"id": rid, "property": feature.name, "bands": [{**band, "points": points}]}
    if feature.kind == FORM:
        said = {"event": "form_submission", "form_name_contains": [feature.name]}
        return ENGAGEMENT, {"id": f"learned-form-{slug(feature.name)}", **said, "points": points}
    if feature.kind == PAGE:
        said = {"event": "form_submission", "page_url_contains": [feature.name]}
        return ENGAGEMENT, {"id": f"learned-page-{slug(feature.name)}", **said, "points": points}
    if feature.kind == EVENTS:
        # The model counts log(1 + n); one event (log 2) is the step a per-contact rule can say.
        rid = f"learned-{slug(feature.name)}-{feature.days}d"
        return ENGAGEMENT, {"id": rid, "event": feature.name, "within_days": feature.days, "points": points}
    return None


def _plain(number: float) -> int | float:
    return int(number) if number == int(number) else number


def rule_points(spec: RuleSetSpec) -> dict[str, float]:
    """Each rule's points now, by the `rule` feature names it gives (map values and bands by their label)."""
    out: dict[str, float] = {}
    for model in spec.models:
        for rule in (*model.fit.rules, *model.engagement.rules):
            _points_of(rule, out)
    return out


def _points_of(rule: Rule, out: dict[str, float]) -> None:
    if isinstance(rule, ConditionRule | EventRule):
        out.setdefault(rule.id, rule.points / 100)
    elif isinstance(rule, MapRule):
        for value, cents in rule.points.items():
            out.setdefault(f"{rule.id}={rule.labels.get(value, value)}", cents / 100)


def default_scale(model: ModelFile, current: dict[str, float]) -> float:
    """Points per unit of log-odds: the strongest rule hit the model weighs, worth what it gives now."""
    for entry in sorted(model.features, key=lambda f: -abs(f.coefficient)):
        now = current.get(entry.name) if entry.kind == RULE else None
        if now and entry.coefficient and (now > 0) == (entry.coefficient > 0):
            return abs(now / entry.coefficient)
    return DEFAULT_POINTS_PER_LOGIT


def suggest(
    model: ModelFile,
    spec: RuleSetSpec,
    *,
    points_per_logit: float | None = None,
    min_points: int = DEFAULT_MIN_POINTS,
    limit: int = DEFAULT_LIMIT,
) -> Suggestion:
    current = rule_points(spec)
    scale = points_per_logit if points_per_logit is not None else default_scale(model, current)
    out = Suggestion(scale)
    taken: set[str] = set()
    ranked = sorted(model.features, key=lambda f: (-abs(f.coefficient * f.scale), f.kind, f.name))
    for entry in ranked:
        feature = entry.feature()
        raw = entry.coefficient * scale * (math.log(2) if feature.kind == EVENTS else 1.0)
        points = max(-MAX_POINTS, min(MAX_POINTS, round(raw)))  # a rare feature's huge weight is noise
        if feature.kind == RULE:
            if feature.name in current:
                out.existing.append((feature.name, current[feature.name], points))
            continue
        if abs(points) < min_points or out.count >= limit:
            continue
        said = rule_for(feature, points)
        if said is None or said[1]["id"] in taken:
            continue
        taken.add(said[1]["id"])
        out.rules[said[0]].append(said[1])
    return out


def patch_text(suggestion: Suggestion, model: ModelFile, config: str) -> str:
    """The suggestion as a YAML patch to `config`: rules to add under each model's groups, to review first."""
    training = model.training
    head = [
        f"# leadsync suggest: point values from model {model.version} for {config}",
        f"# (trained as of {training.get('as_of')}, outcome {training.get('outcome')} within "
        f"{training.get('horizon_days')} days, rule set {model.ruleset_version});",
        f"# {suggestion.points_per_logit:.3g} points per unit of log-odds. Review each rule, then add it to the",
        "# model's groups (under model:, or each of models:) in the portal file.",
    ]
    body: dict[str, Any] = {}
    for group in (FIT, ENGAGEMENT):
        if suggestion.rules[group]:
            body[group] = {"rules": suggestion.rules[group]}
    text = yaml.safe_dump({"model": body}, sort_keys=False, allow_unicode=True, width=110) if body else ""
    tail = ["# The file's own rules, as the model weighs them (points now -> the model's):"]
    tail += [f"#   {name}: {now:+g} -> {points:+d}" for name, now, points in suggestion.existing]
    if not body:
        tail.insert(0, "# No feature outside the current rules is worth a rule of its own.")
    return "\n".join([*head, text.rstrip("\n"), *tail]).strip("\n") + "\n"


def patched(data: dict[str, Any], suggestion: Suggestion) -> dict[str, Any]:
    """The portal file's data with the suggested rules added to every model's groups."""
    out = deepcopy(data)
    models = [out["model"]] if isinstance(out.get("model"), dict) else list(out.get("models") or [])
    for model in models:
        for group in (FIT, ENGAGEMENT):
            if suggestion.rules[group]:
                section = model.setdefault(group, {})
                section.setdefault("rules", []).extend(deepcopy(suggestion.rules[group]))
    return out


def score_auc(bt: Backtest) -> float | None:
    """ROC AUC of the score among a backtest's scored contacts (ties count half)."""
    pos: Counter[int] = Counter()
    neg: Counter[int] = Counter()
    for scored, n in bt.scored.items():
        (pos if scored.converted else neg)[scored.score] += n
    total_pos, total_neg = sum(pos.values()), sum(neg.values())
    if not total_pos or not total_neg:
        return None
    below = 0
    wins = 0.0
    for score in sorted(set(pos) | set(neg)):
        wins += pos[score] * (below + neg[score] / 2)
        below += neg[score]
    return wins / (total_pos * total_neg)


def comparison(current: Backtest, suggested: Backtest) -> dict[str, Any]:
    """The two backtests side by side: AUC of the score, and each threshold's precision, recall and lift."""

    def thresholds(bt: Backtest) -> Iterable[dict[str, Any]]:
        for t in bt.thresholds:
            yield {
                "model": t.model,
                "stage": t.stage,
                "min_score": t.min_score,
                "qualified": t.qualified.contacts,
                "precision": _round(t.precision),
                "recall": _round(t.recall),
                "lift": _round(t.lift),
            }

    return {
        "contacts": current.overall.contacts,
        "base_rate": _round(current.base_rate),
        "current": {"score_auc": _round(score_auc(current)), "thresholds": list(thresholds(current))},
        "suggested": {"score_auc": _round(score_auc(suggested)), "thresholds": list(thresholds(suggested))},
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
