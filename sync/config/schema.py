"""Portal config structure: the pydantic models (`PortalConfig` and its parts) and the JSON Schema export.

pydantic checks structure here (types, ranges, unknown keys); what a config
means is checked by `sync.config.build`.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

EventType = Literal[
    "form_submission",
    "email_sent",
    "email_delivered",
    "email_open",
    "email_click",
    "email_bounce",
    "email_unsubscribe",
    "email_spam_report",
]

# --- numbers ---------------------------------------------------------------------
# Every number in a portal file is checked: a real number (a boolean is not one, though pydantic would take
# true as 1), finite, and within a range no sensible config leaves. The loader already refuses NaN, infinities
# and numbers beyond 1e15; these ranges are per meaning.

POINTS_LIMIT = 1_000_000
NUMBER_LIMIT = 1e15  # property values compared against (revenue, employees ...)
DAYS_LIMIT = 36_500  # a hundred years
COUNT_LIMIT = 1_000_000
ID_LIMIT = 2**63 - 1


def _number_text(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _in_range(low: float, high: float, unit: str = "") -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise PydanticCustomError("bool_number", f"must be a number, not {str(value).lower()}")
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise PydanticCustomError("finite_number", "must be a finite number")
            if not low <= value <= high:
                raise PydanticCustomError(
                    "number_range", f"{unit}must be between {_number_text(low)} and {_number_text(high)}"
                )
        return value

    return BeforeValidator(check)


P = POINTS_LIMIT
Points = Annotated[float, Field(strict=True, ge=-P, le=P), _in_range(-P, P, "points ")]
PositivePoints = Annotated[float, Field(strict=True, gt=0, le=P), _in_range(-P, P, "points ")]
NonNegativePoints = Annotated[float, Field(strict=True, ge=0, le=P), _in_range(-P, P, "points ")]
Number = Annotated[float, Field(strict=True, ge=-NUMBER_LIMIT, le=NUMBER_LIMIT), _in_range(-NUMBER_LIMIT, NUMBER_LIMIT)]
Days = Annotated[int, Field(strict=True, ge=0, le=DAYS_LIMIT), _in_range(0, DAYS_LIMIT, "days ")]
HalfLife = Annotated[float, Field(strict=True, gt=0, le=DAYS_LIMIT), _in_range(0, DAYS_LIMIT, "days ")]
Count = Annotated[int, Field(strict=True, ge=0, le=COUNT_LIMIT), _in_range(0, COUNT_LIMIT)]
PositiveCount = Annotated[int, Field(strict=True, gt=0, le=COUNT_LIMIT), _in_range(0, COUNT_LIMIT)]
Id = Annotated[int, Field(strict=True, ge=1, le=ID_LIMIT), _in_range(1, ID_LIMIT, "ids ")]

Scalar = str | int | float | bool
Bound = Number | datetime | date
Texts = str | list[str]
Ids = str | Id | list[str | Id]

TIER_LIMITS: dict[str, tuple[int, int]] = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
}
PROPERTY_NAME = r"^[a-z][a-z0-9_]*$"
RULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- structure -------------------------------------------------------------------


class CountModel(_Model):
    at_least: Count | None = None
    at_most: Count | None = None
    exactly: Count | None = None
    between: tuple[Count, Count] | None = None


class ConditionModel(_Model):
    """A condition: property tests, email tests, list membership, events, and all/any/not."""

    property: str | None = None
    equals: Scalar | None = None
    not_equals: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in")
    not_in: list[Scalar] | None = None
    contains: Texts | None = None
    not_contains: Texts | None = None
    starts_with: Texts | None = None
    ends_with: Texts | None = None
    exists: bool | None = None
    gt: Bound | None = None
    gte: Bound | None = None
    lt: Bound | None = None
    lte: Bound | None = None
    within_days: Days | None = None
    older_than_days: Days | None = None
    email_domain_in: Texts | None = None
    free_mail: bool | None = None
    emails: Texts | None = None
    contact_ids: Ids | None = None
    hubspot_list: Id | list[Id] | None = None
    event: EventType | None = None
    form_id: Ids | None = None
    form_name_contains: Texts | None = None
    page_url_contains: Texts | None = None
    url_contains: Texts | None = None
    campaign_id: Ids | None = None
    count: CountModel | None = None
    include_filtered: bool | None = None
    bounce: Literal["hard", "soft", "any"] | None = Field(
        None, description="email_bounce only: which bounces count (default hard: README 'What counts')"
    )
    all: list[ConditionModel] | None = None
    any: list[ConditionModel] | None = None
    not_: ConditionModel | None = Field(None, alias="not")
    when: ConditionModel | None = Field(None, description="a further condition that must hold too")


class BandModel(_Model):
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    points: Points


class RuleModel(ConditionModel):
    """A scoring rule: a `map`, `bands`, an `event` rule, or a condition with `points`."""

    id: str = Field(pattern=RULE_ID)
    points: Points | None = None
    map: dict[str, Points] | None = None
    default: Points | None = None
    missing: Points | None = None
    bands: list[BandModel] | None = None
    per: Literal["contact", "occurrence"] | None = None
    max: PositivePoints | None = None
    half_life_days: HalfLife | None = None
    when: ConditionModel | None = None


class ExclusionModel(ConditionModel):
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class GroupModel(_Model):
    max: Points | None = None
    min: Points | None = None
    rules: list[RuleModel] = []


class DecayStepModel(_Model):
    after_days: Days
    points: Points


class DecayModel(_Model):
    inactivity: list[DecayStepModel] = Field(min_length=1)
    mode: Literal["replace", "cumulative"] = "replace"
    events: list[EventType] | None = None


class EngagementModel(GroupModel):
    decay: DecayModel | None = None


class TotalModel(_Model):
    clamp: tuple[Points, Points] | None = None


class GradeModel(_Model):
    grade: str = Field(min_length=1)
    min: Points | None = None


class GradesModel(_Model):
    fit: list[GradeModel] = Field(min_length=1)
    engagement: list[GradeModel] = Field(min_length=1)
    label: str = "{fit}{engagement}"


class StageModel(_Model):
    stage: str
    min_score: Points
    min_fit_grade: str | None = None


class StageRuleModel(_Model):
    stage: str
    when: ConditionModel


class LifecycleModel(_Model):
    mode: Literal["score", "rules", "off"] = "score"
    stages: list[StageModel] = []
    rules: list[StageRuleModel] = []
    hysteresis: NonNegativePoints = 0.0  # a float, as the core holds it: the version hash reads "0.0"
    never_touch: list[str] = ["opportunity", "customer", "evangelist", "other"]
    demote: bool = False
    demote_to: str = "lead"
    own_stages: Literal["written", "all"] = Field(
        "written",
        description="written: demote only a stage leadsync itself last wrote and HubSpot still holds; "
        "all: leadsync owns every stage it may touch, whoever set it",
    )
    order: list[str] | None = None


class PropertiesModel(_Model):
    group: str = Field("lead_scoring_sync", pattern=PROPERTY_NAME)
    adopt: list[Annotated[str, Field(pattern=PROPERTY_NAME)]] = Field(
        [],
        description="existing HubSpot properties outside the group that leadsync may take over (e.g. an older "
        "score property); each must be one of the outputs, and never a HubSpot default property",
    )
    score: str = Field("ls_score", pattern=PROPERTY_NAME)
    fit: str = Field("ls_fit", pattern=PROPERTY_NAME)
    engagement: str = Field("ls_engagement", pattern=PROPERTY_NAME)
    grade: str = Field("ls_grade", pattern=PROPERTY_NAME)
    reasons: str = Field("ls_reasons", pattern=PROPERTY_NAME)
    scored_at: str = Field("ls_scored_at", pattern=PROPERTY_NAME)


class PropertiesOverride(_Model):
    group: str | None = Field(None, pattern=PROPERTY_NAME)
    score: str | None = Field(None, pattern=PROPERTY_NAME)
    fit: str | None = Field(None, pattern=PROPERTY_NAME)
    engagement: str | None = Field(None, pattern=PROPERTY_NAME)
    grade: str | None = Field(None, pattern=PROPERTY_NAME)
    reasons: str | None = Field(None, pattern=PROPERTY_NAME)
    scored_at: str | None = Field(None, pattern=PROPERTY_NAME)


class ScoringModel(_Model):
    name: str = Field("default", pattern=RULE_ID)
    segment: ConditionModel | None = None
    properties: PropertiesOverride | None = None
    fit: GroupModel = GroupModel()
    engagement: EngagementModel = EngagementModel()
    total: TotalModel | None = None
    grades: GradesModel | None = None
    lifecycle: LifecycleModel | None = None


class RateLimitModel(_Model):
    per_10s: PositiveCount
    daily: Annotated[int, Field(strict=True, ge=1, le=10**12), _in_range(1, 10**12)]
    daily_reserve_pct: Annotated[float, Field(strict=True, ge=0, lt=100), _in_range(0, 100)] = 20
    search_per_second: PositiveCount = 5


class PortalModel(_Model):
    id: Id
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    token_env: str
    base_url: str = "https://api.hubapi.com"
    tier: Literal["free", "starter", "professional", "enterprise"] = "professional"
    rate_limit: RateLimitModel | None = None


class ScheduleModel(_Model):
    every: str = "15m"
    rescore: str | None = "0 3 * * *"
    timezone: str = "UTC"


def _as_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else str(value) if isinstance(value, int | float) else value


class HoldoutModel(_Model):
    percent: Annotated[float, Field(strict=True, ge=0, le=50), _in_range(0, 50)]
    # Salts are often written as dates or numbers (2026-10-01, 7): any scalar, used as text.
    salt: Annotated[str, BeforeValidator(_as_text)] = Field(min_length=1)


class AlertsModel(_Model):
    """Alerts through Apprise (Slack, Microsoft Teams, Google Chat, e-mail, PagerDuty and more): one message
    when an incident opens (a failed run, a paused portal, too many dead letters, the daily budget reserve
    reached), one when it clears."""

    url_env: str | None = Field(
        None,
        description="name of the environment variable holding the Apprise URL(s) to alert, e.g. "
        "slack://T/B/C, msteams://..., gchat://..., mailtos://..., pagerduty://... (several separated by spaces "
        "or commas); the URLs are secrets: never in the file, never logged",
    )
    webhook_env: str | None = Field(
        None,
        description="deprecated, use url_env: name of the environment variable holding a Slack-compatible "
        'incoming-webhook URL (https://...), posted {"text": ...} as before',
    )
    dead_letters_over: Count | None = Field(
        None,
        description="alert when the portal gets more than this many dead letters within 24 hours; "
        "omit to not watch them",
    )
    send_resolved: bool = Field(True, description="send a short message when an incident clears")
    timeout_s: Annotated[float, Field(strict=True, gt=0, le=60), _in_range(0, 60)] = Field(
        10, description="seconds to wait for each channel's answer"
    )


FormType = Literal["hubspot", "captured", "flow", "blog_comment"]


class FormsModel(_Model):
    """Which of the portal's forms are read. HubSpot's Forms API lists only `hubspot` forms unless asked."""

    types: list[FormType] = Field(
        ["hubspot", "captured", "flow"],
        min_length=1,
        description="the form types whose submissions are read: hubspot (HubSpot forms), captured (non-HubSpot "
        "forms on tracked pages), flow (pop-up forms), blog_comment (blog comments); archived forms never are",
    )


class PortalConfig(_Model):
    """One portal's config file (after `extends:` is merged)."""

    extends: str | None = Field(None, description="a base config file this one is laid on")
    portal: PortalModel
    schedule: ScheduleModel = ScheduleModel()
    properties: PropertiesModel = PropertiesModel()
    holdout: HoldoutModel | None = None
    exclusions: list[ExclusionModel] = []
    exclusion_action: Literal["skip", "zero"] = "skip"
    free_mail_domains: list[str] = Field([], description="domains added to the built-in free-mail list")
    log_emails: bool = Field(False, description="put contacts' email addresses in the logs (hashed otherwise)")
    alerts: AlertsModel | None = Field(None, description="alerts through Apprise, once per incident; none if absent")
    forms: FormsModel = Field(FormsModel(), description="which forms' submissions count")
    model: ScoringModel | None = None
    models: list[ScoringModel] | None = None

    def effective_rate_limit(self) -> RateLimitModel:
        if self.portal.rate_limit is not None:
            return self.portal.rate_limit
        per_10s, daily = TIER_LIMITS[self.portal.tier]
        return RateLimitModel(per_10s=per_10s, daily=daily)


def json_schema() -> dict[str, Any]:
    schema = PortalConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "leadsync portal config"
    return schema
