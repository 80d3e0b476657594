"""Every operator of the condition language, through compile_condition on a Ctx.

Condition values are built as the config loader leaves them: strings casefolded,
numbers as floats, dates as epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from sync.core.conditions import (
    DAY_MS,
    All,
    AnyOf,
    Condition,
    ContactIdIn,
    CountSpec,
    Ctx,
    EmailDomainIn,
    EmailIn,
    EventCondition,
    EventFilter,
    FreeMail,
    InList,
    Not,
    PropertyTest,
    age_days,
    compile_condition,
    interval_is_empty,
    parse_date_ms,
    parse_number,
    unsatisfiable,
)
from sync.core.model import EMAIL_CLICK, EMAIL_OPEN, FORM_SUBMISSION, Contact, Event
from tests.factories import NOW_MS, contact, contact_with, email_event, form

FREE_MAIL = frozenset({"gmail.com", "yahoo.com"})
HOUR_MS = 3_600_000
JAN_1_2026_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MISSING = None  # the property is not set on the contact


def holds(cond: Condition, subject: Contact, events: Iterable[Event] = ()) -> bool:
    by_kind: dict[str, list[Event]] = {}
    for event in events:
        by_kind.setdefault(event.kind, []).append(event)
    return compile_condition(cond, FREE_MAIL)(Ctx(subject, by_kind, NOW_MS))


def with_prop(name: str, value: str | None) -> Contact:
    return contact() if value is None else contact_with({name: value})


def ms_text(days: float) -> str:
    """A date property `days` ago, as HubSpot's epoch-milliseconds string."""
    return str(NOW_MS - int(days * DAY_MS))


# --- property tests -------------------------------------------------------------

