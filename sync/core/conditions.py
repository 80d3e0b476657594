"""The condition language: tests on contact properties, email, lists and events.

Conditions are plain frozen values. `compile_condition` turns one into a
predicate over a `Ctx` (one contact, its events, `now`) once per rule set, so
scoring a contact runs closures and never re-reads the config.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sync.core.model import EMAIL_BOUNCE, EMAIL_UNBOUNCE, Company, Contact, Event

DAY_MS = 86_400_000

# `company.<property>` in a contact rule reads the contact's primary company (HubSpot names never hold a dot).
COMPANY_PREFIX = "company."
_NO_PROPERTIES: Mapping[str, str] = {}

# Operators on one property. Values are normalised by the config loader:
# strings are casefolded, numbers are floats, dates are epoch milliseconds.
STRING_OPS = frozenset({"contains", "not_contains", "starts_with", "ends_with"})
NUMBER_OPS = frozenset({"gt", "gte", "lt", "lte"})
DATE_OPS = frozenset({"date_gt", "date_gte", "date_lt", "date_lte"})
AGE_OPS = frozenset({"within_days", "older_than_days"})
SET_OPS = frozenset({"in", "not_in"})
PROPERTY_OPS = STRING_OPS | NUMBER_OPS | DATE_OPS | AGE_OPS | SET_OPS | {"equals", "not_equals", "exists"}

T = TypeVar("T")
Scalar = str | float
TestValue = str | float | int | bool | tuple[Scalar, ...] | tuple[str, ...]


Aged = list[tuple[int, Event]]
_NO_EVENTS: Aged = []


def age_days(now_ms: int, at_ms: int) -> int:
    """Whole days elapsed at `now` (59 days 23 hours is 59); a future time counts as 0."""
    delta = now_ms - at_ms
    return delta // DAY_MS if delta > 0 else 0


class Ctx:
    """One contact under evaluation: its properties, email domain, events with their ages, `now`.

    Events are held by type as (age in whole days, event), bot-filtered ones apart,
    so each event's age is computed once however many rules look at it.
    """

    __slots__ = (
        "_company",
        "_merged",
        "company_props",
        "contact",
        "domain",
        "email",
        "filtered",
        "now_ms",
        "props",
        "unfiltered",
    )

    def __init__(self, contact: Contact, by_kind: Mapping[str, Sequence[Event]], now_ms: int) -> None:
        """A context from events already grouped by type (and free of duplicates)."""
        unfiltered: dict[str, Aged] = {}
        filtered: dict[str, Aged] = {}
        for kind, events in by_kind.items():
            for event in events:
                if event.at_ms > now_ms:
                    continue
                target = filtered if event.filtered else unfiltered
                target.setdefault(kind, []).append((age_days(now_ms, event.at_ms), event))
        self._setup(contact, now_ms, unfiltered, filtered)

    def _setup(self, contact: Contact, now_ms: int, unfiltered: dict[str, Aged], filtered: dict[str, Aged]) -> None:
        self.contact = contact
        self.props = contact.properties
        self.email = contact.email
        self.domain = contact.email.rpartition("@")[2] if "@" in contact.email else ""
        self.now_ms = now_ms
        self.unfiltered = unfiltered
        self.filtered = filtered
        self._merged: dict[str, Aged] = {}
        self.company_props = contact.company_properties
        self._company: Ctx | None = None

    @classmethod
    def for_company(cls, company: Company, now_ms: int) -> Ctx:
        """The context account rules read: the company's own properties (`company.<property>` reads them too)."""
        return cls(Contact(company.id, company.properties, company_properties=company.properties), {}, now_ms)

    def company_view(self) -> Ctx:
        """A context whose properties are the contact's primary company's (none: every value missing), built
        on first use, so a contact costs nothing extra unless a rule reads `company.<property>`."""
        view = self._company
        if view is None:
            props = self.company_props if self.company_props is not None else _NO_PROPERTIES
            view = Ctx(Contact(self.contact.id, props, company_properties=props), {}, self.now_ms)
            self._company = view
        return view

    @classmethod
    def build(cls, contact: Contact, events: Iterable[Event], now_ms: int, kinds: Collection[str]) -> Ctx:
        """The context for scoring: events of the listed types only, each event id counted once.

        Should two copies of one id disagree, the earliest is kept (ties broken by their fields), so the
        order they come in never matters.
        """
        by_id = _unique_events(events, now_ms, kinds)
        _lift_unbounced(by_id)
        ctx = cls(contact, {}, now_ms)
        ctx.unfiltered, ctx.filtered = _aged_by_kind(by_id, now_ms)
        return ctx

    def aged(self, kind: str, include_filtered: bool = False) -> Aged:
        """(age in whole days, event) of the contact's events of one type.

        Callers must not modify the list: it is shared by every rule that asks.
        """
        if not include_filtered:
            return self.unfiltered.get(kind, _NO_EVENTS)
        merged = self._merged.get(kind)
        if merged is None:
            merged = self._merged[kind] = self.unfiltered.get(kind, _NO_EVENTS) + self.filtered.get(kind, _NO_EVENTS)
        return merged


