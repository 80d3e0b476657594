"""The values that flow through the scoring core: plain, immutable, typed.

These are small classes with `Final` attributes rather than frozen dataclasses:
compiled with mypyc they are immutable at run time too and build about ten
times faster, which matters when a portal scores a million contacts. Each
compares, hashes and prints by its fields like a frozen dataclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Final, Literal

FORM_SUBMISSION = "form_submission"
EMAIL_SENT = "email_sent"
EMAIL_DELIVERED = "email_delivered"
EMAIL_OPEN = "email_open"
EMAIL_CLICK = "email_click"
EMAIL_BOUNCE = "email_bounce"
EMAIL_UNSUBSCRIBE = "email_unsubscribe"
EMAIL_SPAM_REPORT = "email_spam_report"
# Internal: an operator un-bounced the recipient. No rule scores it; the core drops the contact's bounces up to
# its time (README "What counts").
EMAIL_UNBOUNCE = "email_unbounce"

EMAIL_EVENT_TYPES: frozenset[str] = frozenset(
    {
        EMAIL_SENT,
        EMAIL_DELIVERED,
        EMAIL_OPEN,
        EMAIL_CLICK,
        EMAIL_BOUNCE,
        EMAIL_UNSUBSCRIBE,
        EMAIL_SPAM_REPORT,
    }
)
EVENT_TYPES: frozenset[str] = EMAIL_EVENT_TYPES | {FORM_SUBMISSION}

# What counts as engagement for inactivity decay unless a model says otherwise.
DEFAULT_DECAY_EVENTS: frozenset[str] = frozenset({FORM_SUBMISSION, EMAIL_OPEN, EMAIL_CLICK})

StageWrite = Literal["none", "set", "clear_then_set"]


class _Value:
    """Equality, hashing and repr by the fields a subclass lists in `_fields`."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"


class Contact(_Value):
    """A contact as the rules see it: its id and its properties (strings, as HubSpot sends them).

    `company_properties` are its primary company's properties, read by `company.<property>` in rules;
    None when it has no company (every such value is then missing) or no rule reads company data.
    """

    _fields: ClassVar[tuple[str, ...]] = (
        "id",
        "properties",
        "email",
        "created_at_ms",
        "lifecycle_stage",
        "list_ids",
        "company_properties",
    )

    def __init__(
        self,
        id: str,
        properties: Mapping[str, str],
        email: str = "",
        created_at_ms: int | None = None,
        lifecycle_stage: str = "",
        list_ids: frozenset[int] = frozenset(),
        company_properties: Mapping[str, str] | None = None,
    ) -> None:
        self.id: Final = id
        self.properties: Final = properties
        self.email: Final = email
        self.created_at_ms: Final = created_at_ms
        self.lifecycle_stage: Final = lifecycle_stage
        self.list_ids: Final = list_ids
        self.company_properties: Final = company_properties

    def __hash__(self) -> int:  # properties is a mapping: hash by identity fields only
        return hash(("Contact", self.id, self.email, self.created_at_ms, self.lifecycle_stage))


class FormSubmission(_Value):
    """One form submission; `event_id` is HubSpot's conversion id, or a key of form, time and email without one."""

    _fields: ClassVar[tuple[str, ...]] = ("event_id", "at_ms", "email", "form_id", "form_name", "page_url")

    def __init__(
        self, event_id: str, at_ms: int, email: str, form_id: str, form_name: str = "", page_url: str = ""
    ) -> None:
        self.event_id: Final = event_id
        self.at_ms: Final = at_ms
        self.email: Final = email
        self.form_id: Final = form_id
        self.form_name: Final = form_name
        self.page_url: Final = page_url
        self.kind: Final = FORM_SUBMISSION
        self.filtered: Final = False


class EmailEvent(_Value):
    """One marketing email event; `kind` is one of EMAIL_EVENT_TYPES or EMAIL_UNBOUNCE.

    `event_id` is HubSpot's event id and created time together (an id alone is not unique). For a bounce,
    `category` is HubSpot's bounce category and `soft_bounce` says it is not a hard one (README "What counts").
    """

    _fields: ClassVar[tuple[str, ...]] = (
        "event_id",
        "kind",
        "at_ms",
        "email",
        "campaign_id",
        "url",
        "filtered",
        "category",
        "soft_bounce",
    )

    def __init__(
        self,
        event_id: str,
        kind: str,
        at_ms: int,
        email: str,
        campaign_id: str = "",
        url: str = "",
        filtered: bool = False,
        category: str = "",
        soft_bounce: bool = False,
    ) -> None:
        self.event_id: Final = event_id
        self.kind: Final = kind
        self.at_ms: Final = at_ms
        self.email: Final = email
        self.campaign_id: Final = campaign_id
        self.url: Final = url
        self.filtered: Final = filtered
        self.category: Final = category
        self.soft_bounce: Final = soft_bounce