PROPERTY_CASES = [
    # equals / not_equals on text: case-insensitive, a missing or empty value only matches the negative op
    ("equals", "energy", "ENERGY", True),
    ("equals", "energy", "Energy", True),
    ("equals", "energy", "ENERGY2", False),
    ("equals", "energy", "", False),
    ("equals", "energy", MISSING, False),
    ("not_equals", "energy", "FINANCE", True),
    ("not_equals", "energy", "energy", False),
    ("not_equals", "energy", MISSING, True),
    # equals / not_equals on a number: the value is parsed
    ("equals", 5.0, "5", True),
    ("equals", 5.0, "5.0", True),
    ("equals", 5.0, "05", True),
    ("equals", 5.0, "5.1", False),
    ("equals", 5.0, "five", False),
    ("equals", 5.0, MISSING, False),
    ("not_equals", 5.0, "6", True),
    ("not_equals", 5.0, "5.00", False),
    ("not_equals", 5.0, "five", True),
    ("not_equals", 5.0, MISSING, True),
    # in / not_in: a missing value matches only the negative op
    ("in", ("owner", "limited"), "Owner", True),
    ("in", ("owner", "limited"), "none", False),
    ("in", ("owner", "limited"), "", False),
    ("in", ("owner", "limited"), MISSING, False),
    ("in", ("x", 5.0), "5.00", True),
    ("in", ("x", 5.0), "X", True),
    ("in", ("x", 5.0), "6", False),
    ("not_in", ("owner", "limited"), "none", True),
    ("not_in", ("owner", "limited"), "LIMITED", False),
    ("not_in", ("owner", "limited"), MISSING, True),
    ("not_in", ("owner", "limited"), "", True),
    # substring tests: case-insensitive, a list means any
    ("contains", ("ceo", "cto"), "Deputy CEO", True),
    ("contains", ("ceo", "cto"), "cto", True),
    ("contains", ("ceo", "cto"), "Manager", False),
    ("contains", ("ceo", "cto"), MISSING, False),
    ("not_contains", ("ceo", "cto"), "Manager", True),
    ("not_contains", ("ceo", "cto"), "Acting CTO", False),
    ("not_contains", ("ceo", "cto"), MISSING, True),
    ("starts_with", ("https://", "www."), "HTTPS://acme.com", True),
    ("starts_with", ("https://", "www."), "www.acme.com", True),
    ("starts_with", ("https://", "www."), "see https://acme.com", False),
    ("starts_with", ("https://",), MISSING, False),
    ("ends_with", (".io", ".ai"), "startup.IO", True),
    ("ends_with", (".io", ".ai"), "startup.io/x", False),
    ("ends_with", (".io",), MISSING, False),
    # exists: an empty string is not a value
    ("exists", True, "x", True),
    ("exists", True, "", False),
    ("exists", True, MISSING, False),
    ("exists", False, MISSING, True),
    ("exists", False, "", True),
    ("exists", False, "x", False),
    # numeric comparisons: a non-numeric, infinite or missing value never matches
    ("gt", 100.0, "101", True),
    ("gt", 100.0, "100", False),
    ("gte", 100.0, "100", True),
    ("gte", 100.0, "99.5", False),
    ("lt", 100.0, "99.5", True),
    ("lt", 100.0, "100", False),
    ("lte", 100.0, "100.0", True),
    ("lte", 100.0, "1e3", False),
    ("gt", 100.0, "lots", False),
    ("lt", 100.0, "lots", False),
    ("gt", 100.0, "inf", False),
    ("lt", 100.0, "-inf", False),
    ("lte", 100.0, "nan", False),
    ("gte", 0.0, "", False),
    ("gte", 0.0, MISSING, False),
    # date comparisons: ISO dates, ISO date-times and ms digits all parse
    ("date_gt", JAN_1_2026_MS, "2026-01-02", True),
    ("date_gt", JAN_1_2026_MS, "2026-01-01T00:00:00Z", False),
    ("date_gte", JAN_1_2026_MS, "2026-01-01T00:00:00Z", True),
    ("date_gte", JAN_1_2026_MS, "2025-12-31T23:59:59Z", False),
    ("date_lt", JAN_1_2026_MS, "2025-12-31", True),
    ("date_lt", JAN_1_2026_MS, str(JAN_1_2026_MS), False),
    ("date_lte", JAN_1_2026_MS, str(JAN_1_2026_MS), True),
    ("date_lte", JAN_1_2026_MS, "2026-01-01T00:00:01+00:00", False),
    ("date_gt", JAN_1_2026_MS, "not a date", False),
    ("date_lt", JAN_1_2026_MS, MISSING, False),
]


@pytest.mark.parametrize(("op", "value", "prop", "expected"), PROPERTY_CASES)
def test_property_operator(op: str, value: object, prop: str | None, expected: bool) -> None:
    cond = PropertyTest("p", op, value)  # type: ignore[arg-type]
    assert holds(cond, with_prop("p", prop)) is expected


def with_company_prop(name: str, value: str | None) -> Contact:
    """A contact whose primary company holds `name` (not set when None); the contact's own `name` differs."""
    company = {} if value is None else {name: value}
    return Contact("1", {name: "contact's own value"}, company_properties=company)


@pytest.mark.parametrize(("op", "value", "prop", "expected"), PROPERTY_CASES)
def test_every_operator_reads_company_properties(op: str, value: object, prop: str | None, expected: bool) -> None:
    cond = PropertyTest("company.p", op, value)  # type: ignore[arg-type]
    assert holds(cond, with_company_prop("p", prop)) is expected


@pytest.mark.parametrize(("op", "value", "prop", "expected"), [c for c in PROPERTY_CASES if c[2] is MISSING])
def test_a_contact_without_company_reads_every_company_value_as_missing(
    op: str, value: object, prop: None, expected: bool
) -> None:
    cond = PropertyTest("company.p", op, value)  # type: ignore[arg-type]
    assert holds(cond, Contact("1", {"p": "x"})) is expected


def test_company_tests_combine_with_contact_tests() -> None:
    cond = All((PropertyTest("company.industry", "equals", "energy"), Not(PropertyTest("industry", "exists", True))))
    energy = Contact("1", {}, company_properties={"industry": "ENERGY"})
    assert holds(cond, energy) is True
    assert holds(cond, Contact("1", {"industry": "ENERGY"}, company_properties={"industry": "RETAIL"})) is False


