"""What to fix when HubSpot refuses a write: HubSpot's error code -> a reason that says so.

A refused write becomes a dead letter whose reason an operator reads (`leadsync dead-letters list`):
for the refusals with a known cause it names the property, the value and the fix, not only HubSpot's words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sync.core.wire import LIFECYCLE_STAGE

OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"

# HubSpot's code -> (what is wrong, what to do); {name}, {value} and {options} filled in.
ADVICE: dict[str, tuple[str, str]] = {
    "INVALID_OPTION": (
        "not an option of {name} (options: {options})",
        "add the option in HubSpot or change {config_key} in the config",
    ),
    "READ_ONLY_VALUE": (
        "{name} is read-only in HubSpot (calculated, or set by another app)",
        "write to another property: change properties: in the config",
    ),
    "PROPERTY_DOESNT_EXIST": (
        "HubSpot has no property {name} (deleted?)",
        "restart leadsync (it creates its own properties when it starts) or fix properties: in the config",
    ),
    OBJECT_NOT_FOUND: (
        "the contact was deleted or merged in HubSpot",
        "nothing to fix: the letter closes when retried",
    ),
}
# Where in the portal file a property's values come from, for the INVALID_OPTION advice.
CONFIG_KEYS = {LIFECYCLE_STAGE: "lifecycle stages"}
DEFAULT_CONFIG_KEY = "grades:"

OptionsOf = Callable[[str], Sequence[str] | None]


def explain_refusal(body: Any, message: str, properties: Mapping[str, str], options_of: OptionsOf) -> str:
    """The dead letter's reason for a write HubSpot refused with this error body (parsed JSON or None)."""
    problems = _problems(body, message)
    if not problems:
        return message
    parts = []
    for code, name in problems:
        value = properties.get(name, "")
        advice = ADVICE.get(code)
        if advice is None:
            parts.append(f"HubSpot rejected {name}={value}: {message}")
            continue
        options = ", ".join(options_of(name) or ()) or "none"
        what, fix = advice
        config_key = CONFIG_KEYS.get(name, DEFAULT_CONFIG_KEY)
        fields = {"name": name, "value": value, "options": options, "config_key": config_key}
        parts.append(f"HubSpot rejected {name}={value}: {what.format(**fields)}; {fix.format(**fields)}")
    return "; ".join(parts)


def not_found_reason(message: str) -> str:
    what, _ = ADVICE[OBJECT_NOT_FOUND]
    return f"{what} (HubSpot: {message})" if message else what


def _problems(body: Any, message: str) -> list[tuple[str, str]]:
    """(code, property name) of each property HubSpot names in its refusal."""
    found: list[tuple[str, str]] = []
    errors = body.get("errors") if isinstance(body, Mapping) else None
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, Mapping):
            continue
        context = error.get("context")
        names = context.get("propertyName") if isinstance(context, Mapping) else None
        for name in names if isinstance(names, list) else []:
            found.append((str(error.get("code") or ""), str(name)))
    if not found:
        # HubSpot itself puts the problems as JSON in the message: 'Property values were not valid: [{...}]'.
        start = message.find("[")
        try:
            listed = json.loads(message[start:]) if start >= 0 else []
        except ValueError:
            listed = [{"error": c, "name": n} for c, n in re.findall(r'"error":"(\w+)","name":"(\w+)"', message)]
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, Mapping) and item.get("name"):
                found.append((str(item.get("error") or ""), str(item["name"])))
    return found
