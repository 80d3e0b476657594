"""The learned likelihood: a trained model's features read from a contact as of `now`, and the probability.

The model is a logistic regression (docs/SCORING.md section 7): a probability that the contact converts,
from an intercept and one coefficient per feature, so every feature's part in it is that feature's value
times its coefficient (`Contribution`). Training (sync/learn) reads its features with these same functions,
so a model applies exactly the features it was trained on.

A feature is one of:
- `rule`: one of the rule set's own hits (a rule id; a map rule's `industry=ENERGY`; a band's `size >=100`)
- `property`: a property holds a value (compared case-insensitively)
- `number`: a number property falls in a bin [low, high)
- `events`: how many events of one type in the last `days` days, as log(1 + count)
- `form`: a submission of the form with that name; `page`: a form submitted on that page (path, no query)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import ClassVar, Final

from sync.core.conditions import parse_number
from sync.core.model import (
    EMAIL_BOUNCE,
    EMAIL_CLICK,
    EMAIL_OPEN,
    EMAIL_SPAM_REPORT,
    EMAIL_UNSUBSCRIBE,
    FORM_SUBMISSION,
    Contact,
    Event,
    FormSubmission,
    RuleHit,
    _Value,
)

RULE = "rule"
PROPERTY = "property"
NUMBER = "number"
EVENTS = "events"
FORM = "form"
PAGE = "page"
FEATURE_KINDS: frozenset[str] = frozenset({RULE, PROPERTY, NUMBER, EVENTS, FORM, PAGE})

DAY_MS = 86_400_000
# The bins of a number property: the same for every property, so training needs no first pass to find them.
NUMBER_EDGES: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
# The windows of the event counts, in days, and the events counted: what the contact did (not what was sent).
EVENT_WINDOWS: tuple[int, ...] = (30, 90, 365)
COUNTED_EVENTS: frozenset[str] = frozenset(
    {FORM_SUBMISSION, EMAIL_OPEN, EMAIL_CLICK, EMAIL_BOUNCE, EMAIL_UNSUBSCRIBE, EMAIL_SPAM_REPORT}
)
# A property value longer than this is free text (a comment, a URL with a query), not a category.
MAX_CATEGORY_LENGTH = 60
_ADJUSTMENTS = frozenset({"cap", "rounding", "clamp"})


class Feature(_Value):
    """One input of the model; `key` names it uniquely, `label` is its short form in the written factors."""

    _fields: ClassVar[tuple[str, ...]] = ("kind", "name", "value", "low", "high", "days")

    def __init__(
        self,
        kind: str,
        name: str,
        value: str = "",
        low: float | None = None,
        high: float | None = None,
        days: int = 0,
    ) -> None:
        self.kind: Final = kind
        self.name: Final = name
        self.value: Final = value
        self.low: Final = low
        self.high: Final = high
        self.days: Final = days

    @property
    def key(self) -> str:
        if self.kind == PROPERTY:
            return f"property:{self.name}={self.value.casefold()}"
        if self.kind == NUMBER:
            return f"number:{self.name}:{_bin_text(self.low, self.high)}"
        if self.kind == EVENTS:
            return f"events:{self.name}:{self.days}d"
        return f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        if self.kind == RULE:
            return self.name
        if self.kind == PROPERTY:
            return f"{self.name}={self.value}"
        if self.kind == NUMBER:
            return f"{self.name} {_bin_text(self.low, self.high)}"
        if self.kind == EVENTS:
            return f"{self.name} {self.days}d"
        return f"{self.kind}:{self.name}"

    @property
    def property_name(self) -> str | None:
        """The contact property this feature reads, if any."""
        return self.name if self.kind in (PROPERTY, NUMBER) else None


def _bin_text(low: float | None, high: float | None) -> str:
    lo = "" if low is None else f"{low:g}"
    hi = "" if high is None else f"{high:g}"
    return f"{lo}-{hi}"


class LikelihoodModel(_Value):
    """A trained model as the core applies it: features, their coefficients (per unit of value) and intercept.

    `version` is the model file's own hash; `ruleset_version` the rule set it was trained with."""

    _fields: ClassVar[tuple[str, ...]] = ("version", "features", "coefficients", "intercept", "ruleset_version")

    def __init__(
        self,
        version: str,
        features: tuple[Feature, ...],
        coefficients: tuple[float, ...],
        intercept: float,
        ruleset_version: str = "",
    ) -> None:
        if len(features) != len(coefficients):
            raise ValueError(f"{len(features)} features but {len(coefficients)} coefficients")
        self.version: Final = version
        self.features: Final = features
        self.coefficients: Final = coefficients
        self.intercept: Final = intercept
        self.ruleset_version: Final = ruleset_version

    @property
    def properties_read(self) -> frozenset[str]:
        return frozenset(p for p in (f.property_name for f in self.features) if p is not None)

    @property
    def event_kinds(self) -> frozenset[str]:
        kinds = {f.name for f in self.features if f.kind == EVENTS}
        if any(f.kind in (FORM, PAGE) for f in self.features):
            kinds.add(FORM_SUBMISSION)
        return frozenset(kinds)

    @property
    def forms_read(self) -> frozenset[str]:
        return frozenset(f.name for f in self.features if f.kind == FORM)