def test_an_unknown_operator_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        compile_condition(PropertyTest("p", "roughly", "x"), FREE_MAIL)


AGE_CASES = [
    # within_days N matches whole-day ages 0..N inclusive; older_than_days N matches ages above N
    ("within_days", 30, 0, True),
    ("within_days", 30, 30, True),
    ("within_days", 30, 30 + 23 / 24, True),  # 30 days 23 hours is 30
    ("within_days", 30, 31, False),
    ("within_days", 59, 59 + 23 / 24, True),  # 59 days 23 hours counts as 59
    ("within_days", 59, 60, False),
    ("within_days", 0, 23 / 24, True),
    ("within_days", 0, 1, False),
    ("within_days", 30, -2, True),  # a future date is age 0
    ("older_than_days", 30, 30 + 23 / 24, False),
    ("older_than_days", 30, 31, True),
    ("older_than_days", 59, 59 + 23 / 24, False),
    ("older_than_days", 59, 60, True),
    ("older_than_days", 0, 0.5, False),
    ("older_than_days", 0, 1, True),
]


@pytest.mark.parametrize(("op", "days", "age", "expected"), AGE_CASES)
def test_date_recency_at_day_boundaries(op: str, days: int, age: float, expected: bool) -> None:
    assert holds(PropertyTest("p", op, days), with_prop("p", ms_text(age))) is expected


@pytest.mark.parametrize(("op", "days", "age", "expected"), AGE_CASES[:4])
def test_company_date_recency_counts_days_at_now(op: str, days: int, age: float, expected: bool) -> None:
    assert holds(PropertyTest("company.p", op, days), with_company_prop("p", ms_text(age))) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-10-20", True),  # ISO date: 12 days ago at 12:00 -> 12
        ("2026-10-01T12:00:00Z", False),  # exactly 31 days
        ("garbage", False),
        ("", False),
        (MISSING, False),
    ],
)
def test_within_days_parses_iso_dates_and_rejects_the_rest(value: str | None, expected: bool) -> None:
    assert holds(PropertyTest("p", "within_days", 30), with_prop("p", value)) is expected


@pytest.mark.parametrize("op", ["within_days", "older_than_days"])
def test_date_recency_never_matches_a_missing_date(op: str) -> None:
    assert holds(PropertyTest("p", op, 10), contact()) is False


