"""ensure_properties(): the property group and the properties this worker owns, created idempotently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate, PropertyUpdate

from sync.errors import ConfigError, ConfigProblem
from sync.hubspot.client import HubSpotClient
from sync.hubspot.errors import RejectedError
from sync.ports import PropertySpec

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
    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    def ensure(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> list[str]:
        """Create what is missing, add missing enumeration options; returns what was changed."""
        changed: list[str] = []
        try:
            self.client.sdk(
                "properties.create_group",
                self.client.properties_groups.create,
                "contacts",
                property_group_create=PropertyGroupCreate(name=group, label=group_label),
            )
            changed.append(f"group {group}")
        except RejectedError as exc:
            if exc.status != 409:  # 409: it exists already
                raise
        for spec in specs:
            changed += self._ensure_one(group, spec)
        return changed

    def _ensure_one(self, group: str, spec: PropertySpec) -> list[str]:
        kind, field_type = FIELD_TYPES[spec.type]
        try:
            current = self.client.sdk("properties.get", self.client.properties_core.get_by_name, "contacts", spec.name)
        except RejectedError as exc:
            if exc.status != 404:
                raise
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
                    "properties.create", self.client.properties_core.create, "contacts", property_create=create
                )
            except RejectedError as conflict:
                if conflict.status != 409:  # created meanwhile by another replica: fine
                    raise
            return [f"property {spec.name}"]
        body = current.body or {}
        if body.get("type") != kind:
            raise ConfigError(
                [
                    ConfigProblem(
                        "HubSpot",
                        None,
                        f"properties.{spec.name}",
                        f"the portal already has {spec.name} of type {body.get('type')!r}; leadsync needs {kind!r}. "
                        "Rename the property in the config (properties:) or in HubSpot.",
                    )
                ]
            )
        if spec.type == "enumeration":
            have = [str(o.get("value")) for o in body.get("options") or []]
            missing = [o for o in spec.options if o not in have]
            if missing:
                update = PropertyUpdate(options=_options([*have, *missing]))
                self.client.sdk(
                    "properties.update",
                    self.client.properties_core.update,
                    "contacts",
                    spec.name,
                    property_update=update,
                )
                return [f"options of {spec.name}: {', '.join(missing)}"]
        return []
