"""Conditions (segments, exclusions, rule tests, `when:` gates, stage rules): checked and built into the core's.

A condition that can never match, or would match everything, is a mistake in the file and reported as one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sync.config.checks.problems import Problems
from sync.config.schema import ConditionModel, CountModel, Ids, Scalar, Texts
from sync.core import conditions as c
from sync.core.model import EMAIL_BOUNCE, EMAIL_CLICK, EMAIL_EVENT_TYPES, EVENT_TYPES, FORM_SUBMISSION
from sync.yamlsource import Path_

PROPERTY_FIELDS = (
    "equals",
    "not_equals",
    "in_",
    "not_in",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "older_than_days",
)
EVENT_FIELDS = (
    "form_id",
    "form_name_contains",
    "page_url_contains",
    "url_contains",
    "campaign_id",
    "count",
    "include_filtered",
    "bounce",
)
_FORM_ONLY = ("form_id", "form_name_contains", "page_url_contains")
_LISTS_AND_TEXTS = (
    "in_", "not_in", "contains", "not_contains", "starts_with", "ends_with", "email_domain_in", "emails",
    "contact_ids", "hubspot_list", "form_id", "form_name_contains", "page_url_contains", "url_contains",
    "campaign_id",
)  # fmt: skip


def key(name: str) -> str:
    """The key as the file spells it (`in`, `not`), for a field whose Python name differs."""
    return {"in_": "in", "not_": "not"}.get(name, name)


def texts(value: Texts | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    return tuple(str(v).casefold() for v in items)


def ids(value: Ids | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(str(v) for v in items)


def _scalar(value: Scalar) -> str | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    return value.casefold()


def _date_ms(value: date) -> int:
    moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def condition(p: Problems, m: ConditionModel, path: Path_, with_when: bool = True) -> c.Condition | None:
    """The core condition for `m`, or None (with problems recorded) when it is invalid.

    `when:` is one more condition ANDed in, except on rules, where it gates the rule (with_when=False).
    The parts are ANDed in a fixed order (the rule-set version hashes them).
    """
    before = len(p)
    _no_empty_values(p, m, path)
    parts: list[c.Condition] = []
    if with_when and m.when is not None:
        gate = condition(p, m.when, (*path, "when"))
        if gate is not None:
            parts.append(gate)
    parts += _property_part(p, m, path)
    parts += _contact_parts(m)
    parts += _event_part(p, m, path)
    parts += _logic_parts(p, m, path)
    if not parts and len(p) == before:
        p.error(path, "empty condition: give a test (property, event, email_domain_in, all, any ...)")
    if len(p) > before:
        return None
    return parts[0] if len(parts) == 1 else c.All(tuple(parts))


def _no_empty_values(p: Problems, m: ConditionModel, path: Path_) -> None:
    """An empty list or empty text in a test would match everything or nothing: both are mistakes."""
    for name in _LISTS_AND_TEXTS:
        value = getattr(m, name)
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if not items:
            p.error((*path, key(name)), "is an empty list: it would never match (or match everything)")
        elif any(isinstance(v, str) and not v.strip() for v in items):
            p.error((*path, key(name)), "has an empty value: it would match everything")


def _property_part(p: Problems, m: ConditionModel, path: Path_) -> list[c.Condition]:
    ops = [f for f in PROPERTY_FIELDS if getattr(m, f) is not None]
    if m.within_days is not None and m.event is None:
        ops.append("within_days")
    if m.property is None:
        for f in ops:
            p.error((*path, key(f)), f"{key(f)} needs a property to test")
        return []
    if m.event is not None:
        p.error((*path, "property"), "a condition tests a property or an event, not both; combine them with all:")
        return []
    if not ops:
        p.error((*path, "property"), f"no test for property {m.property!r} (equals, in, contains, gt, exists ...)")
        return []
    return list(_property_tests(p, m, m.property, ops, path))


def _property_tests(p: Problems, m: ConditionModel, name: str, ops: list[str], path: Path_) -> list[c.PropertyTest]:
    bounds = [f for f in ("gt", "gte", "lt", "lte") if getattr(m, f) is not None]
    dated = [f for f in bounds if isinstance(getattr(m, f), date)]
    if dated and len(dated) != len(bounds):
        p.error((*path, bounds[0]), "compare with numbers or with dates, not both")
        return []
    tests = [_property_test(name, f, getattr(m, f), f in bounds, bool(dated)) for f in ops]
    why = c.unsatisfiable(tests)
    if why:
        p.error(path, f"can never match: {why}")
    return tests


def _property_test(name: str, field: str, value: Any, bound: bool, dated: bool) -> c.PropertyTest:
    op = key(field)
    if field in ("equals", "not_equals"):
        return c.PropertyTest(name, op, _scalar(value))
    if field in ("in_", "not_in"):
        return c.PropertyTest(name, op, tuple(_scalar(v) for v in value))
    if field in ("contains", "not_contains", "starts_with", "ends_with"):
        return c.PropertyTest(name, op, texts(value))
    if bound and dated:
        return c.PropertyTest(name, f"date_{op}", _date_ms(value))
    if bound:
        return c.PropertyTest(name, op, float(value))
    return c.PropertyTest(name, op, value)


def _contact_parts(m: ConditionModel) -> list[c.Condition]:
    """The tests of who the contact is: email domain, free mail, named contacts, list membership."""
    parts: list[c.Condition] = []
    if m.email_domain_in is not None:
        parts.append(c.EmailDomainIn(frozenset(d.lstrip("@") for d in texts(m.email_domain_in))))
    if m.free_mail is not None:
        parts.append(c.FreeMail(m.free_mail))
    # emails and contact_ids name contacts: given together, a contact named by either matches.
    named: list[c.Condition] = []
    if m.emails is not None:
        named.append(c.EmailIn(frozenset(e.strip() for e in texts(m.emails))))
    if m.contact_ids is not None:
        named.append(c.ContactIdIn(frozenset(ids(m.contact_ids))))
    if named:
        parts.append(named[0] if len(named) == 1 else c.AnyOf(tuple(named)))
    if m.hubspot_list is not None:
        lists = m.hubspot_list if isinstance(m.hubspot_list, list) else [m.hubspot_list]
        parts.append(c.InList(frozenset(lists)))
    return parts


def _event_part(p: Problems, m: ConditionModel, path: Path_) -> list[c.Condition]:
    if m.event is not None:
        return [_event(p, m, path)]
    for f in EVENT_FIELDS:
        if getattr(m, f) is not None:
            p.error((*path, f), f"{f} filters events; it needs event:")
    return []


def _logic_parts(p: Problems, m: ConditionModel, path: Path_) -> list[c.Condition]:
    """all:, any: and not:, each built from conditions of its own."""
    parts: list[c.Condition] = []
    for name in ("all", "any"):
        items = getattr(m, name)
        if items is None:
            continue
        if not items:
            p.error((*path, name), "is empty")
        subs = [condition(p, item, (*path, name, i)) for i, item in enumerate(items)]
        ok = [s for s in subs if s is not None]
        parts.append(c.All(tuple(ok)) if name == "all" else c.AnyOf(tuple(ok)))
    if m.not_ is not None:
        sub = condition(p, m.not_, (*path, "not"))
        if sub is not None:
            parts.append(c.Not(sub))
    return parts


def _event(p: Problems, m: ConditionModel, path: Path_) -> c.EventCondition:
    assert m.event is not None
    kind = m.event
    _check_event_filters(p, m, path, kind)
    count = m.count or CountModel()
    spec = c.CountSpec(count.at_least, count.at_most, count.exactly, count.between)
    lo, hi = spec.bounds()
    if hi is not None and lo > hi:
        p.error((*path, "count"), "can never match: the count bounds exclude every number")
    assert kind in EVENT_TYPES
    flt = c.EventFilter(
        kind=kind,
        form_ids=ids(m.form_id),
        form_name_contains=texts(m.form_name_contains),
        page_url_contains=texts(m.page_url_contains),
        url_contains=texts(m.url_contains),
        campaign_ids=ids(m.campaign_id),
        within_days=m.within_days,
        include_filtered=bool(m.include_filtered),
        bounce=m.bounce or "hard",
    )
    return c.EventCondition(flt, spec)


def _check_event_filters(p: Problems, m: ConditionModel, path: Path_, kind: str) -> None:
    """Filters that apply to another kind of event would make the condition never match."""
    for f in _FORM_ONLY:
        if getattr(m, f) is not None and kind != FORM_SUBMISSION:
            p.error((*path, f), f"can never match: {f} applies to form_submission events, not {kind}")
    if m.url_contains is not None and kind != EMAIL_CLICK:
        p.error((*path, "url_contains"), f"can never match: url_contains applies to email_click events, not {kind}")
    if m.campaign_id is not None and kind not in EMAIL_EVENT_TYPES:
        p.error((*path, "campaign_id"), "can never match: campaign_id applies to email events")
    if m.include_filtered and kind == FORM_SUBMISSION:
        p.error((*path, "include_filtered"), "form submissions are never bot-filtered; remove it")
    if m.bounce is not None and kind != EMAIL_BOUNCE:
        p.error((*path, "bounce"), f"can never match: bounce applies to email_bounce events, not {kind}")