# --- email, id and list tests ------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("a@acme.com", True),
        ("a@eu.acme.com", True),
        ("a@x.eu.acme.com", True),
        ("a@notacme.com", False),
        ("a@acme.com.evil.io", False),
        ("a@acme.co", False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_email_domain_in_covers_subdomains_only(email: str, expected: bool) -> None:
    assert holds(EmailDomainIn(frozenset({"acme.com", "partner.io"})), contact(email=email)) is expected


@pytest.mark.parametrize(
    ("email", "expected", "is_free"),
    [
        ("jo@gmail.com", True, True),
        ("jo@mail.yahoo.com", True, True),
        ("jo@buyer-corp.com", False, True),
        ("", False, True),
        ("jo@buyer-corp.com", True, False),
        ("jo@gmail.com", False, False),
        ("", False, False),  # no address: neither free-mail nor a company address
    ],
)
def test_free_mail(email: str, expected: bool, is_free: bool) -> None:
    assert holds(FreeMail(is_free), contact(email=email)) is expected


@pytest.mark.parametrize(("email", "expected"), [("test@acme-eu.com", True), ("other@acme-eu.com", False), ("", False)])
def test_email_in(email: str, expected: bool) -> None:
    assert holds(EmailIn(frozenset({"test@acme-eu.com"})), contact(email=email)) is expected


@pytest.mark.parametrize(("cid", "expected"), [("901", True), ("9010", False), ("1", False)])
def test_contact_id_in(cid: str, expected: bool) -> None:
    assert holds(ContactIdIn(frozenset({"901", "902"})), contact(cid=cid)) is expected


@pytest.mark.parametrize(
    ("lists", "expected"),
    [(frozenset({42}), True), (frozenset({7, 42}), True), (frozenset({7}), False), (frozenset(), False)],
)
def test_in_list(lists: frozenset[int], expected: bool) -> None:
    assert holds(InList(frozenset({42, 43})), contact(lists=lists)) is expected


# --- event conditions --------------------------------------------------------------

OPEN = EventFilter(kind=EMAIL_OPEN)


def opens(n: int, days_ago: float = 1) -> list[Event]:
    return [email_event(f"o{i}", EMAIL_OPEN, days_ago) for i in range(n)]


@pytest.mark.parametrize(
    ("count", "n", "expected"),
    [
        (CountSpec(), 0, False),
        (CountSpec(), 1, True),
        (CountSpec(at_least=2), 1, False),
        (CountSpec(at_least=2), 2, True),
        (CountSpec(at_least=2), 5, True),
        (CountSpec(at_most=2), 0, True),  # at_most matches a contact with no event
        (CountSpec(at_most=2), 2, True),
        (CountSpec(at_most=2), 3, False),
        (CountSpec(exactly=2), 1, False),
        (CountSpec(exactly=2), 2, True),
        (CountSpec(exactly=2), 3, False),
        (CountSpec(exactly=0), 0, True),
        (CountSpec(between=(2, 3)), 1, False),
        (CountSpec(between=(2, 3)), 2, True),
        (CountSpec(between=(2, 3)), 3, True),
        (CountSpec(between=(2, 3)), 4, False),
        (CountSpec(at_least=1, at_most=2), 0, False),
        (CountSpec(at_least=1, at_most=2), 2, True),
    ],
)
def test_event_count(count: CountSpec, n: int, expected: bool) -> None:
    assert holds(EventCondition(OPEN, count), contact(), opens(n)) is expected


@pytest.mark.parametrize(
    ("count", "bounds"),
    [
        (CountSpec(), (1, None)),
        (CountSpec(at_least=3), (3, None)),
        (CountSpec(at_most=2), (0, 2)),
        (CountSpec(exactly=4), (4, 4)),
        (CountSpec(between=(2, 5)), (2, 5)),
        (CountSpec(at_least=3, between=(2, 5)), (3, 5)),
        (CountSpec(at_most=4, between=(2, 5)), (2, 4)),
    ],
)
def test_count_bounds(count: CountSpec, bounds: tuple[int, int | None]) -> None:
    assert count.bounds() == bounds


@pytest.mark.parametrize(
    ("flt", "events", "expected"),
    [
        (EventFilter(EMAIL_OPEN, within_days=14), [email_event("o", EMAIL_OPEN, 14 + 23 / 24)], True),
        (EventFilter(EMAIL_OPEN, within_days=14), [email_event("o", EMAIL_OPEN, 15)], False),
        (EventFilter(EMAIL_OPEN), [email_event("o", EMAIL_OPEN, 1, filtered=True)], False),
        (EventFilter(EMAIL_OPEN, include_filtered=True), [email_event("o", EMAIL_OPEN, 1, filtered=True)], True),
        (EventFilter(EMAIL_OPEN), [email_event("k", EMAIL_CLICK, 1)], False),
        (
            EventFilter(EMAIL_CLICK, url_contains=("/pricing",)),
            [email_event("k", EMAIL_CLICK, 1, url="/PRICING")],
            True,
        ),
        (EventFilter(EMAIL_CLICK, url_contains=("/pricing",)), [email_event("k", EMAIL_CLICK, 1, url="/blog")], False),
        (EventFilter(EMAIL_OPEN, campaign_ids=("c1",)), [email_event("o", EMAIL_OPEN, 1, campaign="c1")], True),
        (EventFilter(EMAIL_OPEN, campaign_ids=("c1",)), [email_event("o", EMAIL_OPEN, 1, campaign="c2")], False),
        (EventFilter(FORM_SUBMISSION, form_ids=("f1",)), [form("s", 1, form_id="f1")], True),
        (EventFilter(FORM_SUBMISSION, form_ids=("f1",)), [form("s", 1, form_id="f2")], False),
        (EventFilter(FORM_SUBMISSION, form_name_contains=("demo",)), [form("s", 1, name="Book a DEMO")], True),
        (EventFilter(FORM_SUBMISSION, form_name_contains=("demo",)), [form("s", 1, name="Ebook")], False),
        (EventFilter(FORM_SUBMISSION, page_url_contains=("/pricing",)), [form("s", 1, page_url="/pricing?x")], True),
        (EventFilter(FORM_SUBMISSION, page_url_contains=("/pricing",)), [form("s", 1, page_url="/about")], False),
        (
            EventFilter(FORM_SUBMISSION, form_ids=("f1",), form_name_contains=("demo",)),
            [form("s", 1, form_id="f1", name="Ebook"), form("t", 1, form_id="f2", name="Demo")],
            False,  # every filter must hold for the same event
        ),
    ],
)
def test_event_filters(flt: EventFilter, events: list[Event], expected: bool) -> None:
    assert holds(EventCondition(flt), contact(), events) is expected


# --- combinators ---------------------------------------------------------------------

YES = PropertyTest("p", "exists", True)
NO = PropertyTest("p", "exists", False)


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (All((YES, YES)), True),
        (All((YES, NO)), False),
        (All(()), True),
        (AnyOf((NO, YES)), True),
        (AnyOf((NO, NO)), False),
        (AnyOf(()), False),
        (Not(YES), False),
        (Not(NO), True),
        (Not(All((YES, NO))), True),
        (AnyOf((NO, All((YES, Not(NO))))), True),
    ],
)
def test_combinators(cond: Condition, expected: bool) -> None:
    assert holds(cond, contact(p="set")) is expected


