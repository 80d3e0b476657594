"""Portal config structure: the pydantic models (`PortalConfig` and its parts) and the JSON Schema export.

pydantic checks structure here (types, ranges, unknown keys); what a config
means is checked by `sync.config.checks`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

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
    """How many matching events the condition wants; without a count, at least one."""

    at_least: Count | None = Field(None, description="at least this many matching events")
    at_most: Count | None = Field(
        None, description="at most this many matching events (a contact with none matches too)"
    )
    exactly: Count | None = Field(None, description="exactly this many matching events")
    between: tuple[Count, Count] | None = Field(
        None, description="[low, high]: from low to high matching events, both included"
    )


class ConditionModel(_Model):
    """A condition: property tests, email tests, list membership, events, and all/any/not."""

    property: str | None = Field(
        None, description="the contact property the tests below (equals, in, contains, gt ...) look at"
    )
    equals: Scalar | None = Field(None, description="the property's value is this (text ignores case)")
    not_equals: Scalar | None = Field(None, description="the property's value is not this (text ignores case)")
    in_: list[Scalar] | None = Field(
        None, alias="in", description="the property's value is one of these (text ignores case)"
    )
    not_in: list[Scalar] | None = Field(None, description="the property's value is none of these (text ignores case)")
    contains: Texts | None = Field(
        None, description="the property's value contains this text, or any of these (case-insensitive)"
    )
    not_contains: Texts | None = Field(
        None, description="the property's value contains none of these texts (case-insensitive)"
    )
    starts_with: Texts | None = Field(
        None, description="the property's value starts with this text, or any of these (case-insensitive)"
    )
    ends_with: Texts | None = Field(
        None, description="the property's value ends with this text, or any of these (case-insensitive)"
    )
    exists: bool | None = Field(None, description="true: the property has a value; false: it is empty or absent")
    gt: Bound | None = Field(None, description="the property's value is above this number or date")
    gte: Bound | None = Field(None, description="the property's value is this number or date, or above")
    lt: Bound | None = Field(None, description="the property's value is below this number or date")
    lte: Bound | None = Field(None, description="the property's value is this number or date, or below")
    within_days: Days | None = Field(
        None,
        description="with property: its date is at most this many whole days ago; with event: only events "
        "at most this many whole days old count",
    )
    older_than_days: Days | None = Field(None, description="the property's date is more than this many whole days ago")
    email_domain_in: Texts | None = Field(
        None, description="the contact's email domain is one of these (subdomains included)"
    )
    free_mail: bool | None = Field(
        None,
        description="true: the contact's email is at a free-mail or disposable domain (the built-in list plus "
        "free_mail_domains); false: it is not",
    )
    emails: Texts | None = Field(None, description="the contact's email address is one of these")
    contact_ids: Ids | None = Field(None, description="the contact's HubSpot id is one of these")
    hubspot_list: Id | list[Id] | None = Field(
        None, description="the contact is a member of this HubSpot list, or of any of these (list ids)"
    )
    event: EventType | None = Field(
        None, description="the contact has events of this type (at least one, or as many as count says)"
    )
    form_id: Ids | None = Field(None, description="form_submission only: submissions of these forms (form ids)")
    form_name_contains: Texts | None = Field(
        None, description="form_submission only: submissions of forms whose name contains any of these texts"
    )
    page_url_contains: Texts | None = Field(
        None, description="form_submission only: submissions on a page whose URL contains any of these texts"
    )
    url_contains: Texts | None = Field(
        None, description="email_click only: clicks on a link whose URL contains any of these texts"
    )
    campaign_id: Ids | None = Field(None, description="email events only: events of these email campaigns (ids)")
    count: CountModel | None = Field(None, description="how many matching events (default: at least one)")
    include_filtered: bool | None = Field(
        None, description="email events only: true counts events HubSpot filtered as bots too (default false)"
    )
    bounce: Literal["hard", "soft", "any"] | None = Field(
        None, description="email_bounce only: which bounces count (default hard: README 'What counts')"
    )
    all: list[ConditionModel] | None = Field(None, description="every one of these conditions holds")
    any: list[ConditionModel] | None = Field(None, description="at least one of these conditions holds")
    not_: ConditionModel | None = Field(None, alias="not", description="this condition does not hold")
    when: ConditionModel | None = Field(None, description="a further condition that must hold too")


class BandModel(_Model):
    """One numeric range of a bands rule; the first band that holds the value gives its points."""

    gt: Number | None = Field(None, description="the value is above this")
    gte: Number | None = Field(None, description="the value is this or above")
    lt: Number | None = Field(None, description="the value is below this")
    lte: Number | None = Field(None, description="the value is this or below")
    points: Points = Field(description="points for a value in this band")


class RuleModel(ConditionModel):
    """A scoring rule: a `map`, `bands`, an `event` rule, or a condition with `points`."""

    id: str = Field(
        pattern=RULE_ID,
        description="the rule's name, unique within its model: shown in breakdowns and the written reasons",
    )
    points: Points | None = Field(
        None, description="points when the condition holds (an event rule: once, or per occurrence with per)"
    )
    map: dict[str, Points] | None = Field(
        None, description="points per value of property (values compare case-insensitively)"
    )
    default: Points | None = Field(None, description="map rule: points for any other value, a missing one too (0)")
    missing: Points | None = Field(None, description="map rule: points when the property has no value (default)")
    bands: list[BandModel] | None = Field(
        None, description="points per numeric range of property; the first band that matches wins"
    )
    per: Literal["contact", "occurrence"] | None = Field(
        None, description="event rule: contact gives points once (default); occurrence gives them per event"
    )
    max: PositivePoints | None = Field(None, description="per: occurrence rule: the most points it gives in all")
    half_life_days: HalfLife | None = Field(
        None, description="event rule: each event weighs points x 0.5^(age in days / this)"
    )
    when: ConditionModel | None = Field(None, description="the rule counts only for contacts this condition holds for")


class ExclusionModel(ConditionModel):
    reason: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the reason code, shown in results, explain and the logs (e.g. employee, competitor)",
    )


class GroupModel(_Model):
    """A model's fit or engagement rules and the bounds of their sum."""

    max: Points | None = Field(None, description="the group's points are capped at this")
    min: Points | None = Field(None, description="the group's points never go below this")
    rules: list[RuleModel] = Field([], description="the rules whose points add up to the group's")