class Predictive(_Value):
    """A portal's `predictive:` section: the model it applies and the two properties it writes."""

    _fields: ClassVar[tuple[str, ...]] = ("model", "likelihood_property", "factors_property", "path")

    def __init__(self, model: LikelihoodModel, likelihood_property: str, factors_property: str, path: str = "") -> None:
        self.model: Final = model
        self.likelihood_property: Final = likelihood_property
        self.factors_property: Final = factors_property
        self.path: Final = path  # the model file, as the portal file names it


class Contribution(_Value):
    """One feature's part in a probability: its value for the contact, times its coefficient (log-odds)."""

    _fields: ClassVar[tuple[str, ...]] = ("feature", "value", "coefficient", "contribution")

    def __init__(self, feature: Feature, value: float, coefficient: float) -> None:
        self.feature: Final = feature
        self.value: Final = value
        self.coefficient: Final = coefficient
        self.contribution: Final = value * coefficient


class Likelihood(_Value):
    """The probability that the contact converts, its 0-100 value, and every feature's contribution."""

    _fields: ClassVar[tuple[str, ...]] = ("probability", "intercept", "contributions", "model_version")

    def __init__(
        self, probability: float, intercept: float, contributions: tuple[Contribution, ...], model_version: str
    ) -> None:
        self.probability: Final = probability
        self.intercept: Final = intercept
        self.contributions: Final = contributions
        self.model_version: Final = model_version

    @property
    def value(self) -> int:
        """The probability as a whole percentage, 0-100 (half away from zero)."""
        return math.floor(self.probability * 100 + 0.5)  # a probability is never negative

    def factors(self, top: int = 5, limit: int = 500) -> str:
        """The short text written to HubSpot, the `top` largest contributions first: '+0.9 form:Pricing;
        -0.6 free-mail'. Contributions are in log-odds with one decimal; one that rounds to 0.0 is left out."""
        shown = [c for c in self.contributions if abs(c.contribution) >= 0.05]
        shown.sort(key=lambda c: -abs(c.contribution))  # stable: equal sizes keep the model's order
        parts: list[str] = []
        length = 0
        for c in shown[:top]:
            part = f"{c.contribution:+.1f} {c.feature.label}"
            added = len(part) + (2 if parts else 0)
            if length + added > limit:
                break
            parts.append(part)
            length += added
        return "; ".join(parts)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def likelihood(
    model: LikelihoodModel, contact: Contact, events: Iterable[Event], now_ms: int, breakdown: Sequence[RuleHit]
) -> Likelihood:
    """Apply `model` to a contact as of `now_ms`; `breakdown` is the contact's score breakdown at `now_ms`."""
    values = feature_values(model.features, contact, events, now_ms, breakdown)
    contributions = tuple(
        Contribution(f, v, c) for f, v, c in zip(model.features, values, model.coefficients, strict=True)
    )
    z = model.intercept + sum(c.contribution for c in contributions)
    return Likelihood(sigmoid(z), model.intercept, contributions, model.version)


def feature_values(
    features: Sequence[Feature], contact: Contact, events: Iterable[Event], now_ms: int, breakdown: Sequence[RuleHit]
) -> list[float]:
    """Each feature's value for the contact as of `now_ms` (events after it do not count)."""
    facts = _Facts(contact, events, now_ms, breakdown)
    return [facts.value(f) for f in features]


