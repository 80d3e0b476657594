"""The CRM search request: parsing it HubSpot's way and compiling its filters into predicates.

Matching rules (documented choices where HubSpot's docs are silent):
- a contact without a value for the property matches no operator except NOT_HAS_PROPERTY
  (so NEQ, NOT_IN and NOT_CONTAINS_TOKEN skip contacts that lack the property, as HubSpot's do);
- number properties compare as numbers; datetime/date properties and hs_object_id,
  createdate, lastmodifieddate compare as epoch ms; other properties as lower-cased text;
- CONTAINS_TOKEN matches a whole word of the value (split on non-alphanumerics), or with `*`
  a wildcard pattern against the value or one of its words (`*@acme.com`).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync.sandbox.properties import (
    COMPANY_LAST_MODIFIED,
    CREATE_DATE,
    DEFAULT_PROPERTIES,
    LAST_MODIFIED,
    OBJECT_ID,
    PropertyDef,
)
from sync.sandbox.records import ContactRecord
from sync.sandbox.wire import bad_request, parse_ms

OPERATORS = frozenset(
    {
        "LT", "LTE", "GT", "GTE", "EQ", "NEQ", "BETWEEN", "IN", "NOT_IN",
        "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
    }
)  # fmt: skip
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
DEFAULT_LIMIT, MAX_LIMIT = 10, 200
# HubSpot's hard cap: one search query never pages past 10,000 results.
MAX_RESULTS = 10_000
INDEXED = (OBJECT_ID, LAST_MODIFIED, CREATE_DATE, COMPANY_LAST_MODIFIED)
MODIFIED = frozenset({LAST_MODIFIED, COMPANY_LAST_MODIFIED})  # a record's modified date, by either object's name
RANGE_OPERATORS = frozenset({"EQ", "GT", "GTE", "LT", "LTE", "BETWEEN"})

Scalar = float | str
Value = int | float | str | None
Predicate = Callable[[ContactRecord], bool]
Getter = Callable[[ContactRecord], Value]
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Filter:
    prop: str
    op: str
    value: Scalar | None = None
    values: tuple[Scalar, ...] = ()
    high: Scalar | None = None


@dataclass(frozen=True)
class SearchQuery:
    groups: tuple[tuple[Filter, ...], ...]
    sort_prop: str
    descending: bool
    properties: tuple[str, ...]
    limit: int
    after: int

    @property
    def key(self) -> tuple[Any, ...]:
        """What decides the ordered match list; paging and properties do not."""
        return (self.groups, self.sort_prop, self.descending)


def kind(prop: PropertyDef) -> str:
    if prop.name in INDEXED:
        return "int"
    if prop.type == "number":
        return "num"
    if prop.type in ("datetime", "date"):
        return "ms"
    return "str"


def getter(prop: PropertyDef) -> Getter:
    name = prop.name
    if name == OBJECT_ID:
        return lambda c: c.id
    if name in MODIFIED:
        return lambda c: c.updated_ms
    if name == CREATE_DATE:
        return lambda c: c.created_ms
    value_kind = kind(prop)
    if value_kind == "num":

        def number(c: ContactRecord) -> Value:
            raw = c.props.get(name)
            if raw is None:
                return None
            try:
                return float(raw)
            except ValueError:
                return None

        return number
    if value_kind == "ms":
        return lambda c: parse_ms(c.props.get(name))

    def text(c: ContactRecord) -> Value:
        raw = c.props.get(name)
        return None if raw is None else raw.lower()

    return text


def parse_search(
    body: Any, props: Mapping[str, PropertyDef], defaults: Sequence[str] = DEFAULT_PROPERTIES
) -> SearchQuery:
    """A search request body -> a validated query, or a 400 like HubSpot's."""
    if not isinstance(body, Mapping):
        raise bad_request("Invalid input JSON: the search request must be a JSON object")
    groups_raw = body.get("filterGroups") or []
    if not isinstance(groups_raw, list):
        raise bad_request("filterGroups must be a list")
    count = sum(len(g.get("filters") or []) for g in groups_raw if isinstance(g, Mapping))
    if len(groups_raw) > MAX_GROUPS or count > MAX_FILTERS:
        raise bad_request(
            f"Too many filters: a search may have at most {MAX_GROUPS} filterGroups with {MAX_FILTERS_PER_GROUP} "
            f"filters each and {MAX_FILTERS} filters in all; got {len(groups_raw)} groups and {count} filters."
        )
    groups: list[tuple[Filter, ...]] = []
    for gi, group in enumerate(groups_raw):
        filters_raw = group.get("filters") if isinstance(group, Mapping) else None
        if not isinstance(filters_raw, list):
            raise bad_request(f"filterGroups[{gi}].filters must be a list")
        if len(filters_raw) > MAX_FILTERS_PER_GROUP:
            raise bad_request(
                f"Too many filters: filterGroups[{gi}] has {len(filters_raw)} filters; "
                f"a group may have at most {MAX_FILTERS_PER_GROUP}."
            )
        groups.append(tuple(_filter(f, props, f"filterGroups[{gi}].filters[{fi}]") for fi, f in enumerate(filters_raw)))
    sort_prop, descending = _sort(body.get("sorts"), props)
    return SearchQuery(
        groups=tuple(groups),
        sort_prop=sort_prop,
        descending=descending,
        properties=_properties(body.get("properties"), props, defaults),
        limit=_limit(body.get("limit")),
        after=_after(body.get("after")),
    )