class DecayStepModel(_Model):
    after_days: Days = Field(description="applies once the newest engagement event is this many whole days old")
    points: Points = Field(description="points this step adds (negative to decay)")


class DecayModel(_Model):
    """Points for inactivity: days since the contact's newest engagement event (or its createdate)."""

    inactivity: list[DecayStepModel] = Field(min_length=1, description="the steps, in increasing after_days")
    mode: Literal["replace", "cumulative"] = Field(
        "replace", description="replace: only the deepest step reached applies; cumulative: every step reached adds"
    )
    events: list[EventType] | None = Field(
        None,
        description="the event types that count as engagement (default: form submissions, email opens and clicks)",
    )


class EngagementModel(GroupModel):
    decay: DecayModel | None = Field(None, description="points for inactivity, kept apart from engagement")


class TotalModel(_Model):
    clamp: tuple[Points, Points] | None = Field(
        None, description="[low, high]: the score is bounded to this range (whole numbers); omit for no bound"
    )


class GradeModel(_Model):
    grade: str = Field(min_length=1, description="the grade's label (A, B, 1, 2 ...)")
    min: Points | None = Field(
        None, description="the least points for this grade; the last grade omits it and takes the rest"
    )


class GradesModel(_Model):
    """Letter grades for fit and engagement, listed from the highest min down."""

    fit: list[GradeModel] = Field(min_length=1, description="grades by fit points")
    engagement: list[GradeModel] = Field(min_length=1, description="grades by engagement points plus decay")
    label: str = Field("{fit}{engagement}", description="the written grade, from {fit} and {engagement} (e.g. A1)")


class StageModel(_Model):
    stage: str = Field(description="the lifecycle stage a contact reaching min_score is moved to")
    min_score: Points = Field(description="the least score for this stage (compared with >=)")
    min_fit_grade: str | None = Field(
        None, description="the contact's fit grade must also be this one or better (a fit grade of this model)"
    )


class StageRuleModel(_Model):
    stage: str = Field(description="the lifecycle stage a contact matching when is moved to")
    when: ConditionModel = Field(description="the condition that sets the stage")


