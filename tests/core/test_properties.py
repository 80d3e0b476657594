"""Properties of score() for any contact and any event list, over the reference config and variants of it.

Contacts get random values for every property the reference rules read (and
values no rule maps); events are form submissions and email events of every
kind, 0..400 days old, bot-filtered or not, some synced twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.core.model import EMAIL_EVENT_TYPES, Contact, EmailEvent, Event, FormSubmission, ScoreResult
from sync.core.rules import STANDARD_STAGE_ORDER, RuleSet
from sync.core.scoring import score
from tests.factories import NOW, example_data, example_rules, ms_ago, rules_from, unclamped


def copy_of(event: Event) -> Event:
    """A distinct object equal to `event`: the same HubSpot event synced again."""
    if isinstance(event, FormSubmission):
        return FormSubmission(event.event_id, event.at_ms, event.email, event.form_id, event.form_name, event.page_url)
    return EmailEvent(
        event.event_id, event.kind, event.at_ms, event.email, event.campaign_id, event.url, event.filtered
    )


PROPERTIES = settings(max_examples=60, deadline=None)


Change = Callable[[dict[str, Any]], None]


def _variant(*changes: Change, clamp: bool = True) -> RuleSet:
    data = example_data() if clamp else unclamped()
    for change in changes:
        change(data)
    return rules_from(data)


def _lifecycle(**values: Any) -> Change:
    return lambda data: data["model"]["lifecycle"].update(values)


def _tight_groups(data: dict[str, Any]) -> None:
    data["model"]["fit"].update(max=20, min=-10)
    data["model"]["grades"]["fit"] = [{"grade": "A", "min": 15}, {"grade": "B", "min": 5}, {"grade": "C"}]


def _segmented(data: dict[str, Any]) -> None:
    model = data.pop("model")
    data["models"] = [
        {**model, "name": "energy", "segment": {"property": "industry", "equals": "ENERGY"}},
        {**model, "name": "b2b", "segment": {"free_mail": False}},
    ]


VARIANTS: dict[str, RuleSet] = {
    "reference": example_rules(),
    "unclamped": _variant(clamp=False),
    "cumulative": _variant(lambda data: data["model"]["engagement"]["decay"].update(mode="cumulative")),
    "demote": _variant(_lifecycle(demote=True)),
    "demote-unclamped": _variant(_lifecycle(demote=True, hysteresis=0), clamp=False),
    "rules-mode": _variant(_lifecycle(mode="rules", stages=[])),
    "wide-holdout": _variant(lambda data: data.update(holdout={"percent": 50, "salt": "p"})),
    "tight-groups": _variant(_tight_groups, clamp=False),
    "segmented": _variant(_segmented),
}
rulesets = st.sampled_from(sorted(VARIANTS)).map(lambda name: (name, VARIANTS[name]))

# --- contacts ---------------------------------------------------------------------------

noise = st.text(alphabet="abcXYZ _-.0123456789", max_size=8)


def _prop(*values: str) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from(values) | noise


def _number(*special: str) -> st.SearchStrategy[str | None]:
    numbers = st.integers(-10, 2_000).map(str) | st.floats(-10, 2_000, allow_nan=False).map(str)
    return st.none() | numbers | st.sampled_from(special) | noise


CONTACT_PROPERTIES: dict[str, st.SearchStrategy[str | None]] = {
    "decision_role": _prop("owner", "limited", "none", "OWNER"),
    "industry": _prop("ENERGY", "OIL_GAS", "FINANCE", "energy", "RETAIL"),
    "need_level": _prop("core", "nice", "none"),
    "numberofemployees": _number("", "abc", "nan", "inf", "1e3", " 250 ", "99.5", "100", "500", "501"),
    "purchase_timeline": _prop("days", "months", "none"),
    "budget_fit": _prop("fits", "moderate", "short"),
    "jobtitle": _prop("CEO", "cto", "Founder & owner", "Student intern", "Marketing Manager", "Director"),
    "hs_analytics_source": _prop("DIRECT_TRAFFIC", "direct_traffic", "ORGANIC_SEARCH"),
    "hs_analytics_first_referrer": _prop("https://ecosystem.hubspot.com/x", "https://google.com"),
    "hs_analytics_num_visits": _number("", "lots", "1", "2", "5", "6"),
    "ls_sales_feedback": _prop("unqualified", "qualified"),
    "hs_email_optout": st.sampled_from([None, None, None, "false", "true"]),
}
# Company domains are listed several times so that most contacts are not excluded.
DOMAINS = (
    *["buyer-corp.com", "eu.buyer-corp.com", "voltgrid.ro"] * 3,
    "gmail.com",
    "yahoo.com",
    "rival.com",
    "eu.rival.com",
    "acme.com",
    "partner.io",
    "acme-eu.com",
)
STAGES = ("", *STANDARD_STAGE_ORDER, "other", "partner", "Lead")


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    props = {name: value for name, strategy in CONTACT_PROPERTIES.items() if (value := draw(strategy)) is not None}
    domain = draw(st.none() | st.sampled_from(DOMAINS))
    email = "" if domain is None else f"{draw(st.sampled_from(['jane', 'Test', 'x.y']))}@{domain}"
    created = draw(st.none() | st.floats(0, 400, allow_nan=False))
    return Contact(
        id=draw(st.sampled_from(["1", "2", "901", "12345"]) | st.integers(1, 10**9).map(str)),
        properties={"email": email, **props} if email else props,
        email=email.lower(),
        created_at_ms=None if created is None else ms_ago(created),
        lifecycle_stage=draw(st.sampled_from(STAGES)),
        list_ids=draw(st.sampled_from([frozenset(), frozenset(), frozenset(), frozenset({7}), frozenset({7, 42})])),
    )


# --- events ------------------------------------------------------------------------------

ages = st.floats(0, 400, allow_nan=False)
ids = st.sampled_from([f"e{i}" for i in range(12)])
FORM_NAMES = ("Demo request", "Energy ebook", "Solar checklist", "Webinar: grid", "Contact sales", "Newsletter")
URLS = ("", "https://acme-eu.example/pricing", "https://acme-eu.example/pricing?plan=pro", "https://acme-eu.example/")

form_submissions = st.builds(
    FormSubmission,
    event_id=ids,
    at_ms=ages.map(ms_ago),
    email=st.just("jane@buyer-corp.com"),
    form_id=st.sampled_from(["f1", "f2"]),
    form_name=st.sampled_from(FORM_NAMES) | noise,
    page_url=st.sampled_from(URLS) | noise,
)
email_events = st.builds(
    EmailEvent,
    event_id=ids,
    kind=st.sampled_from(sorted(EMAIL_EVENT_TYPES)),
    at_ms=ages.map(ms_ago),
    email=st.just("jane@buyer-corp.com"),
    campaign_id=st.sampled_from(["c1", "c2"]),
    url=st.sampled_from(URLS),
    filtered=st.booleans(),
)


@st.composite
def event_lists(draw: st.DrawFn) -> list[Event]:
    """Distinct events (one per kind and id; ids repeat across kinds), some of them synced twice."""
    drawn = draw(st.lists(form_submissions | email_events, max_size=25))
    unique = list({(e.kind, e.event_id): e for e in drawn}.values())
    if unique:
        again = draw(st.lists(st.sampled_from(unique), max_size=4))
        unique = draw(st.permutations(unique + again))
    return unique


def run(rules: RuleSet, subject: Contact, events: Iterable[Event]) -> ScoreResult:
    return score(subject, events, rules, NOW)


def half_away(cents: int) -> int:
    return int((Decimal(cents) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- properties ---------------------------------------------------------------------------


@PROPERTIES
@given(variant=rulesets, subject=contacts(), events=event_lists())
def test_the_breakdown_sums_exactly_to_the_score(
    variant: tuple[str, RuleSet], subject: Contact, events: list[Event]
) -> None:
    result = run(variant[1], subject, events)
    assert sum(h.cents for h in result.breakdown) == result.score * 100


@PROPERTIES
@given(variant=rulesets, subject=contacts(), other=contacts(), events=event_lists(), data=st.data())
def test_scoring_is_deterministic_whatever_the_event_order(
    variant: tuple[str, RuleSet], subject: Contact, other: Contact, events: list[Event], data: st.DataObject
) -> None:
    rules = variant[1]
    first = run(rules, subject, events)
    run(rules, other, events)  # scoring another contact in between changes nothing
    assert run(rules, subject, events) == first
    assert run(rules, subject, data.draw(st.permutations(events))) == first
    assert run(rules, subject, iter(events)) == first  # any iterable of events


@PROPERTIES
@given(variant=rulesets, subject=contacts(), events=event_lists().filter(bool), data=st.data())
def test_a_duplicate_of_an_event_never_changes_the_result(
    variant: tuple[str, RuleSet], subject: Contact, events: list[Event], data: st.DataObject
) -> None:
    rules = variant[1]
    again = data.draw(st.sampled_from(events))
    where = data.draw(st.integers(0, len(events)))
    assert run(rules, subject, [*events[:where], copy_of(again), *events[where:]]) == run(rules, subject, events)


@PROPERTIES
@given(variant=rulesets, subject=contacts(), events=event_lists())
def test_fit_engagement_and_decay_are_their_lines_capped_and_rounded(
    variant: tuple[str, RuleSet], subject: Contact, events: list[Event]
) -> None:
    rules = variant[1]
    result = run(rules, subject, events)
    if result.model is None:
        assert (result.fit, result.engagement, result.decay, result.breakdown) == (0, 0, 0, ())
        return
    spec = next(m.spec for m in rules.models if m.spec.name == result.model)
    for group in (spec.fit, spec.engagement):
        lines = [h for h in result.breakdown if h.group == group.name]
        raw = sum(h.cents for h in lines if h.kind not in ("cap", "rounding"))
        capped = raw
        if group.max is not None:
            capped = min(capped, group.max)
        if group.min is not None:
            capped = max(capped, group.min)
        assert getattr(result, group.name) == half_away(capped)
        assert sum(h.cents for h in lines) == getattr(result, group.name) * 100
    assert sum(h.cents for h in result.breakdown if h.group == "decay") == result.decay * 100


@PROPERTIES
@given(variant=rulesets, subject=contacts(), events=event_lists())
def test_the_score_is_the_sum_of_its_parts_within_the_clamp(
    variant: tuple[str, RuleSet], subject: Contact, events: list[Event]
) -> None:
    rules = variant[1]
    result = run(rules, subject, events)
    total = result.fit + result.engagement + result.decay
    clamp = next((m.spec.clamp for m in rules.models if m.spec.name == result.model), None)
    if clamp is None:
        assert result.score == total
    else:
        lo, hi = clamp
        assert lo <= result.score <= hi
        assert result.score == min(max(total, lo), hi)


@PROPERTIES
@given(variant=rulesets, subject=contacts(), events=event_lists())
def test_a_stage_is_only_written_forward_unless_demoting_and_never_when_untouchable(
    variant: tuple[str, RuleSet], subject: Contact, events: list[Event]
) -> None:
    rules = variant[1]
    result = run(rules, subject, events)
    if result.model is None:
        assert result.stage_write == "none"
        return
    lifecycle = next(m.spec.lifecycle for m in rules.models if m.spec.name == result.model)
    order = {stage: i for i, stage in enumerate(lifecycle.order)}
    current = subject.lifecycle_stage
    untouchable = current in lifecycle.never_touch or (bool(current) and current not in order)
    if untouchable or result.excluded or result.holdout or lifecycle.mode == "off":
        assert result.stage_write == "none"
    if result.stage_write == "set":
        assert result.stage_target in order
        assert order[result.stage_target] > order.get(current, -1)
    if result.stage_write == "clear_then_set":
        assert lifecycle.demote
        assert result.stage_target in order
        assert order[result.stage_target] < order[current]


@PROPERTIES
@given(variant=rulesets, subject=contacts(), events=event_lists())
def test_every_result_carries_the_rule_set_version_and_a_reason(
    variant: tuple[str, RuleSet], subject: Contact, events: list[Event]
) -> None:
    rules = variant[1]
    result = run(rules, subject, events)
    assert result.version == rules.version
    assert result.contact_id == subject.id
    assert result.excluded == (result.exclusion_reason is not None)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_conflicting_copies_of_one_event_score_the_same_in_any_order(data: st.DataObject) -> None:
    rules = example_rules()
    subject = data.draw(contacts())
    events = data.draw(event_lists())
    if not events:
        return
    original = data.draw(st.sampled_from(events))
    other_age = data.draw(st.integers(min_value=0, max_value=400))
    if isinstance(original, FormSubmission):
        clash: Event = FormSubmission(
            original.event_id,
            ms_ago(other_age),
            original.email,
            original.form_id,
            original.form_name,
            original.page_url,
        )
    else:
        clash = EmailEvent(
            original.event_id, original.kind, ms_ago(other_age), original.email, original.campaign_id, original.url
        )
    assert run(rules, subject, [*events, clash]) == run(rules, subject, [clash, *events])