def requested_properties(
    names: Sequence[str] | None, props: Mapping[str, PropertyDef], defaults: Sequence[str] = DEFAULT_PROPERTIES
) -> tuple[str, ...]:
    """Requested names -> the ones to render; HubSpot quietly leaves out unknown properties."""
    wanted = names or defaults
    seen: dict[str, None] = {}
    for name in wanted:
        if name in props and name not in INDEXED:
            seen.setdefault(name, None)
    return tuple(seen)


def _properties(raw: Any, props: Mapping[str, PropertyDef], defaults: Sequence[str]) -> tuple[str, ...]:
    if raw is None:
        return requested_properties(None, props, defaults)
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise bad_request("properties must be a list of property names")
    return requested_properties(raw, props, defaults)


def _limit(raw: Any) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"limit must be an integer, got {raw!r}") from None
    if not 0 < limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def _after(raw: Any) -> int:
    if raw is None or raw == "":
        return 0
    text = str(raw)
    if not (text.isascii() and text.isdigit()):
        raise bad_request(f"after must be a non-negative integer string, got {raw!r}")
    after = int(text)
    if after >= MAX_RESULTS:
        # HubSpot's wording for paging past the 10k cap of one query.
        raise bad_request(
            f"Invalid paging: after={after}. A search returns at most {MAX_RESULTS} results; "
            "narrow the query (for example by lastmodifieddate) to page further."
        )
    return after


def _sort(raw: Any, props: Mapping[str, PropertyDef]) -> tuple[str, bool]:
    if not raw:
        return OBJECT_ID, False
    if not isinstance(raw, list):
        raise bad_request("sorts must be a list")
    if len(raw) > 1:
        raise bad_request(f"Only one sort is supported; got {len(raw)}")
    item = raw[0]
    if isinstance(item, str):  # the SDK types sorts as strings: "name" or "-name"
        name, descending = item.lstrip("-"), item.startswith("-")
    elif isinstance(item, Mapping):
        name = str(item.get("propertyName") or "")
        direction = str(item.get("direction") or "ASCENDING").upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise bad_request(f"Sort direction must be ASCENDING or DESCENDING, got {item.get('direction')!r}")
        descending = direction == "DESCENDING"
    else:
        raise bad_request(f"Invalid sort: {item!r}")
    if name not in props:
        raise bad_request(f"Cannot sort by unknown property '{name}'")
    return name, descending


def _scalar(raw: Any, prop: PropertyDef, where: str) -> Scalar:
    if raw is None or isinstance(raw, list | dict):
        raise bad_request(f"{where}: a value is required for property '{prop.name}'")
    value_kind = kind(prop)
    if value_kind == "str":
        return (("true" if raw else "false") if isinstance(raw, bool) else str(raw)).lower()
    if value_kind in ("int", "ms"):
        ms = parse_ms(raw)
        if ms is None:
            raise bad_request(f"{where}: {raw!r} is not a valid value for '{prop.name}': use epoch milliseconds")
        return float(ms)
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise bad_request(f"{where}: {raw!r} is not a number for property '{prop.name}'") from None
    if not math.isfinite(number):
        raise bad_request(f"{where}: {raw!r} is not a number for property '{prop.name}'")
    return number