class LifecycleModel(_Model):
    mode: Literal["score", "rules", "off"] = Field(
        "score",
        description="score: stages by score thresholds (and rules); rules: stages by rules alone; "
        "off: leadsync never writes a stage",
    )
    stages: list[StageModel] = Field([], description="score thresholds, in ascending stage order and score")
    rules: list[StageRuleModel] = Field(
        [], description="stages set by a condition; applied in both score and rules mode"
    )
    # A float, as the core holds it: the version hash reads "0.0".
    hysteresis: NonNegativePoints = Field(
        0.0, description="with demote: a contact moves back only below a stage's min_score minus this"
    )
    never_touch: list[str] = Field(
        ["opportunity", "customer", "evangelist", "other"],
        description="a contact in one of these stages keeps it: leadsync writes no stage for it",
    )
    demote: bool = Field(
        False,
        description="true: move a contact back when its score falls (clear, then set); "
        "otherwise stages only go forward",
    )
    demote_to: str = Field("lead", description="with demote: the stage a contact below every threshold moves back to")
    own_stages: Literal["written", "all"] = Field(
        "written",
        description="written: demote only a stage leadsync itself last wrote and HubSpot still holds; "
        "all: leadsync owns every stage it may touch, whoever set it",
    )
    order: list[str] | None = Field(
        None, description="the portal's stage order, lowest first, when it has custom stages (default: HubSpot's)"
    )


class PropertiesModel(_Model):
    group: str = Field(
        "lead_scoring_sync",
        pattern=PROPERTY_NAME,
        description="the HubSpot property group leadsync's properties are in",
    )
    adopt: list[Annotated[str, Field(pattern=PROPERTY_NAME)]] = Field(
        [],
        description="existing HubSpot properties outside the group that leadsync may take over (e.g. an older "
        "score property); each must be one of the outputs, and never a HubSpot default property",
    )
    score: str = Field("ls_score", pattern=PROPERTY_NAME, description="the property that holds the score")
    fit: str = Field("ls_fit", pattern=PROPERTY_NAME, description="the property that holds the fit points")
    engagement: str = Field(
        "ls_engagement",
        pattern=PROPERTY_NAME,
        description="the property that holds the engagement points (without decay)",
    )
    grade: str = Field("ls_grade", pattern=PROPERTY_NAME, description="the property that holds the grade label")
    reasons: str = Field(
        "ls_reasons",
        pattern=PROPERTY_NAME,
        description="the property that holds the short reasons (+70 demo-request; ...)",
    )
    scored_at: str = Field(
        "ls_scored_at", pattern=PROPERTY_NAME, description="the property that holds when the contact was last scored"
    )


class PropertiesOverride(_Model):
    """One model's own output properties, in place of the file's `properties:`."""

    group: str | None = Field(
        None, pattern=PROPERTY_NAME, description="this model's property group (default: properties.group)"
    )
    score: str | None = Field(
        None, pattern=PROPERTY_NAME, description="this model's property for the score (default: properties.score)"
    )
    fit: str | None = Field(
        None, pattern=PROPERTY_NAME, description="this model's property for the fit points (default: properties.fit)"
    )
    engagement: str | None = Field(
        None,
        pattern=PROPERTY_NAME,
        description="this model's property for the engagement points (without decay) (default: properties.engagement)",
    )
    grade: str | None = Field(
        None, pattern=PROPERTY_NAME, description="this model's property for the grade label (default: properties.grade)"
    )
    reasons: str | None = Field(
        None,
        pattern=PROPERTY_NAME,
        description="this model's property for the short reasons (+70 demo-request; ...) (default: properties.reasons)",
    )
    scored_at: str | None = Field(
        None,
        pattern=PROPERTY_NAME,
        description="this model's property for when the contact was last scored (default: properties.scored_at)",
    )