# --- static checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gt", "gte", "lt", "lte", "expected"),
    [
        (None, None, None, None, False),
        (10.0, None, None, None, False),
        (10.0, None, 5.0, None, True),
        (None, 5.0, None, 5.0, False),  # exactly 5
        (5.0, None, None, 5.0, True),
        (None, 5.0, 5.0, None, True),
        (5.0, None, 5.0, None, True),
        (5.0, 7.0, None, 7.0, False),  # gte 7 is the tighter lower bound: exactly 7
        (5.0, 3.0, None, 5.0, True),  # gt 5 is the tighter lower bound
        (None, 1.0, 10.0, 3.0, False),
        (None, 4.0, 10.0, 3.0, True),  # lte 3 is the tighter upper bound
    ],
)
def test_interval_is_empty(
    gt: float | None, gte: float | None, lt: float | None, lte: float | None, expected: bool
) -> None:
    assert interval_is_empty(gt, gte, lt, lte) is expected


@pytest.mark.parametrize(
    ("tests", "why"),
    [
        ([("gt", 10.0), ("lt", 5.0)], "numeric bounds"),
        ([("date_gt", JAN_1_2026_MS), ("date_lt", JAN_1_2026_MS)], "date bounds"),
        ([("within_days", 30), ("older_than_days", 30)], "within_days and older_than_days"),
        ([("exists", False), ("equals", "x")], "exists: false"),
        ([("in", ())], "in has an empty list"),
        ([("contains", ())], "contains has an empty list"),
        ([("equals", "x"), ("not_equals", "x")], "equals and not_equals"),
        ([("equals", "x"), ("in", ("y", "z"))], "not in the in list"),
        ([("equals", "x"), ("not_in", ("x",))], "in the not_in list"),
    ],
)
def test_unsatisfiable_names_the_reason(tests: list[tuple[str, object]], why: str) -> None:
    reason = unsatisfiable([PropertyTest("p", op, value) for op, value in tests])  # type: ignore[arg-type]
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize(
    "tests",
    [
        [("gt", 5.0), ("lt", 10.0)],
        [("within_days", 30), ("older_than_days", 10)],
        [("exists", False), ("not_equals", "x"), ("not_in", ("y",))],
        [("equals", "x"), ("in", ("x", "y"))],
        [("equals", "x"), ("not_equals", "y")],
        [("contains", ("a",)), ("not_contains", ("b",))],
    ],
)
def test_satisfiable_tests_are_accepted(tests: list[tuple[str, object]]) -> None:
    assert unsatisfiable([PropertyTest("p", op, value) for op, value in tests]) is None  # type: ignore[arg-type]