def _filter(raw: Any, props: Mapping[str, PropertyDef], where: str) -> Filter:
    if not isinstance(raw, Mapping):
        raise bad_request(f"{where} must be an object")
    name = str(raw.get("propertyName") or "")
    op = str(raw.get("operator") or "EQ").upper()
    if op not in OPERATORS:
        raise bad_request(f"{where}: unknown operator {raw.get('operator')!r}; use one of {sorted(OPERATORS)}")
    prop = props.get(name)
    if prop is None:
        raise bad_request(f"{where}: property '{name}' does not exist")
    if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        return Filter(name, op)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN") and kind(prop) != "str":
        raise bad_request(f"{where}: {op} needs a text property; '{name}' is {prop.type}")
    if op in ("IN", "NOT_IN"):
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise bad_request(f"{where}: {op} needs a non-empty 'values' list")
        return Filter(name, op, values=tuple(_scalar(v, prop, where) for v in values))
    if op == "BETWEEN":
        return Filter(
            name, op, value=_scalar(raw.get("value"), prop, where), high=_scalar(raw.get("highValue"), prop, where)
        )
    return Filter(name, op, value=_scalar(raw.get("value"), prop, where))


def predicate(f: Filter, prop: PropertyDef) -> Predicate:
    get = getter(prop)
    op, value, high = f.op, f.value, f.high
    if op == "HAS_PROPERTY":
        return lambda c: get(c) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda c: get(c) is None
    if op in ("IN", "NOT_IN"):
        wanted = frozenset(f.values)
        inside = op == "IN"

        def member(c: ContactRecord) -> bool:
            v = get(c)
            return v is not None and (v in wanted) == inside

        return member
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = str(value)
        contains = op == "CONTAINS_TOKEN"

        def token(c: ContactRecord) -> bool:
            v = get(c)
            return v is not None and _has_token(str(v), pattern) == contains

        return token
    compare: Callable[[Any, Any], bool] = _COMPARE[op]

    def check(c: ContactRecord) -> bool:
        v = get(c)
        if v is None:
            return False
        try:
            return compare(v, value) and (high is None or v <= high)  # type: ignore[operator]
        except TypeError:  # a number compared with text: no match
            return False

    return check


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": lambda v, x: v == x,
    "NEQ": lambda v, x: v != x,
    "LT": lambda v, x: v < x,
    "LTE": lambda v, x: v <= x,
    "GT": lambda v, x: v > x,
    "GTE": lambda v, x: v >= x,
    "BETWEEN": lambda v, x: v >= x,
}


def _has_token(text: str, pattern: str) -> bool:
    words = _WORD.findall(text)
    if "*" in pattern:
        return fnmatch.fnmatchcase(text, pattern) or any(fnmatch.fnmatchcase(w, pattern) for w in words)
    return pattern in words


def group_predicate(filters: Sequence[Filter], props: Mapping[str, PropertyDef]) -> Predicate:
    checks = [predicate(f, props[f.prop]) for f in filters]
    if len(checks) == 1:
        return checks[0]
    return lambda c: all(check(c) for check in checks)


def int_bounds(filters: Sequence[Filter], prop: str) -> tuple[int, int] | None:
    """Inclusive integer bounds the group's filters put on an indexed property, or None when unbounded."""
    lo, hi = -math.inf, math.inf
    bounded = False
    for f in filters:
        if f.prop != prop or not isinstance(f.value, float):
            continue
        v = f.value
        if f.op == "EQ":
            lo, hi = max(lo, math.ceil(v)), min(hi, math.floor(v))
        elif f.op == "GT":
            lo = max(lo, math.floor(v) + 1)
        elif f.op == "GTE":
            lo = max(lo, math.ceil(v))
        elif f.op == "LT":
            hi = min(hi, math.ceil(v) - 1)
        elif f.op == "LTE":
            hi = min(hi, math.floor(v))
        elif f.op == "BETWEEN" and isinstance(f.high, float):
            lo, hi = max(lo, math.ceil(v)), min(hi, math.floor(f.high))
        else:
            continue
        bounded = True
    if not bounded:
        return None
    low = -(2**63) if lo == -math.inf else int(lo)
    high = 2**63 if hi == math.inf else int(hi)
    return low, high