class ScoringModel(_Model):
    """A scoring model: fit and engagement rules, grades and stages for the contacts its segment takes."""

    name: str = Field("default", pattern=RULE_ID, description="the model's name, unique in the file; shown in results")
    segment: ConditionModel | None = Field(
        None,
        description="the contacts this model scores; models are tried in file order and the first whose segment "
        "matches wins; a model without one takes every contact left (the fallback, and the last model)",
    )
    properties: PropertiesOverride | None = Field(
        None, description="this model's own output property names, in place of the file's properties"
    )
    fit: GroupModel = Field(GroupModel(), description="who the contact is: rules on its properties")
    engagement: EngagementModel = Field(
        EngagementModel(), description="what the contact did: rules on its events and activity, and decay"
    )
    total: TotalModel | None = Field(None, description="bounds of the score (fit + engagement + decay)")
    grades: GradesModel | None = Field(None, description="letter grades for fit and engagement")
    lifecycle: LifecycleModel | None = Field(None, description="the lifecycle stages this model sets; none if absent")


class AccountPropertiesModel(_Model):
    """The company properties leadsync owns for account scores (never a HubSpot default company property)."""

    group: str = Field(
        "lead_scoring_sync", pattern=PROPERTY_NAME, description="the HubSpot company property group they are in"
    )
    score: str = Field("ls_account_score", pattern=PROPERTY_NAME, description="the company property for the score")
    fit: str = Field("ls_account_fit", pattern=PROPERTY_NAME, description="the company property for the fit points")
    engagement: str = Field(
        "ls_account_engagement",
        pattern=PROPERTY_NAME,
        description="the company property for the engagement points (roll-up and contacts rules)",
    )
    grade: str = Field("ls_account_grade", pattern=PROPERTY_NAME, description="the company property for the grade")
    reasons: str = Field(
        "ls_account_reasons", pattern=PROPERTY_NAME, description="the company property for the short reasons"
    )
    scored_at: str = Field(
        "ls_account_scored_at",
        pattern=PROPERTY_NAME,
        description="the company property for when the company was last scored",
    )


class ContactsModel(_Model):
    """How many of the company's counted contacts match `where` (without count: at least one)."""

    where: ConditionModel = Field(
        description="the condition each contact is tested with; the contact model's own outputs (ls_score, "
        "ls_fit, ls_engagement, ls_grade) read this run's values"
    )
    count: CountModel | None = Field(None, description="how many contacts must match (default: at least one)")


class AccountRuleModel(RuleModel):
    """An account rule: a rule on the company's properties, or (in engagement) a `contacts:` rule."""

    contacts: ContactsModel | None = Field(
        None, description="engagement only: points when enough of the company's contacts match where"
    )


class AccountFitModel(_Model):
    """Who the company is: rules on its own properties."""

    max: Points | None = Field(None, description="the group's points are capped at this")
    min: Points | None = Field(None, description="the group's points never go below this")
    rules: list[AccountRuleModel] = Field([], description="rules on the company's properties")


class AccountEngagementModel(AccountFitModel):
    """What the company's contacts do: their interest rolled up, and contacts rules."""

    rollup: Literal["sum", "max", "top_3"] = Field(
        "sum",
        description="how the contacts' current interest (engagement + decay, floored at 0) combines: sum, max, "
        "or top_3 (the sum of the three highest)",
    )
    rules: list[AccountRuleModel] = Field(
        [], description="contacts rules (how many contacts match a condition) and rules on the company"
    )


class AccountsModel(_Model):
    """Account scores: every company scored from its properties and its contacts (docs/SCORING.md section 6)."""

    properties: AccountPropertiesModel = Field(
        AccountPropertiesModel(), description="the company properties leadsync writes"
    )
    fit: AccountFitModel = Field(AccountFitModel(), description="rules on the company's own properties")
    engagement: AccountEngagementModel = Field(
        AccountEngagementModel(), description="the contacts' interest rolled up, and contacts rules"
    )
    total: TotalModel | None = Field(None, description="bounds of the score (fit + engagement)")
    grades: GradesModel | None = Field(None, description="letter grades for fit and engagement")


INTEREST_NAME = r"^[a-z][a-z0-9_]*$"


class InterestPropertiesModel(_Model):
    """The contact properties one interest score is written to, in leadsync's property group."""

    score: str | None = Field(
        None,
        pattern=PROPERTY_NAME,
        description="the property that holds the interest score (default: ls_interest_<name>)",
    )
    reasons: Annotated[str, Field(pattern=PROPERTY_NAME)] | Literal[False] | None = Field(
        None,
        description="the property that holds the interest's short reasons (default: ls_interest_<name>_reasons); "
        "false writes no reasons",
    )


