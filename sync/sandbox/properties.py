"""Contact property definitions: the standard ones a portal starts with, and value validation.

A property's type decides what a write may put in it and how search compares it:
number values compare as numbers, datetime/date values as epoch ms, the rest as
case-insensitive text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.core.rules import STANDARD_STAGE_ORDER
from sync.sandbox.wire import JsonObject, bad_request, iso_ms, parse_ms

TYPES = {
    "string": {"text", "textarea", "phonenumber", "html", "file"},
    "number": {"number", "calculation_equation"},
    "date": {"date"},
    "datetime": {"date", "datetime"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox", "calculation_equation"},
    "bool": {"booleancheckbox", "calculation_equation"},
}
MAX_STRING = 65_536

# Forward order of the internal lifecycle stage values (HubSpot's, as the engine knows them); `other` stands outside.
LIFECYCLE_ORDER = STANDARD_STAGE_ORDER
LIFECYCLE_STAGE = "lifecyclestage"
OBJECT_ID = "hs_object_id"
CREATE_DATE = "createdate"
LAST_MODIFIED = "lastmodifieddate"
COMPANY_LAST_MODIFIED = "hs_lastmodifieddate"  # companies name their modified date differently
# Kept on the contact record itself, not in its property map.
RECORD_FIELDS = (OBJECT_ID, CREATE_DATE, LAST_MODIFIED)
COMPANY_RECORD_FIELDS = (OBJECT_ID, CREATE_DATE, COMPANY_LAST_MODIFIED)
DEFAULT_PROPERTIES = ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")
DEFAULT_COMPANY_PROPERTIES = ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")


@dataclass(frozen=True)
class Option:
    label: str
    value: str
    display_order: int = 0
    hidden: bool = False

    def to_wire(self) -> JsonObject:
        return {"label": self.label, "value": self.value, "displayOrder": self.display_order, "hidden": self.hidden}


@dataclass(frozen=True)
class PropertyGroup:
    name: str
    label: str
    display_order: int = -1

    def to_wire(self) -> JsonObject:
        return {"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": False}


@dataclass(frozen=True)
class PropertyDef:
    name: str
    label: str
    type: str
    field_type: str
    group_name: str
    options: tuple[Option, ...] = ()
    description: str = ""
    read_only: bool = False
    hubspot_defined: bool = False
    created_ms: int = 0
    updated_ms: int = 0
    option_values: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "option_values", frozenset(o.value for o in self.options))

    @property
    def multi(self) -> bool:
        return self.type == "enumeration" and self.field_type == "checkbox"

    def to_wire(self) -> JsonObject:
        wire: JsonObject = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": [o.to_wire() for o in self.options],
            "displayOrder": -1,
            "calculated": self.read_only and self.hubspot_defined,
            "externalOptions": False,
            "hasUniqueValue": self.name in ("email", OBJECT_ID),
            "hidden": False,
            "formField": not self.read_only,
            "archived": False,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(max(self.created_ms, self.updated_ms)),
            "modificationMetadata": {
                "archivable": not self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        }
        if self.hubspot_defined:
            wire["hubspotDefined"] = True
        return wire

    def snapshot(self) -> JsonObject:
        """The definition as a snapshot keeps it: what `from_wire` needs to rebuild it."""
        data: JsonObject = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group_name,
        }
        if self.options:
            data["options"] = [o.to_wire() for o in self.options]
        if self.description:
            data["description"] = self.description
        return data

    def normalize(self, raw: Any) -> str:
        """The stored form of a written value, or a ValueError naming what is wrong. '' clears."""
        if raw is None:
            return ""
        text = self._text(raw)
        if text == "":
            return ""
        check = _NORMALIZERS.get(self.type)
        if check is not None:
            return check(self, text)
        if len(text) > MAX_STRING:
            raise ValueError(f"value of {self.name} is longer than {MAX_STRING} characters.")
        return text

    def _text(self, raw: Any) -> str:
        """A JSON value as HubSpot reads it into a property: booleans and numbers as their text."""
        if isinstance(raw, bool):
            return "true" if raw else "false"
        if isinstance(raw, int | float):
            return repr(raw) if isinstance(raw, float) else str(raw)
        if isinstance(raw, str):
            return raw
        raise ValueError(f"{raw!r} is not a valid value for property {self.name}: expected a string")

    @classmethod
    def from_wire(cls, raw: Any, now_ms: int, groups: Mapping[str, PropertyGroup]) -> PropertyDef:
        """A create request body -> a definition, or a 400 naming the first problem."""
        if not isinstance(raw, Mapping):
            raise bad_request("Invalid input JSON: a property definition must be an object")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not raw.get(k)]
        if missing:
            raise bad_request(f"Property definition is missing {', '.join(missing)}")
        name, kind, field_type = str(raw["name"]), str(raw["type"]), str(raw["fieldType"])
        if not name.replace("_", "").isalnum() or not name[0].isalpha() or name != name.lower():
            raise bad_request(f"Property name {name!r} must be lowercase letters, digits and underscores")
        if kind not in TYPES:
            raise bad_request(f"Property type {kind!r} is not one of {sorted(TYPES)}")
        if field_type not in TYPES[kind]:
            raise bad_request(
                f"fieldType {field_type!r} does not go with type {kind!r}: use one of {sorted(TYPES[kind])}"
            )
        if str(raw["groupName"]) not in groups:
            raise bad_request(f"Property group {raw['groupName']!r} does not exist")
        options = tuple(_options(raw.get("options"), name))
        if kind == "enumeration" and not options and field_type != "booleancheckbox":
            raise bad_request(f"Enumeration property {name!r} needs options")
        if field_type == "booleancheckbox" and kind == "enumeration" and not options:
            options = (Option("Yes", "true", 0), Option("No", "false", 1))
        return cls(
            name=name,
            label=str(raw["label"]),
            type=kind,
            field_type=field_type,
            group_name=str(raw["groupName"]),
            options=options,
            description=str(raw.get("description") or ""),
            created_ms=now_ms,
        )

    def patched(self, raw: Any, now_ms: int, groups: Mapping[str, PropertyGroup]) -> PropertyDef:
        """A PATCH body applied: the fields given replace the old ones (options as a whole list)."""
        if not isinstance(raw, Mapping):
            raise bad_request("Invalid input JSON: a property update must be an object")
        if self.hubspot_defined:
            raise bad_request(f"Property {self.name} is defined by HubSpot; its definition cannot be changed")
        if raw.get("name", self.name) != self.name:
            raise bad_request("A property cannot be renamed")
        merged = {**self.snapshot(), **{k: v for k, v in raw.items() if k in _PATCHABLE}}
        updated = PropertyDef.from_wire(merged, self.created_ms, groups)
        return dataclasses.replace(updated, updated_ms=now_ms)


def _number(prop: PropertyDef, text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} was not a valid number.") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} was not a valid number.")
    return text.strip()


def _bool(prop: PropertyDef, text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"{text!r} was not a valid boolean: use true or false.")
    return lowered


def _enumeration(prop: PropertyDef, text: str) -> str:
    chosen = text.split(";") if prop.multi else [text]
    bad = [v for v in chosen if v not in prop.option_values]
    if bad:
        raise ValueError(f"{bad[0]!r} was not one of the allowed options: {sorted(prop.option_values)}")
    return text


def _datetime(prop: PropertyDef, text: str) -> str:
    ms = parse_ms(text)
    if ms is None:
        raise ValueError(f"{text!r} is not a valid datetime: use epoch milliseconds or ISO 8601.")
    return iso_ms(ms)


def _date(prop: PropertyDef, text: str) -> str:
    ms = parse_ms(text)
    if ms is None or ms % 86_400_000:
        raise ValueError(f"{text!r} is not a valid date: use midnight UTC in epoch milliseconds.")
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


# How a value is checked and stored per property type; strings are only length-checked.
_NORMALIZERS: dict[str, Callable[[PropertyDef, str], str]] = {
    "number": _number,
    "bool": _bool,
    "enumeration": _enumeration,
    "datetime": _datetime,
    "date": _date,
}

_PATCHABLE = frozenset({"label", "description", "groupName", "options", "type", "fieldType"})


def _options(raw: Any, name: str) -> Iterable[Option]:
    if raw is None:
        return
    if not isinstance(raw, list):
        raise bad_request(f"options of {name!r} must be a list")
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or "value" not in item or "label" not in item:
            raise bad_request(f"options[{i}] of {name!r} needs a label and a value")
        value = str(item["value"])
        if value in seen:
            raise bad_request(f"options of {name!r} repeat the value {value!r}")
        seen.add(value)
        yield Option(str(item["label"]), value, int(item.get("displayOrder", i)), bool(item.get("hidden", False)))


def _enum(*pairs: str) -> tuple[Option, ...]:
    return tuple(Option(label, value, i) for i, (value, label) in enumerate(zip(pairs[::2], pairs[1::2], strict=True)))


INDUSTRIES = _enum(
    "ENERGY", "Energy", "OIL_GAS", "Oil & gas", "FINANCE", "Finance", "SOFTWARE", "Software",
    "MANUFACTURING", "Manufacturing", "RETAIL", "Retail", "HEALTHCARE", "Healthcare",
    "LOGISTICS", "Logistics", "EDUCATION", "Education", "GOVERNMENT", "Government",
    "TELECOM", "Telecommunications", "CONSTRUCTION", "Construction",
)  # fmt: skip
LIFECYCLE_OPTIONS = _enum(
    "subscriber", "Subscriber", "lead", "Lead", "marketingqualifiedlead", "Marketing Qualified Lead",
    "salesqualifiedlead", "Sales Qualified Lead", "opportunity", "Opportunity", "customer", "Customer",
    "evangelist", "Evangelist", "other", "Other",
)  # fmt: skip
ANALYTICS_SOURCES = _enum(
    "ORGANIC_SEARCH", "Organic search", "PAID_SEARCH", "Paid search", "EMAIL_MARKETING", "Email marketing",
    "SOCIAL_MEDIA", "Organic social", "REFERRALS", "Referrals", "OTHER_CAMPAIGNS", "Other campaigns",
    "DIRECT_TRAFFIC", "Direct traffic", "OFFLINE", "Offline sources", "PAID_SOCIAL", "Paid social",
    "AI_REFERRALS", "AI referrals",
)  # fmt: skip
LEAD_STATUS = _enum(
    "NEW", "New", "OPEN", "Open", "IN_PROGRESS", "In Progress", "OPEN_DEAL", "Open Deal",
    "UNQUALIFIED", "Unqualified", "ATTEMPTED_TO_CONTACT", "Attempted to Contact", "CONNECTED", "Connected",
    "BAD_TIMING", "Bad Timing",
)  # fmt: skip
BOOL_OPTIONS = _enum("true", "Yes", "false", "No")

STANDARD_GROUPS = (
    PropertyGroup("contactinformation", "Contact information", 0),
    PropertyGroup("analyticsinformation", "Web analytics history", 1),
    PropertyGroup("emailinformation", "Email information", 2),
    PropertyGroup("sales_properties", "Sales properties", 3),
    PropertyGroup("conversioninformation", "Conversion information", 4),
)

# (name, label, type, fieldType, group, options, read-only)
_STANDARD: tuple[tuple[str, str, str, str, str, tuple[Option, ...], bool], ...] = (
    ("email", "Email", "string", "text", "contactinformation", (), False),
    ("firstname", "First Name", "string", "text", "contactinformation", (), False),
    ("lastname", "Last Name", "string", "text", "contactinformation", (), False),
    ("phone", "Phone Number", "string", "phonenumber", "contactinformation", (), False),
    ("company", "Company Name", "string", "text", "contactinformation", (), False),
    ("website", "Website URL", "string", "text", "contactinformation", (), False),
    ("jobtitle", "Job Title", "string", "text", "contactinformation", (), False),
    ("city", "City", "string", "text", "contactinformation", (), False),
    ("country", "Country/Region", "string", "text", "contactinformation", (), False),
    ("industry", "Industry", "enumeration", "select", "contactinformation", INDUSTRIES, False),
    ("numberofemployees", "Number of Employees", "number", "number", "contactinformation", (), False),
    ("annualrevenue", "Annual Revenue", "number", "number", "contactinformation", (), False),
    ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", LIFECYCLE_OPTIONS, False),
    ("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", LEAD_STATUS, False),
    ("hs_analytics_source", "Original Traffic Source", "enumeration", "select", "analyticsinformation",
     ANALYTICS_SOURCES, False),
    ("hs_analytics_first_referrer", "First Referring Site", "string", "text", "analyticsinformation", (), True),
    ("hs_analytics_num_visits", "Number of Sessions", "number", "number", "analyticsinformation", (), True),
    ("hs_analytics_num_page_views", "Number of Pageviews", "number", "number", "analyticsinformation", (), True),
    ("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", "emailinformation",
     BOOL_OPTIONS, False),
    ("recent_conversion_date", "Recent Conversion Date", "datetime", "date", "contactinformation", (), True),
    ("recent_conversion_event_name", "Recent Conversion", "string", "text", "contactinformation", (), True),
    ("num_conversion_events", "Number of Form Submissions", "number", "number", "contactinformation", (), True),
    ("hubspotscore", "HubSpot Score", "number", "number", "contactinformation", (), True),
    ("hs_object_id", "Record ID", "number", "number", "contactinformation", (), True),
    ("createdate", "Create Date", "datetime", "date", "contactinformation", (), True),
    ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", (), True),
    # Set by HubSpot when a form is submitted (the sandbox's admin submissions set them too).
    ("first_conversion_date", "First Conversion Date", "datetime", "date", "conversioninformation", (), True),
    ("first_conversion_event_name", "First Conversion", "string", "text", "conversioninformation", (), True),
    ("recent_conversion_date", "Recent Conversion Date", "datetime", "date", "conversioninformation", (), True),
    ("recent_conversion_event_name", "Recent Conversion", "string", "text", "conversioninformation", (), True),
    ("num_conversion_events", "Number of Form Submissions", "number", "number", "conversioninformation", (), True),
)  # fmt: skip


def standard_properties(created_ms: int) -> list[PropertyDef]:
    return [
        PropertyDef(name, label, kind, ft, group, options, read_only=ro, hubspot_defined=True, created_ms=created_ms)
        for name, label, kind, ft, group, options, ro in _STANDARD
    ]


COMPANY_GROUPS = (PropertyGroup("companyinformation", "Company information", 0),)

# (name, label, type, fieldType, options, read-only): the firmographics account rules read.
_COMPANY_STANDARD: tuple[tuple[str, str, str, str, tuple[Option, ...], bool], ...] = (
    ("name", "Company name", "string", "text", (), False),
    ("domain", "Company Domain Name", "string", "text", (), False),
    ("industry", "Industry", "enumeration", "select", INDUSTRIES, False),
    ("numberofemployees", "Number of Employees", "number", "number", (), False),
    ("annualrevenue", "Annual Revenue", "number", "number", (), False),
    ("country", "Country/Region", "string", "text", (), False),
    ("city", "City", "string", "text", (), False),
    ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", LIFECYCLE_OPTIONS, False),
    ("hs_object_id", "Record ID", "number", "number", (), True),
    ("createdate", "Create Date", "datetime", "date", (), True),
    ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", (), True),
)


def standard_company_properties(created_ms: int) -> list[PropertyDef]:
    return [
        PropertyDef(name, label, kind, ft, "companyinformation", options, read_only=ro, hubspot_defined=True,
                    created_ms=created_ms)
        for name, label, kind, ft, options, ro in _COMPANY_STANDARD
    ]  # fmt: skip