def test_numeric_equals_with_a_text_in_list_is_satisfiable() -> None:
    tests = [PropertyTest("p", "equals", 5.0), PropertyTest("p", "in", ("5", "10"))]
    assert holds(All(tuple(tests)), contact(p="5"))
    assert unsatisfiable(tests) is None


# --- parsing helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42.0),
        ("-3.5", -3.5),
        (" 250 ", 250.0),
        ("1e3", 1000.0),
        ("", None),
        (None, None),
        ("abc", None),
        ("12 employees", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-Infinity", None),
        ("1e999", None),  # overflows to infinity
    ],
)
def test_parse_number(text: str | None, expected: float | None) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000", 1000.0),
        ("1,000,000", 1_000_000.0),
        ("-12,345.5", -12345.5),
        ("+1,000", 1000.0),
        (" 1,000 ", 1000.0),
        ("\u00a01,000\u00a0", 1000.0),  # no-break spaces around
        ("+5", 5.0),
        ("１０００", 1000.0),  # full-width digits
        ("１，０００", 1000.0),  # full-width comma too
        ("－５", -5.0),  # full-width minus
        ("１．５", 1.5),
        ("1_000", None),  # Python's digit separator: never a HubSpot number
        ("1＿000", None),
        ("1,5", None),  # a decimal comma must not become 15
        ("1,00", None),
        ("1,0000", None),
        ("12,34,567", None),
        (",100", None),
        ("1,000,", None),
        ("1,000e3", None),
        ("1 000", None),  # spaces inside: not a number
        ("1\u00a0000", None),
        ("１ ０００", None),
    ],
)
def test_parse_number_edge_forms(text: str, expected: float | None) -> None:
    """README "Edge data": thousands separators and full-width forms read; 1_000, 1,5 and inner spaces do not."""
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1793534400000", 1_793_534_400_000),
        ("-86400000", -86_400_000),
        (" 1793534400000 ", 1_793_534_400_000),
        ("2026-01-01", JAN_1_2026_MS),
        ("2026-01-01T00:00:00", JAN_1_2026_MS),  # no zone: UTC
        ("2026-01-01T00:00:00Z", JAN_1_2026_MS),
        ("2026-01-01T00:00:00.000Z", JAN_1_2026_MS),
        ("2026-01-01T02:00:00+02:00", JAN_1_2026_MS),
        ("", None),
        (None, None),
        ("last tuesday", None),
        ("2026-13-01", None),
        ("-", None),
    ],
)
def test_parse_date_ms(text: str | None, expected: int | None) -> None:
    assert parse_date_ms(text) == expected


@pytest.mark.parametrize("text", ["--5", "²"])
def test_parse_date_ms_returns_none_for_digit_like_garbage(text: str) -> None:
    assert parse_date_ms(text) is None


@pytest.mark.parametrize(
    ("elapsed_ms", "expected"),
    [
        (0, 0),
        (DAY_MS - 1, 0),
        (DAY_MS, 1),
        (59 * DAY_MS + 23 * HOUR_MS, 59),
        (60 * DAY_MS, 60),
        (-5 * DAY_MS, 0),  # a future time counts as 0
    ],
)
def test_age_days_counts_whole_days(elapsed_ms: int, expected: int) -> None:
    assert age_days(NOW_MS, NOW_MS - elapsed_ms) == expected