class InterestModel(GroupModel):
    """A product-interest score: a named extra score every contact (or a segment) gets beside the lead score,
    from its own rules, written to its own properties; it never moves a lifecycle stage."""

    name: str = Field(
        pattern=INTEREST_NAME,
        max_length=60,
        description="the interest's name, unique in the file (lowercase letters, digits, _): shown in results "
        "and part of its default property names",
    )
    segment: ConditionModel | None = Field(
        None,
        description="the contacts that get this score; without one, every contact. Outside it a contact's "
        "interest properties are cleared",
    )
    properties: InterestPropertiesModel | None = Field(
        None, description="the properties this interest is written to (default: ls_interest_<name>[_reasons])"
    )
    decay: DecayModel | None = Field(None, description="points for inactivity, added to the interest's rules")
    total: TotalModel | None = Field(None, description="bounds of the interest score (rules + decay)")


class RateLimitModel(_Model):
    """The portal's HubSpot API limits, when its tier's defaults do not hold."""

    per_10s: PositiveCount = Field(description="API requests per 10 seconds")
    daily: Annotated[int, Field(strict=True, ge=1, le=10**12), _in_range(1, 10**12)] = Field(
        description="API requests per day"
    )
    daily_reserve_pct: Annotated[float, Field(strict=True, ge=0, lt=100), _in_range(0, 100)] = Field(
        20, description="percent of the daily limit leadsync leaves for the portal's other integrations"
    )
    search_per_second: PositiveCount = Field(5, description="search API requests per second")


class PortalModel(_Model):
    """The HubSpot portal this file scores, and how to reach it."""

    id: Id = Field(description="the HubSpot portal (account) id; a token of another portal is refused")
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="a short name for the portal in logs, metrics and reports"
    )
    token_env: str = Field(
        description="the NAME of the environment variable holding the private-app token (never the token)"
    )
    base_url: str = Field("https://api.hubapi.com", description="HubSpot's API, or a local sandbox's URL for trials")
    tier: Literal["free", "starter", "professional", "enterprise"] = Field(
        "professional", description="the portal's HubSpot tier: it sets the default API limits"
    )
    rate_limit: RateLimitModel | None = Field(None, description="API limits in place of the tier's")


class ScheduleModel(_Model):
    """When the service syncs the portal."""

    every: str = Field("15m", description="the interval of incremental syncs: a duration such as 15m, 1h, 90s, 1d")
    rescore: str | None = Field(
        "0 3 * * *",
        description="cron expression of the full rescore (decay and time windows move without new data); null for none",
    )
    timezone: str = Field("UTC", description="the time zone rescore's cron expression is read in (IANA name)")


def _as_text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else str(value) if isinstance(value, int | float) else value


class HoldoutModel(_Model):
    """A control group: scored and logged like everyone else, never written, for backtests to compare."""

    percent: Annotated[float, Field(strict=True, ge=0, le=50), _in_range(0, 50)] = Field(
        description="the share of contacts held out, in percent"
    )
    # Salts are often written as dates or numbers (2026-10-01, 7): any scalar, used as text.
    salt: Annotated[str, BeforeValidator(_as_text)] = Field(
        min_length=1, description="mixed into the hash of each contact id: a new salt draws a new group"
    )


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
    poll_overlap: str = Field(
        "2m",
        description="how far before its last poll an incremental sync looks again for contacts with a new form "
        "submission (HubSpot's search shows a change seconds to a minute after it): a duration such as 2m or 90s, "
        "longer than HubSpot's indexing delay",
    )


class WebhooksModel(_Model):
    """HubSpot's webhooks as a hint: `leadsync run` takes signed deliveries on POST /webhooks/hubspot and scores the
    contacts they name within seconds; the scheduled poll stays the safety net."""

    secret_env: str = Field(
        description="the NAME of the environment variable holding the app's client secret, which signs deliveries "
        "(never the secret)"
    )
    signatures: list[Literal["v3", "v2", "v1"]] = Field(
        ["v3"],
        min_length=1,
        description="the signature versions accepted: v3 (timestamped, refused after 5 minutes); v2 and v1 only for "
        "legacy apps that send no v3",
    )
    url: str | None = Field(
        None,
        description="the public URL HubSpot posts to (the app's target URL), which v3 and v2 signatures cover; "
        "default: rebuilt from the request's Host and X-Forwarded-Proto/-Host headers",
    )