Event = FormSubmission | EmailEvent


def current_form_name(form_names: Mapping[str, str], form_id: str) -> str:
    """A submission's form name is its form's name in the portal's form list now; "" once the portal no
    longer lists the form (deleted or archived). Such a submission still counts as a form submission and
    `form_ids` still matches it, but `form_name_contains` cannot (README "Edge data")."""
    return form_names.get(form_id, "")


def with_current_form_names(events: Iterable[Event], form_names: Mapping[str, str]) -> list[Event]:
    """Stored events with each submission's form name as `current_form_name` gives it now."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, FormSubmission):
            name = current_form_name(form_names, event.form_id)
            if name != event.form_name:
                out.append(
                    FormSubmission(event.event_id, event.at_ms, event.email, event.form_id, name, event.page_url)
                )
                continue
        out.append(event)
    return out


class RuleHit(_Value):
    """One line of a score's breakdown.

    `cents` are hundredths of a point: the breakdown keeps two decimals and its
    entries (rules, caps, rounding, decay, clamp) add up exactly to the score.
    `label` is the short form used in the written reasons ("industry=ENERGY").
    """

    _fields: ClassVar[tuple[str, ...]] = ("rule", "group", "kind", "matched", "cents", "detail", "label")

    def __init__(self, rule: str, group: str, kind: str, matched: bool, cents: int, detail: str, label: str) -> None:
        self.rule: Final = rule
        self.group: Final = group
        self.kind: Final = kind
        self.matched: Final = matched
        self.cents: Final = cents
        self.detail: Final = detail
        self.label: Final = label

    @property
    def points(self) -> float:
        return self.cents / 100


class InterestResult(_Value):
    """One product-interest score of a contact (docs/SCORING.md section 7): a named extra score beside the lead
    score, with its own breakdown (its lines add up to `score`). It never moves a lifecycle stage.

    `score` is None when the contact is outside the interest's segment (nothing to hold: its property is cleared).
    `points` are the rules' points after the group's cap and rounding; `decay` the inactivity points.
    """

    _fields: ClassVar[tuple[str, ...]] = ("name", "score", "points", "decay", "breakdown")

    def __init__(
        self, name: str, score: int | None, points: int = 0, decay: int = 0, breakdown: tuple[RuleHit, ...] = ()
    ) -> None:
        self.name: Final = name
        self.score: Final = score
        self.points: Final = points
        self.decay: Final = decay
        self.breakdown: Final = breakdown


class ScoreResult(_Value):
    """Everything the engine decided for one contact, and why."""

    _fields: ClassVar[tuple[str, ...]] = (
        "contact_id",
        "model",
        "fit",
        "engagement",
        "decay",
        "score",
        "fit_grade",
        "engagement_grade",
        "grade",
        "current_stage",
        "stage_target",
        "stage_write",
        "stage_reason",
        "excluded",
        "exclusion_reason",
        "holdout",
        "version",
        "breakdown",
        "stage_held",
        "interests",
    )

    def __init__(
        self,
        contact_id: str,
        model: str | None,
        fit: int,
        engagement: int,
        decay: int,
        score: int,
        fit_grade: str | None,
        engagement_grade: str | None,
        grade: str | None,
        current_stage: str,
        stage_target: str | None,
        stage_write: StageWrite,
        stage_reason: str,
        excluded: bool,
        exclusion_reason: str | None,
        holdout: bool,
        version: str,
        breakdown: tuple[RuleHit, ...] = (),
        stage_held: str | None = None,
        interests: tuple[InterestResult, ...] = (),
    ) -> None:
        self.contact_id: Final = contact_id
        self.model: Final = model
        self.fit: Final = fit
        self.engagement: Final = engagement
        self.decay: Final = decay
        self.score: Final = score
        self.fit_grade: Final = fit_grade
        self.engagement_grade: Final = engagement_grade
        self.grade: Final = grade
        self.current_stage: Final = current_stage
        self.stage_target: Final = stage_target
        self.stage_write: Final = stage_write
        self.stage_reason: Final = stage_reason
        self.excluded: Final = excluded
        self.exclusion_reason: Final = exclusion_reason
        self.holdout: Final = holdout
        self.version: Final = version
        self.breakdown: Final = breakdown
        # Why a due demotion was held back (the stage was not leadsync's to move back); None when none was.
        self.stage_held: Final = stage_held
        # The product-interest scores, in the rule set's order (none without an `interests:` section).
        self.interests: Final = interests


class PropertyUpdate(_Value):
    """Values to write to one contact's properties ("" clears a value)."""

    _fields: ClassVar[tuple[str, ...]] = ("contact_id", "properties")

    def __init__(self, contact_id: str, properties: Mapping[str, str]) -> None:
        self.contact_id: Final = contact_id
        self.properties: Final = properties

    def __hash__(self) -> int:
        return hash(("PropertyUpdate", self.contact_id, tuple(sorted(self.properties.items()))))