def _unique_events(events: Iterable[Event], now_ms: int, kinds: Collection[str]) -> dict[str, dict[str, Event]]:
    """The events of the listed types up to `now`, by type and then id, one copy of each id (see Ctx.build)."""
    by_id: dict[str, dict[str, Event]] = {}
    for event in events:
        kind = event.kind
        if kind not in kinds or event.at_ms > now_ms:
            continue  # a score is as of `now`: later events do not exist yet
        bucket = by_id.get(kind)
        if bucket is None:
            by_id[kind] = {event.event_id: event}
            continue
        prior = bucket.get(event.event_id)
        if prior is None or _earlier(event, prior):
            bucket[event.event_id] = event
    return by_id


def _lift_unbounced(by_id: dict[str, dict[str, Event]]) -> None:
    """Drop the un-bounces, and with them every bounce up to the latest one's time."""
    unbounces = by_id.pop(EMAIL_UNBOUNCE, None)
    if unbounces is None or EMAIL_BOUNCE not in by_id:
        return
    # An un-bounce lifts every bounce of the contact up to its time: those no longer count.
    lifted = max([e.at_ms for e in unbounces.values()])
    kept_bounces = {k: e for k, e in by_id[EMAIL_BOUNCE].items() if e.at_ms > lifted}
    if kept_bounces:
        by_id[EMAIL_BOUNCE] = kept_bounces
    else:
        del by_id[EMAIL_BOUNCE]