class PredictivePropertiesModel(_Model):
    """The contact properties the learned likelihood writes (leadsync's own, created in its group)."""

    likelihood: str = Field(
        "ls_likelihood", pattern=PROPERTY_NAME, description="the property that holds the likelihood, 0-100"
    )
    factors: str = Field(
        "ls_likelihood_factors",
        pattern=PROPERTY_NAME,
        description="the property that holds the likelihood's top factors (+0.9 form:Pricing; -0.6 free-mail)",
    )


class PredictiveModel(_Model):
    """A learned likelihood written alongside the score (docs/SCORING.md section 7)."""

    model: str = Field(min_length=1, description="the model file `leadsync train` wrote (a path relative to this file)")
    properties: PredictivePropertiesModel = Field(
        PredictivePropertiesModel(), description="the contact properties the likelihood is written to"
    )


class PortalConfig(_Model):
    """One portal's config file (after `extends:` is merged)."""

    extends: str | None = Field(None, description="a base config file this one is laid on")
    portal: PortalModel = Field(description="the HubSpot portal this file scores")
    schedule: ScheduleModel = Field(ScheduleModel(), description="when the service syncs and rescores the portal")
    properties: PropertiesModel = Field(PropertiesModel(), description="the HubSpot properties leadsync writes")
    holdout: HoldoutModel | None = Field(None, description="a control group never written; none if absent")
    exclusions: list[ExclusionModel] = Field(
        [], description="contacts scored but not written (or written 0), each with a reason"
    )
    exclusion_action: Literal["skip", "zero"] = Field(
        "skip", description="skip: write nothing for an excluded contact; zero: write 0 and leave its stage alone"
    )
    free_mail_domains: list[str] = Field([], description="domains added to the built-in free-mail list")
    log_emails: bool = Field(False, description="put contacts' email addresses in the logs (hashed otherwise)")
    alerts: AlertsModel | None = Field(None, description="alerts through Apprise, once per incident; none if absent")
    forms: FormsModel = Field(FormsModel(), description="which forms' submissions count")
    model: ScoringModel | None = Field(None, description="the one scoring model, for every contact")
    models: list[ScoringModel] | None = Field(
        None,
        description="several scoring models, tried in order: the first whose segment matches scores the contact; "
        "a contact no model takes is not scored (no_model)",
    )
    accounts: AccountsModel | None = Field(
        None, description="account scores for every company (fit, contacts' interest rolled up); none if absent"
    )
    interests: list[InterestModel] = Field(
        [],
        description="product-interest scores: named extra scores beside the lead score, each with its own rules "
        "and properties; they never move lifecycle stages",
    )
    webhooks: WebhooksModel | None = Field(
        None, description="take HubSpot's webhooks on `leadsync run --listen` (speed to lead); none if absent"
    )
    predictive: PredictiveModel | None = Field(
        None, description="a learned likelihood to convert, written with the score; none if absent"
    )

    def effective_rate_limit(self) -> RateLimitModel:
        if self.portal.rate_limit is not None:
            return self.portal.rate_limit
        per_10s, daily = TIER_LIMITS[self.portal.tier]
        return RateLimitModel(per_10s=per_10s, daily=daily)


def keys_at(path: Sequence[str | int]) -> tuple[str, ...]:
    """The keys the mapping at `path` in a portal file may have, as the file spells them; () if it is no section."""
    model: type[BaseModel] | None = PortalConfig
    for part in path:
        if model is None:
            return ()
        if isinstance(part, int):  # a list's item: its model is the list's, found with the list's field
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        model = _model_in(field.annotation) if field is not None else None
    return tuple(f.alias or name for name, f in model.model_fields.items()) if model is not None else ()


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds, through `X | None`, `list[X]` and `Annotated` (None for plain values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def json_schema() -> dict[str, Any]:
    schema = PortalConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "leadsync portal config"
    return schema