def observe(
    contact: Contact,
    events: Iterable[Event],
    now_ms: int,
    breakdown: Sequence[RuleHit],
    properties: Collection[str],
    *,
    pages: bool = False,
) -> list[tuple[Feature, float]]:
    """Every candidate feature a contact has as of `now_ms` with its (non-zero) value: what training counts.

    `properties` are the properties that may become features (the caller leaves out the outcome and
    leadsync's own outputs). `pages`: the pages forms were sent from too (a form is on one page mostly, so
    they are off by default: two features for one fact only split its weight). Each value here is the one
    `feature_values` gives for the same feature."""
    facts = _Facts(contact, events, now_ms, breakdown)
    found: list[tuple[Feature, float]] = [(Feature(RULE, key), 1.0) for key in sorted(facts.rules)]
    said = {key.casefold() for key in facts.rules}  # a map rule named for its property says `industry=X` already
    for name in sorted(properties):
        raw = (contact.properties.get(name) or "").strip()
        if not raw:
            continue
        number = parse_number(raw)
        if number is not None:
            low, high = number_bin(number)
            found.append((Feature(NUMBER, name, "", low, high), 1.0))
        elif _category(name, raw, said):
            found.append((Feature(PROPERTY, name, raw), 1.0))
    for kind in sorted(k for k in facts.times if k in COUNTED_EVENTS):
        for days in EVENT_WINDOWS:
            value = facts.count_value(kind, days)
            if value:
                found.append((Feature(EVENTS, kind, "", None, None, days), value))
    found.extend((Feature(FORM, name), 1.0) for name in sorted(facts.forms))
    if pages:
        found.extend((Feature(PAGE, path), 1.0) for path in sorted(facts.pages))
    return found


def number_bin(number: float) -> tuple[float | None, float | None]:
    """The bin [low, high) of NUMBER_EDGES holding `number` (None: open below or above)."""
    low: float | None = None
    for edge in NUMBER_EDGES:
        if number < edge:
            return low, edge
        low = edge
    return low, None


def rule_feature_key(hit: RuleHit) -> str | None:
    """The `rule` feature a breakdown line gives, or None (no points, or a cap, rounding or clamp line)."""
    if not hit.matched or not hit.cents or hit.kind in _ADJUSTMENTS:
        return None
    if hit.kind in ("map", "decay") and hit.label:
        return hit.label
    if hit.kind == "bands":
        _, _, band = hit.detail.partition(" ")
        return f"{hit.rule} {band}" if band else hit.rule
    return hit.rule


def page_path(url: str) -> str:
    """'https://www.acme.example/pricing?utm=x' -> '/pricing': a page without its site and query."""
    rest = url.split("?", 1)[0].split("#", 1)[0]
    if "://" in rest:
        rest = rest.split("://", 1)[1]
        slash = rest.find("/")
        rest = rest[slash:] if slash >= 0 else "/"
    return rest.rstrip("/") or "/"


def _category(name: str, raw: str, said: set[str]) -> bool:
    """Whether a value is a category worth a feature: short, not a date, not what a rule's hit says already."""
    return len(raw) <= MAX_CATEGORY_LENGTH and not _looks_like_a_date(raw) and f"{name}={raw}".casefold() not in said


def _looks_like_a_date(text: str) -> bool:
    return len(text) >= 10 and text[4:5] == "-" and text[7:8] == "-" and text[:4].isdigit()


class _Facts:
    """What the features of one contact read, gathered in one pass over its events."""

    def __init__(self, contact: Contact, events: Iterable[Event], now_ms: int, breakdown: Sequence[RuleHit]) -> None:
        self.props: Mapping[str, str] = contact.properties
        self.now_ms = now_ms
        self.rules: set[str] = set()
        for hit in breakdown:
            key = rule_feature_key(hit)
            if key is not None:
                self.rules.add(key)
        self.times: dict[str, list[int]] = {}
        self.forms: set[str] = set()
        self.pages: set[str] = set()
        for event in events:
            if event.at_ms > now_ms or event.filtered:
                continue
            self.times.setdefault(event.kind, []).append(event.at_ms)
            if isinstance(event, FormSubmission):
                if event.form_name:
                    self.forms.add(event.form_name)
                if event.page_url:
                    self.pages.add(page_path(event.page_url))

    def count_value(self, kind: str, days: int) -> float:
        since = self.now_ms - days * DAY_MS
        count = sum(1 for at in self.times.get(kind, ()) if at > since)
        return math.log1p(count)

    def value(self, feature: Feature) -> float:
        kind = feature.kind
        if kind == RULE:
            return 1.0 if feature.name in self.rules else 0.0
        if kind == EVENTS:
            return self.count_value(feature.name, feature.days)
        if kind == FORM:
            return 1.0 if feature.name in self.forms else 0.0
        if kind == PAGE:
            return 1.0 if feature.name in self.pages else 0.0
        raw = (self.props.get(feature.name) or "").strip()
        if kind == PROPERTY:
            return 1.0 if raw and raw.casefold() == feature.value.casefold() else 0.0
        if kind == NUMBER:
            number = parse_number(raw)
            if number is None:
                return 0.0
            return 1.0 if number_bin(number) == (feature.low, feature.high) else 0.0
        raise ValueError(f"unknown feature kind {kind!r}")