def _aged_by_kind(by_id: Mapping[str, Mapping[str, Event]], now_ms: int) -> tuple[dict[str, Aged], dict[str, Aged]]:
    """(age in whole days, event) by type: the events that count, and the bot-filtered ones apart."""
    unfiltered: dict[str, Aged] = {}
    filtered: dict[str, Aged] = {}
    for kind, bucket in by_id.items():
        kept: Aged = []
        dropped: Aged = []
        for event in bucket.values():
            delta = now_ms - event.at_ms
            item = (delta // DAY_MS if delta > 0 else 0, event)
            if event.filtered:
                dropped.append(item)
            else:
                kept.append(item)
        if kept:
            unfiltered[kind] = kept
        if dropped:
            filtered[kind] = dropped
    return unfiltered, filtered


def _earlier(a: Event, b: Event) -> bool:
    """A total order on two copies of one event: the earlier, then (rare) the smaller repr."""
    if a.at_ms != b.at_ms:
        return a.at_ms < b.at_ms
    return repr(a) < repr(b)


Predicate = Callable[[Ctx], bool]


def company_property(name: str) -> str | None:
    """The company property a `company.<property>` name reads; None for a contact property."""
    return name[len(COMPANY_PREFIX) :] if name.startswith(COMPANY_PREFIX) else None


def on_company(test: Callable[[Ctx], T]) -> Callable[[Ctx], T]:
    """`test` run on the contact's primary company instead of the contact."""
    return lambda ctx: test(ctx.company_view())


def parse_number(value: str | None) -> float | None:
    """HubSpot sends numbers as strings; None for a missing or non-numeric value (README "Edge data").

    Read: what float() reads (a sign, decimals, an exponent, spaces around), thousands separated by commas
    in groups of three ("1,000", "-12,345.5"), full-width and other Unicode digits ("１０００", "－５").
    Not a number: "1_000" (Python's digit separator, never HubSpot's), "1,5" and "1,00" (a decimal comma
    or a typo must not become 15 or 100), spaces inside ("1 000"), inf and nan.
    """
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return _unusual_number(value)
    if "_" in value:
        return None
    return number if math.isfinite(number) else None


_THOUSANDS = re.compile(r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")


def _unusual_number(value: str) -> float | None:
    """The slow path of parse_number: full-width forms folded (NFKC), then thousands separators."""
    text = (value if value.isascii() else unicodedata.normalize("NFKC", value)).strip()
    if "_" in text:
        return None
    if "," in text:
        if _THOUSANDS.fullmatch(text) is None:
            return None
        text = text.replace(",", "")
    elif text == value:
        return None  # float() already refused exactly this text
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_date_ms(value: str | None) -> int | None:
    """Epoch milliseconds from HubSpot's date forms: ms digits, ISO date or ISO date-time."""
    if not value:
        return None
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return int(text)
        parsed = datetime.fromisoformat(text)
    except ValueError:  # '--5', superscript digits, not a date at all
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def in_domains(domain: str, domains: frozenset[str]) -> bool:
    """Whether `domain` or a parent of it is listed: 'eu.acme.com' matches an entry 'acme.com'."""
    while domain:
        if domain in domains:
            return True
        dot = domain.find(".")
        if dot < 0:
            return False
        domain = domain[dot + 1 :]
    return False


# --- condition values -------------------------------------------------------


@dataclass(frozen=True)
class PropertyTest:
    """`property <op> value`; a missing property fails every test but the negative ones."""

    property: str
    op: str
    value: TestValue


@dataclass(frozen=True)
class EmailDomainIn:
    domains: frozenset[str]


@dataclass(frozen=True)
class FreeMail:
    expected: bool


@dataclass(frozen=True)
class EmailIn:
    emails: frozenset[str]


@dataclass(frozen=True)
class ContactIdIn:
    ids: frozenset[str]


@dataclass(frozen=True)
class InList:
    list_ids: frozenset[int]


@dataclass(frozen=True)
class CountSpec:
    """How many matching events a rule wants; the default is at least one."""

    at_least: int | None = None
    at_most: int | None = None
    exactly: int | None = None
    between: tuple[int, int] | None = None

    def bounds(self) -> tuple[int, int | None]:
        lo, hi = 0, None
        if self.at_least is not None:
            lo = max(lo, self.at_least)
        if self.at_most is not None:
            hi = self.at_most
        if self.exactly is not None:
            lo = max(lo, self.exactly)
            hi = self.exactly if hi is None else min(hi, self.exactly)
        if self.between is not None:
            lo = max(lo, self.between[0])
            hi = self.between[1] if hi is None else min(hi, self.between[1])
        if (self.at_least, self.at_most, self.exactly, self.between) == (None, None, None, None):
            lo = 1
        return lo, hi


@dataclass(frozen=True)
class EventFilter:
    """Which of a contact's events a rule looks at. Strings are casefolded."""

    kind: str
    form_ids: tuple[str, ...] = ()
    form_name_contains: tuple[str, ...] = ()
    page_url_contains: tuple[str, ...] = ()
    url_contains: tuple[str, ...] = ()
    campaign_ids: tuple[str, ...] = ()
    within_days: int | None = None
    include_filtered: bool = False
    # For email_bounce: "hard" (the default), "soft" or "any" bounces. Ignored for other kinds.
    bounce: str = "hard"

    def matcher(self) -> Callable[[Event], bool] | None:
        """A test of one event's attributes (not its age, not bot filtering); None when none is set."""
        checks = self._checks()
        if not checks:
            return None
        if len(checks) == 1:
            return checks[0]

        def every(event: Event) -> bool:
            for check in checks:  # noqa: SIM110 - a plain loop beats all() over a generator here
                if not check(event):
                    return False
            return True

        return every

    def _checks(self) -> list[Callable[[Event], bool]]:
        """One test per attribute the filter sets."""
        checks: list[Callable[[Event], bool]] = []
        if self.form_ids:
            checks.append(_attr_in("form_id", self.form_ids))
        for attr, needles in (
            ("form_name", self.form_name_contains),
            ("page_url", self.page_url_contains),
            ("url", self.url_contains),
        ):
            if needles:
                checks.append(_attr_contains(attr, needles))
        if self.campaign_ids:
            checks.append(_attr_in("campaign_id", self.campaign_ids))
        if self.kind == EMAIL_BOUNCE and self.bounce != "any":
            soft = self.bounce == "soft"
            checks.append(lambda e: getattr(e, "soft_bounce", False) is soft)
        return checks


def _attr_in(attr: str, values: tuple[str, ...]) -> Callable[[Event], bool]:
    allowed = frozenset(values)
    return lambda e: getattr(e, attr, None) in allowed


def _attr_contains(attr: str, needles: tuple[str, ...]) -> Callable[[Event], bool]:
    def check(event: Event) -> bool:
        text: str = getattr(event, attr, "").casefold()
        for needle in needles:  # noqa: SIM110 - a plain loop beats any() over a generator here
            if needle in text:
                return True
        return False

    return check


@dataclass(frozen=True)
class EventCondition:
    filter: EventFilter
    count: CountSpec = CountSpec()


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = (
    PropertyTest | EmailDomainIn | FreeMail | EmailIn | ContactIdIn | InList | EventCondition | All | AnyOf | Not
)


# --- compilation --------------------------------------------------------------


def compile_condition(cond: Condition, free_mail: frozenset[str]) -> Predicate:
    """A predicate for `cond`; `free_mail` is the domain list `free_mail:` tests against."""
    match cond:
        case All(items=items):
            preds = tuple(compile_condition(i, free_mail) for i in items)
            return lambda ctx: all(p(ctx) for p in preds)
        case AnyOf(items=items):
            preds = tuple(compile_condition(i, free_mail) for i in items)
            return lambda ctx: any(p(ctx) for p in preds)
        case Not(item=item):
            pred = compile_condition(item, free_mail)
            return lambda ctx: not pred(ctx)
    return _compile_test(cond, free_mail)


def _compile_test(cond: Condition, free_mail: frozenset[str]) -> Predicate:
    """The predicate of one test (a condition that holds no other)."""
    match cond:
        case PropertyTest(property=name, op=op, value=value):
            company_name = company_property(name)
            if company_name is not None:
                return on_company(_compile_property_test(PropertyTest(company_name, op, value)))
            return _compile_property_test(cond)
        case EmailDomainIn(domains=domains):
            return lambda ctx: in_domains(ctx.domain, domains)
        case FreeMail(expected=expected):
            return lambda ctx: bool(ctx.domain) and in_domains(ctx.domain, free_mail) is expected
        case EmailIn(emails=emails):
            return lambda ctx: ctx.email in emails
        case ContactIdIn(ids=ids):
            return lambda ctx: ctx.contact.id in ids
        case InList(list_ids=list_ids):
            return lambda ctx: not list_ids.isdisjoint(ctx.contact.list_ids)
        case EventCondition():
            return _compile_event_condition(cond)
    raise TypeError(f"not a condition: {cond!r}")  # pragma: no cover - exhaustive match


EventCounter = Callable[[Ctx], Aged]


def compile_event_filter(flt: EventFilter) -> EventCounter:
    """A function listing (age in days, event) for the contact's events that pass `flt`.

    The result may be a list shared with other rules: do not modify it.
    """
    match = flt.matcher()
    window = flt.within_days
    kind, with_filtered = flt.kind, flt.include_filtered
    if match is None and window is None:
        return lambda ctx: ctx.aged(kind, with_filtered)
    if match is None:
        return lambda ctx: [x for x in ctx.aged(kind, with_filtered) if x[0] <= window]  # type: ignore[operator]
    if window is None:
        return lambda ctx: [x for x in ctx.aged(kind, with_filtered) if match(x[1])]
    return lambda ctx: [x for x in ctx.aged(kind, with_filtered) if x[0] <= window and match(x[1])]


def _compile_event_condition(cond: EventCondition) -> Predicate:
    lo, hi = cond.count.bounds()
    matching = compile_event_filter(cond.filter)

    def test(ctx: Ctx) -> bool:
        n = len(matching(ctx))
        return n >= lo and (hi is None or n <= hi)

    return test


def _compile_property_test(test: PropertyTest) -> Predicate:
    compile_op = _PROPERTY_COMPILERS.get(test.op)
    if compile_op is None:
        raise ValueError(f"unknown operator {test.op!r}")
    return compile_op(test.property, test.op, test.value)


def _exists(name: str, op: str, value: TestValue) -> Predicate:
    want = bool(value)
    return lambda ctx: bool(ctx.props.get(name)) is want


def _equals(name: str, op: str, value: TestValue) -> Predicate:
    negate = op == "not_equals"
    if isinstance(value, float):
        number = value

        def eq_num(ctx: Ctx) -> bool:
            got = parse_number(ctx.props.get(name))
            return (got is not None and got == number) is not negate

        return eq_num
    text = str(value)

    def eq_str(ctx: Ctx) -> bool:
        got = ctx.props.get(name)
        return (bool(got) and got.casefold() == text) is not negate  # type: ignore[union-attr]

    return eq_str


def _member(name: str, op: str, value: TestValue) -> Predicate:
    assert isinstance(value, tuple)
    negate = op == "not_in"
    texts = frozenset(v for v in value if isinstance(v, str))
    numbers = frozenset(v for v in value if isinstance(v, float))

    def member(ctx: Ctx) -> bool:
        got = ctx.props.get(name)
        if not got:
            return negate
        hit = got.casefold() in texts or (bool(numbers) and parse_number(got) in numbers)
        return hit is not negate

    return member


def _substring(name: str, op: str, value: TestValue) -> Predicate:
    assert isinstance(value, tuple)
    found = _text_test(op, tuple(str(v) for v in value))
    negate = op == "not_contains"

    def substring(ctx: Ctx) -> bool:
        got = ctx.props.get(name)
        if not got:
            return negate
        return found(got.casefold()) is not negate

    return substring


def _text_test(op: str, needles: tuple[str, ...]) -> Callable[[str], bool]:
    """Whether a (casefolded) text holds, starts with or ends with one of `needles`."""
    if op == "starts_with":
        return lambda text: text.startswith(needles)
    if op == "ends_with":
        return lambda text: text.endswith(needles)
    return lambda text: any(n in text for n in needles)  # contains and not_contains


def _number(name: str, op: str, value: TestValue) -> Predicate:
    bound = float(value)  # type: ignore[arg-type]
    compare = _COMPARE[op]

    def num(ctx: Ctx) -> bool:
        got = parse_number(ctx.props.get(name))
        return got is not None and compare(got, bound)

    return num


def _date(name: str, op: str, value: TestValue) -> Predicate:
    bound_ms = int(value)  # type: ignore[arg-type]
    compare = _COMPARE[op[5:]]

    def date(ctx: Ctx) -> bool:
        got = parse_date_ms(ctx.props.get(name))
        return got is not None and compare(got, bound_ms)

    return date


def _age(name: str, op: str, value: TestValue) -> Predicate:
    days = int(value)  # type: ignore[arg-type]
    within = op == "within_days"

    def age(ctx: Ctx) -> bool:
        got = parse_date_ms(ctx.props.get(name))
        if got is None:
            return False
        elapsed = age_days(ctx.now_ms, got)
        return elapsed <= days if within else elapsed > days

    return age


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}

PropertyCompiler = Callable[[str, str, TestValue], Predicate]

# Each operator's compiler: (property name, operator, value) -> predicate.
_PROPERTY_COMPILERS: dict[str, PropertyCompiler] = {
    op: compile_op
    for ops, compile_op in (
        (frozenset({"exists"}), _exists),
        (frozenset({"equals", "not_equals"}), _equals),
        (SET_OPS, _member),
        (STRING_OPS, _substring),
        (NUMBER_OPS, _number),
        (DATE_OPS, _date),
        (AGE_OPS, _age),
    )
    for op in ops
}


def walk(cond: Condition) -> Iterator[Condition]:
    """The condition and every condition nested in it."""
    yield cond
    match cond:
        case All(items=items) | AnyOf(items=items):
            for item in items:
                yield from walk(item)
        case Not(item=item):
            yield from walk(item)


def event_kinds(cond: Condition) -> set[str]:
    """The event types a condition looks at."""
    match cond:
        case EventCondition(filter=flt):
            return {flt.kind}
        case All(items=items) | AnyOf(items=items):
            return set().union(*(event_kinds(i) for i in items))
        case Not(item=item):
            return event_kinds(item)
    return set()


# --- descriptions -------------------------------------------------------------

_OP_WORDS = {
    "equals": "=",
    "not_equals": "!=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "date_gt": "after",
    "date_gte": "on or after",
    "date_lt": "before",
    "date_lte": "on or before",
    "within_days": "within days",
    "older_than_days": "older than days",
}


def _show(value: TestValue) -> str:
    if isinstance(value, tuple):
        return "|".join(_show(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe_filter(flt: EventFilter) -> str:
    parts = [flt.kind]
    if flt.kind == EMAIL_BOUNCE and flt.bounce != "hard":
        parts.append(f"{flt.bounce} bounces")
    for label, values in (
        ("form", flt.form_ids),
        ("form name contains", flt.form_name_contains),
        ("page url contains", flt.page_url_contains),
        ("url contains", flt.url_contains),
        ("campaign", flt.campaign_ids),
    ):
        if values:
            parts.append(f"{label} {'|'.join(values)}")
    if flt.within_days is not None:
        parts.append(f"within {flt.within_days}d")
    if flt.include_filtered:
        parts.append("bot-filtered included")
    return ", ".join(parts)


def describe_condition(cond: Condition) -> str:
    """A short human form of a condition, for explanations."""
    match cond:
        case All(items=items):
            return " and ".join(describe_condition(i) for i in items)
        case AnyOf(items=items):
            return "(" + " or ".join(describe_condition(i) for i in items) + ")"
        case Not(item=item):
            return f"not ({describe_condition(item)})"
    return _describe_test(cond)


def _describe_test(cond: Condition) -> str:
    """The human form of one test (a condition that holds no other)."""
    match cond:
        case PropertyTest(property=name, op="exists", value=value):
            return f"{name} {'is set' if value else 'is not set'}"
        case PropertyTest(property=name, op=op, value=value):
            return f"{name} {_OP_WORDS.get(op, op)} {_show(value)}"
        case EmailDomainIn(domains=domains):
            return "email domain in " + "|".join(sorted(domains))
        case FreeMail(expected=expected):
            return "free-mail address" if expected else "company email address"
        case EmailIn(emails=emails):
            return f"email is one of {len(emails)} named addresses"
        case ContactIdIn(ids=ids):
            return f"contact id is one of {len(ids)} named ids"
        case InList(list_ids=ids):
            return "member of list " + "|".join(str(i) for i in sorted(ids))
        case EventCondition(filter=flt, count=count):
            lo, hi = count.bounds()
            wanted = f"at least {lo}" if hi is None else f"{lo}..{hi}"
            return f"{wanted} {describe_filter(flt)}"
    return repr(cond)  # pragma: no cover - exhaustive match


# --- static checks ------------------------------------------------------------


def interval_is_empty(gt: float | None, gte: float | None, lt: float | None, lte: float | None) -> bool:
    """True when no number satisfies all the given bounds (e.g. lt 5 and gt 10)."""
    lo, lo_open = (gt, True) if gt is not None else (gte, False)
    if gt is not None and gte is not None and gte > gt:
        lo, lo_open = gte, False
    hi, hi_open = (lt, True) if lt is not None else (lte, False)
    if lt is not None and lte is not None and lte < lt:
        hi, hi_open = lte, False
    if lo is None or hi is None:
        return False
    if lo > hi:
        return True
    return lo == hi and (lo_open or hi_open)


def unsatisfiable(tests: Sequence[PropertyTest]) -> str | None:
    """Why the AND of these tests on one property can never hold, or None if it can."""
    by_op: dict[str, TestValue] = {t.op: t.value for t in tests}
    for conflict in (_range_conflict, _exists_conflict, _empty_list, _equals_conflict):
        why = conflict(by_op)
        if why is not None:
            return why
    return None


def _range_conflict(by_op: Mapping[str, TestValue]) -> str | None:
    """Numeric, date or age bounds that exclude every value."""

    def num(op: str) -> float | None:
        v = by_op.get(op)
        return None if v is None else float(v)  # type: ignore[arg-type]

    if interval_is_empty(num("gt"), num("gte"), num("lt"), num("lte")):
        return "the numeric bounds exclude every value"
    if interval_is_empty(num("date_gt"), num("date_gte"), num("date_lt"), num("date_lte")):
        return "the date bounds exclude every date"
    within, older = by_op.get("within_days"), by_op.get("older_than_days")
    if within is not None and older is not None and int(older) >= int(within):  # type: ignore[arg-type]
        return "within_days and older_than_days exclude every age"
    return None


def _exists_conflict(by_op: Mapping[str, TestValue]) -> str | None:
    """`exists: false` beside a test only a set value passes."""
    if by_op.get("exists") is not False or len(by_op) <= 1:
        return None
    positive = set(by_op) - {"exists", "not_equals", "not_in", "not_contains"}
    return "exists: false cannot hold together with " + ", ".join(sorted(positive)) if positive else None


def _empty_list(by_op: Mapping[str, TestValue]) -> str | None:
    for op in ("in", "contains", "starts_with", "ends_with"):
        if by_op.get(op) == ():
            return f"{op} has an empty list"
    return None


def _equals_conflict(by_op: Mapping[str, TestValue]) -> str | None:
    """An `equals` value that another test on the property rules out."""
    if "equals" not in by_op:
        return None
    eq = by_op["equals"]
    if "not_equals" in by_op and _same_value(by_op["not_equals"], eq):
        return "equals and not_equals name the same value"
    in_values = by_op.get("in")
    if isinstance(in_values, tuple) and not any(_same_value(eq, v) for v in in_values):
        return "the equals value is not in the in list"
    not_in = by_op.get("not_in")
    if isinstance(not_in, tuple) and any(_same_value(eq, v) for v in not_in):
        return "the equals value is in the not_in list"
    return None


def _same_value(a: TestValue, b: TestValue) -> bool:
    """Whether one property value could satisfy both: 5 (a number) and "5" (text) can."""
    if isinstance(a, float) and isinstance(b, str):
        return parse_number(b) == a
    if isinstance(a, str) and isinstance(b, float):
        return parse_number(a) == b
    return a == b
