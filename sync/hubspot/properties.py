"""ensure_properties(): the property group and the properties this worker owns, created idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate, PropertyUpdate

from sync.errors import ConfigError, ConfigProblem
from sync.hubspot.client import HubSpotClient
from sync.hubspot.errors import RejectedError
from sync.ports import PropertyInfo, PropertySpec

# Our property types -> HubSpot's (type, fieldType).
FIELD_TYPES = {
    "number": ("number", "number"),
    "enumeration": ("enumeration", "select"),
    "string": ("string", "textarea"),
    "datetime": ("datetime", "date"),
}


def _options(values: Sequence[str]) -> list[dict[str, Any]]:
    return [{"label": v, "value": v, "hidden": False, "displayOrder": i} for i, v in enumerate(values)]


class Properties:
    """The properties of one object type: "contacts" (the default) or "companies"."""

    def __init__(self, client: HubSpotClient, object_type: str = "contacts") -> None:
        self.client = client
        self.object_type = object_type

    def definitions(self) -> dict[str, PropertyInfo]:
        """Every property of the object type, by name (read-only)."""
        body = self.client.sdk("properties.list", self.client.properties_core.get_all, self.object_type).body or {}
        found: dict[str, PropertyInfo] = {}
        for raw in body.get("results") or []:
            if isinstance(raw, dict) and raw.get("name"):
                found[str(raw["name"])] = _info(raw)
        return found

    def ensure(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create what is missing, add missing enumeration options; returns what was changed.

        Every property is read and checked before anything is created: a conflict found on the last one
        leaves the portal untouched."""
        current: dict[str, dict[str, Any] | None] = {}
        problems: list[ConfigProblem] = []
        for spec in specs:
            body = self._read(spec.name)
            current[spec.name] = body
            if body is not None:
                problems += _conflicts(group, spec, body)
        if problems:
            raise ConfigError(problems)
        changed: list[str] = []
        try:
            self.client.sdk(
                "properties.create_group",
                self.client.properties_groups.create,
                self.object_type,
                property_group_create=PropertyGroupCreate(name=group, label=group_label),
            )
            changed.append(f"group {group}")
        except RejectedError as exc:
            if exc.status != 409:  # 409: it exists already
                raise
        for spec in specs:
            changed += self._ensure_one(group, spec, current[spec.name])
        return changed

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            get_by_name = self.client.properties_core.get_by_name
            body = self.client.sdk("properties.get", get_by_name, self.object_type, name).body
        except RejectedError as exc:
            if exc.status != 404:
                raise
            return None
        return body if isinstance(body, dict) else {}

    def _ensure_one(self, group: str, spec: PropertySpec, body: dict[str, Any] | None) -> list[str]:
        kind, field_type = FIELD_TYPES[spec.type]
        if body is None:
            create = PropertyCreate(
                name=spec.name,
                label=spec.label,
                type=kind,
                field_type=field_type,
                group_name=group,
                options=_options(spec.options) if spec.type == "enumeration" else None,
            )
            try:
                self.client.sdk(
                    "properties.create", self.client.properties_core.create, self.object_type, property_create=create
                )
            except RejectedError as conflict:
                if conflict.status != 409:  # created meanwhile by another replica: fine
                    raise
            return [f"property {spec.name}"]
        if spec.type == "enumeration":
            have = [str(o.get("value")) for o in body.get("options") or []]
            missing = [o for o in spec.options if o not in have]
            if missing:
                update = PropertyUpdate(options=_options([*have, *missing]))
                self.client.sdk(
                    "properties.update",
                    self.client.properties_core.update,
                    self.object_type,
                    spec.name,
                    property_update=update,
                )
                return [f"options of {spec.name}: {', '.join(missing)}"]
        return []


def _conflicts(group: str, spec: PropertySpec, body: dict[str, Any]) -> list[ConfigProblem]:
    """Why leadsync may not write an existing property: another type, or someone else's and not adopted."""
    kind = FIELD_TYPES[spec.type][0]
    problems = []
    if body.get("type") != kind:
        problems.append(
            ConfigProblem(
                "HubSpot",
                None,
                f"properties.{spec.name}",
                f"the portal already has {spec.name} of type {body.get('type')!r}; leadsync needs {kind!r}. "
                "Rename the property in the config (properties:) or in HubSpot.",
            )
        )
    owner = str(body.get("groupName") or "")
    if owner != group and not spec.adopted:
        whose = "a HubSpot default property" if body.get("hubspotDefined") else f"in group {owner!r}"
        problems.append(
            ConfigProblem(
                "HubSpot",
                None,
                f"properties.{spec.name}",
                f"{spec.name} already exists in HubSpot ({whose}), outside leadsync's group {group!r}: leadsync "
                f"writes only its own properties. Rename the output in the config (properties:), or, to take this "
                f"property over, list it under properties.adopt.",
            )
        )
    return problems


def _info(raw: dict[str, Any]) -> PropertyInfo:
    options = tuple(str(o.get("value")) for o in raw.get("options") or [] if isinstance(o, dict))
    return PropertyInfo(
        name=str(raw["name"]),
        type=str(raw.get("type") or ""),
        group=str(raw.get("groupName") or ""),
        options=options,
        hubspot_defined=bool(raw.get("hubspotDefined")),
    )