class StageChange(_Value):
    """A lifecycle stage to write; `clear_first` for a backward move (HubSpot keeps the old value otherwise)."""

    _fields: ClassVar[tuple[str, ...]] = ("contact_id", "stage", "clear_first")

    def __init__(self, contact_id: str, stage: str, clear_first: bool = False) -> None:
        self.contact_id: Final = contact_id
        self.stage: Final = stage
        self.clear_first: Final = clear_first


class Company(_Value):
    """A company as account rules see it: its id and its properties (strings, as HubSpot sends them)."""

    _fields: ClassVar[tuple[str, ...]] = ("id", "properties")

    def __init__(self, id: str, properties: Mapping[str, str]) -> None:
        self.id: Final = id
        self.properties: Final = properties

    def __hash__(self) -> int:  # properties is a mapping: hash by id only
        return hash(("Company", self.id))


class CompanyAssociation(_Value):
    """One contact-to-company association. `primary` is HubSpot's Primary association (typeId 1), which the
    adapter matches by id: a portal can rename the label, never the id."""

    _fields: ClassVar[tuple[str, ...]] = ("contact_id", "company_id", "primary")

    def __init__(self, contact_id: str, company_id: str, primary: bool = False) -> None:
        self.contact_id: Final = contact_id
        self.company_id: Final = company_id
        self.primary: Final = primary


def _id_order(company_id: str) -> tuple[int, int, str]:
    """Numeric ids by value ("9" before "10"); an id that is not a number after all of them, by text."""
    if company_id.isascii() and company_id.isdigit():
        return (0, int(company_id), "")
    return (1, 0, company_id)


def primary_company(associations: Iterable[CompanyAssociation]) -> str | None:
    """The company whose properties `company.<property>` reads for one contact's associations.

    The Primary association; else the associated company with the lowest id (numerically); None without one.
    Should HubSpot ever report two Primary ones, the lower id of those wins, so the answer never depends on order.
    """
    best: str | None = None
    best_primary = False
    for association in associations:
        company_id = association.company_id
        if best is not None:
            if best_primary and not association.primary:
                continue
            if best_primary == association.primary and _id_order(company_id) >= _id_order(best):
                continue
        best, best_primary = company_id, association.primary
    return best


def with_company(contact: Contact, company: Company | None) -> Contact:
    """The contact with its primary company's properties, read by `company.<property>` (None: no company)."""
    return Contact(
        contact.id,
        contact.properties,
        contact.email,
        contact.created_at_ms,
        contact.lifecycle_stage,
        contact.list_ids,
        company.properties if company is not None else None,
    )


class ScoredContact(_Value):
    """One of a company's contacts as its account score reads it: the contact, its result from this run, and
    (only when a `contacts:` rule tests events) its events."""

    _fields: ClassVar[tuple[str, ...]] = ("contact", "result", "events")

    def __init__(self, contact: Contact, result: ScoreResult, events: Sequence[Event] = ()) -> None:
        self.contact: Final = contact
        self.result: Final = result
        self.events: Final = events

    def __hash__(self) -> int:
        return hash(("ScoredContact", self.contact, self.result))


class AccountResult(_Value):
    """Everything the engine decided for one company, and why; the breakdown sums to `score` as a contact's does.

    `contacts` counts the contacts that counted (holdout ones among them); `excluded_contacts` those that did not.
    """

    _fields: ClassVar[tuple[str, ...]] = (
        "company_id",
        "fit",
        "engagement",
        "score",
        "fit_grade",
        "engagement_grade",
        "grade",
        "rollup",
        "contacts",
        "excluded_contacts",
        "version",
        "breakdown",
    )

    def __init__(
        self,
        company_id: str,
        fit: int,
        engagement: int,
        score: int,
        fit_grade: str | None,
        engagement_grade: str | None,
        grade: str | None,
        rollup: int,
        contacts: int,
        excluded_contacts: int,
        version: str,
        breakdown: tuple[RuleHit, ...] = (),
    ) -> None:
        self.company_id: Final = company_id
        self.fit: Final = fit
        self.engagement: Final = engagement
        self.score: Final = score
        self.fit_grade: Final = fit_grade
        self.engagement_grade: Final = engagement_grade
        self.grade: Final = grade
        # The contacts' interest combined by the rollup, in points, before the `contacts:` rules add theirs.
        self.rollup: Final = rollup
        self.contacts: Final = contacts
        self.excluded_contacts: Final = excluded_contacts
        self.version: Final = version
        self.breakdown: Final = breakdown
