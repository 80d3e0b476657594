"""The property registry of one object type: its properties, their groups, and what a write may put in them.

Not locked: the portal front holds the lock around every call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sync.sandbox.properties import DEFAULT_PROPERTIES, Option, PropertyDef, PropertyGroup
from sync.sandbox.search import requested_properties
from sync.sandbox.wire import ApiError, JsonObject, bad_request, not_found

# HubSpot's error code for a value of each type that does not fit the property.
_INVALID_CODES = {"number": "INVALID_NUMBER", "enumeration": "INVALID_OPTION", "bool": "INVALID_BOOLEAN"}


class PropertyRegistry:
    def __init__(
        self,
        object_type: str,
        properties: Iterable[PropertyDef],
        groups: Iterable[PropertyGroup],
        defaults: Sequence[str] = DEFAULT_PROPERTIES,
    ) -> None:
        self.object_type = object_type  # "contacts": HubSpot names it in its messages
        self.defaults = tuple(defaults)  # what a read without `properties` renders
        self.props: dict[str, PropertyDef] = {p.name: p for p in properties}
        self.groups: dict[str, PropertyGroup] = {g.name: g for g in groups}
        self._standard = frozenset(self.props)
        self._standard_groups = frozenset(self.groups)

    # --- building ------------------------------------------------------------------------------

    def define_group(self, group: PropertyGroup) -> None:
        self.groups.setdefault(group.name, group)

    def define(self, prop: PropertyDef) -> None:
        if prop.group_name not in self.groups:
            self.groups[prop.group_name] = PropertyGroup(prop.group_name, prop.group_name.replace("_", " "))
        self.props.setdefault(prop.name, prop)

    def redefine(self, prop: PropertyDef) -> None:
        self.props[prop.name] = prop

    def add_option(self, name: str, value: str, label: str) -> None:
        prop = self.props[name]
        option = Option(label, value, len(prop.options))
        self.props[name] = dataclasses.replace(prop, options=(*prop.options, option))

    # --- the properties API ----------------------------------------------------------------------

    def get(self, name: str) -> PropertyDef | None:
        return self.props.get(name)

    def wire_all(self) -> list[JsonObject]:
        return [p.to_wire() for p in self.props.values()]

    def wire(self, name: str) -> JsonObject:
        return self._existing(name).to_wire()

    def create(self, raw: Any, now_ms: int) -> JsonObject:
        name = raw.get("name") if isinstance(raw, Mapping) else None
        if isinstance(name, str) and name in self.props:
            raise ApiError(409, "CONFLICT", f"Property named '{name}' already exists.", subCategory="PROPERTY_EXISTS")
        prop = PropertyDef.from_wire(raw, now_ms, self.groups)
        self.props[prop.name] = prop
        return prop.to_wire()

    def update(self, name: str, raw: Any, now_ms: int) -> JsonObject:
        updated = self._existing(name).patched(raw, now_ms, self.groups)
        self.props[name] = updated
        return updated.to_wire()

    def _existing(self, name: str) -> PropertyDef:
        prop = self.props.get(name)
        if prop is None:
            raise not_found(
                f"Unable to find property {name} for object type {self.object_type}", subCategory="NOT_FOUND"
            )
        return prop

    def groups_wire(self) -> list[JsonObject]:
        return [g.to_wire() for g in self.groups.values()]

    def group_wire(self, name: str) -> JsonObject:
        group = self.groups.get(name)
        if group is None:
            raise not_found(f"Unable to find property group {name} for object type {self.object_type}")
        return group.to_wire()

    def create_group(self, raw: Any) -> JsonObject:
        if not isinstance(raw, Mapping) or not raw.get("name") or not raw.get("label"):
            raise bad_request("A property group needs a name and a label")
        name = str(raw["name"])
        if name in self.groups:
            raise ApiError(409, "CONFLICT", f"Property group named '{name}' already exists.")
        order = raw.get("displayOrder", -1)
        if not isinstance(order, int) or isinstance(order, bool):
            raise bad_request(f"displayOrder must be an integer, got {order!r}")
        group = PropertyGroup(name, str(raw["label"]), order)
        self.groups[name] = group
        return group.to_wire()

    def requested(self, names: Sequence[str] | None) -> tuple[str, ...]:
        return requested_properties(names, self.props, self.defaults)

    # --- what a write may put in a property ------------------------------------------------------

    def validate(self, name: str, raw: Any, problems: list[JsonObject]) -> str | None:
        """A worker's write as HubSpot checks it: the normalized value, or None with the problem appended."""
        prop = self.props.get(name)
        if prop is None:
            problems.append(_problem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            return None
        if prop.read_only:
            problems.append(
                _problem(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
            )
            return None
        try:
            return prop.normalize(raw)
        except ValueError as exc:
            problems.append(_problem(name, _INVALID_CODES.get(prop.type, "INVALID_VALUE"), f"{exc} (property {name})"))
            return None

    def admin_values(self, values: Mapping[str, Any], where: str) -> dict[str, str]:
        """An admin edit's values, normalized: any existing property, read-only ones included; 400 otherwise."""
        normalized: dict[str, str] = {}
        for name, raw in values.items():
            prop = self.props.get(str(name))
            if prop is None:
                raise bad_request(f"{where}: property {name!r} does not exist")
            try:
                normalized[str(name)] = prop.normalize(raw)
            except ValueError as exc:
                raise bad_request(f"{where}: {exc}") from None
        return normalized

    # --- snapshots -------------------------------------------------------------------------------

    def snapshot(self) -> JsonObject:
        """The custom groups and properties (the standard ones every portal starts with are left out)."""
        return {
            "property_groups": [
                {"name": g.name, "label": g.label} for g in self.groups.values() if g.name not in self._standard_groups
            ],
            "properties": [p.snapshot() for p in self.props.values() if p.name not in self._standard],
        }


def _problem(name: str, code: str, message: str) -> JsonObject:
    return {"message": message, "code": code, "context": {"propertyName": [name]}}
