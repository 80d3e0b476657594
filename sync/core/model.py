"""The values that flow through the scoring core: plain, frozen, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FORM_SUBMISSION = "form_submission"
EMAIL_SENT = "email_sent"
EMAIL_DELIVERED = "email_delivered"
EMAIL_OPEN = "email_open"
EMAIL_CLICK = "email_click"
EMAIL_BOUNCE = "email_bounce"
EMAIL_UNSUBSCRIBE = "email_unsubscribe"
EMAIL_SPAM_REPORT = "email_spam_report"

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


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact as the rules see it: its id, the properties (strings, as HubSpot sends them)."""

    id: str
    properties: Mapping[str, str]
    email: str = ""
    created_at_ms: int | None = None
    lifecycle_stage: str = ""
    list_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class FormSubmission:
    """One form submission; `event_id` is HubSpot's conversion id."""

    event_id: str
    at_ms: int
    email: str
    form_id: str
    form_name: str = ""
    page_url: str = ""

    kind: str = field(default=FORM_SUBMISSION, init=False)
    filtered: bool = field(default=False, init=False)


@dataclass(frozen=True, slots=True)
class EmailEvent:
    """One marketing email event; `kind` is one of EMAIL_EVENT_TYPES."""

    event_id: str
    kind: str
    at_ms: int
    email: str
    campaign_id: str = ""
    url: str = ""
    filtered: bool = False


Event = FormSubmission | EmailEvent


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One line of a score's breakdown.

    `cents` are hundredths of a point: the breakdown keeps two decimals and its
    entries (rules, caps, rounding, decay, clamp) add up exactly to the score.
    `label` is the short form used in the written reasons ("industry=ENERGY").
    """

    rule: str
    group: str
    kind: str
    matched: bool
    cents: int
    detail: str
    label: str

    @property
    def points(self) -> float:
        return self.cents / 100


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """Everything the engine decided for one contact, and why."""

    contact_id: str
    model: str | None
    fit: int
    engagement: int
    decay: int
    score: int
    fit_grade: str | None
    engagement_grade: str | None
    grade: str | None
    current_stage: str
    stage_target: str | None
    stage_write: StageWrite
    stage_reason: str
    excluded: bool
    exclusion_reason: str | None
    holdout: bool
    version: str
    breakdown: tuple[RuleHit, ...] = field(default=())
