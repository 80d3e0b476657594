"""The records a sandbox portal holds, each able to render itself in HubSpot's wire shape.

Records use __slots__: a 100,000-contact portal with its events should fit in a few
hundred MB, and rendering a page must not copy more than it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.hubspot.shapes import FORM_TYPES
from sync.sandbox.wire import JsonObject, iso_ms


class ContactRecord:
    """One contact. hs_object_id, createdate and lastmodifieddate live in fields, not in `props`."""

    MODIFIED = "lastmodifieddate"  # the name HubSpot gives the record's last-modified date on this object type
    __slots__ = ("_created_iso", "_updated_iso", "created_ms", "id", "props", "sid", "updated_ms")

    def __init__(self, cid: int, props: dict[str, str], created_ms: int, updated_ms: int) -> None:
        self.id = cid
        self.sid = str(cid)
        self.props = props
        self.created_ms = created_ms
        self.updated_ms = updated_ms
        # Rendered on first use: building a 100,000-contact portal should not format 200,000 dates.
        self._created_iso: str | None = None
        self._updated_iso: str | None = None

    @property
    def created_iso(self) -> str:
        if self._created_iso is None:
            self._created_iso = iso_ms(self.created_ms)
        return self._created_iso

    @property
    def updated_iso(self) -> str:
        if self._updated_iso is None:
            self._updated_iso = iso_ms(self.updated_ms)
        return self._updated_iso

    def touch(self, ms: int) -> None:
        self.updated_ms = ms
        self._updated_iso = None

    def set_created(self, ms: int) -> None:
        self.created_ms = ms
        self._created_iso = None

    def wire(self, names: Sequence[str]) -> JsonObject:
        """`names` are known, non-record properties; a requested property without a value is null, as in HubSpot."""
        created, updated = self.created_iso, self.updated_iso
        props: dict[str, str | None] = {n: self.props.get(n) for n in names}
        props["hs_object_id"] = self.sid
        props["createdate"] = created
        props[self.MODIFIED] = updated
        return {"id": self.sid, "properties": props, "createdAt": created, "updatedAt": updated, "archived": False}

    def snapshot(self) -> JsonObject:
        props: dict[str, str] = {
            "hs_object_id": self.sid,
            "createdate": self.created_iso,
            self.MODIFIED: self.updated_iso,
        }
        props.update(sorted(self.props.items()))
        return {"id": self.sid, "properties": props}


class CompanyRecord(ContactRecord):
    """One company: a record like a contact's, whose last-modified date HubSpot names hs_lastmodifieddate."""

    MODIFIED = "hs_lastmodifieddate"
    __slots__ = ()


@dataclass(frozen=True)
class FormRecord:
    """A form; `form_type` is one of FORM_TYPES (`flow` is a pop-up, `captured` a non-HubSpot form)."""

    id: str
    name: str
    created_ms: int
    fields: tuple[str, ...] = ("email", "firstname", "lastname")
    form_type: str = "hubspot"
    archived: bool = False

    def __post_init__(self) -> None:
        if self.form_type not in FORM_TYPES:
            raise ValueError(f"form type {self.form_type!r} is not one of {', '.join(FORM_TYPES)}")

    def wire(self) -> JsonObject:
        return {
            "id": self.id,
            "name": self.name,
            "formType": self.form_type,
            "createdAt": iso_ms(self.created_ms),
            "updatedAt": iso_ms(self.created_ms),
            "archived": self.archived,
            "fieldGroups": [
                {"groupType": "default_group", "richTextType": "text", "fields": [_form_field(f)]} for f in self.fields
            ],
            "configuration": {
                "language": "en",
                "cloneable": True,
                "postSubmitAction": {"type": "thank_you", "value": "Thanks for submitting the form."},
                "editable": True,
                "archivable": True,
                "recaptchaEnabled": False,
                "notifyContactOwner": False,
                "notifyRecipients": [],
                "createNewContactForNewEmail": False,
                "prePopulateKnownValues": True,
                "allowLinkToResetKnownValues": False,
                "lifecycleStages": [],
            },
            "displayOptions": {
                "renderRawHtml": False,
                "theme": "default_style",
                "submitButtonText": "Submit",
                "style": {
                    "fontFamily": "arial, helvetica, sans-serif",
                    "backgroundWidth": "100%",
                    "labelTextColor": "#33475b",
                    "labelTextSize": "14px",
                    "helpTextColor": "#7C98B6",
                    "helpTextSize": "11px",
                    "legalConsentTextColor": "#33475b",
                    "legalConsentTextSize": "14px",
                    "submitColor": "#ff7a59",
                    "submitAlignment": "left",
                    "submitFontColor": "#ffffff",
                    "submitSize": "12px",
                },
                "cssClass": "",
            },
            "legalConsentOptions": {"type": "none"},
        }

    def snapshot(self) -> JsonObject:
        return {"id": self.id, "name": self.name, "formType": self.form_type, "archived": self.archived}


def _form_field(name: str) -> JsonObject:
    base: JsonObject = {
        "objectTypeId": "0-1",
        "name": name,
        "label": name.replace("_", " ").capitalize(),
        "required": name == "email",
        "hidden": False,
        "dependentFields": [],
        "fieldType": "email" if name == "email" else "single_line_text",
    }
    if name == "email":
        base["validation"] = {"blockedEmailDomains": [], "useDefaultBlockList": False}
    return base


class Submission:
    """A form submission. `values` are (name, value) pairs, or (name, value, objectTypeId) triples for values
    that carry the object they map to (`0-1`: a contact property). `conversion_id` is the sandbox's own key
    (order, paging); with `sends_conversion_id=False` the API and the snapshot leave it out, as some HubSpot
    responses do."""

    __slots__ = ("conversion_id", "form_id", "page_url", "sends_conversion_id", "submitted_at", "values")

    def __init__(
        self,
        form_id: str,
        conversion_id: str,
        submitted_at: int,
        values: Sequence[tuple[str, str] | tuple[str, str, str]],
        page_url: str,
        *,
        sends_conversion_id: bool = True,
    ) -> None:
        self.form_id = form_id
        self.conversion_id = conversion_id
        self.submitted_at = submitted_at
        self.values = tuple(values)
        self.page_url = page_url
        self.sends_conversion_id = sends_conversion_id

    def wire(self) -> JsonObject:
        body: JsonObject = {"conversionId": self.conversion_id} if self.sends_conversion_id else {}
        body["submittedAt"] = self.submitted_at
        body["values"] = [_value_wire(v) for v in self.values]
        body["pageUrl"] = self.page_url
        return body

    def snapshot(self) -> JsonObject:
        return {"formId": self.form_id, **self.wire()}


def _value_wire(value: tuple[str, str] | tuple[str, str, str]) -> JsonObject:
    if len(value) == 3:
        return {"objectTypeId": value[2], "name": value[0], "value": value[1]}
    return {"name": value[0], "value": value[1]}


class EmailEventRecord:
    """A marketing email event; `extra` carries the per-type fields (url, category, subscriptions, ...)."""

    __slots__ = ("campaign_id", "created", "extra", "filtered", "id", "portal_id", "recipient", "type")

    def __init__(
        self,
        event_id: str,
        created: int,
        kind: str,
        recipient: str,
        campaign_id: int,
        portal_id: int,
        filtered: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = event_id
        self.created = created
        self.type = kind
        self.recipient = recipient
        self.campaign_id = campaign_id
        self.portal_id = portal_id
        self.filtered = filtered
        self.extra = dict(extra) if extra else None

    @property
    def key(self) -> tuple[int, str]:
        return (self.created, self.id)

    def wire(self) -> JsonObject:
        event: JsonObject = {
            "id": self.id,
            "created": self.created,
            "type": self.type,
            "recipient": self.recipient,
            "emailCampaignId": self.campaign_id,
            "portalId": self.portal_id,
            "filteredEvent": self.filtered,
        }
        if self.extra:
            event.update(self.extra)
        return event


@dataclass
class ListRecord:
    list_id: int
    name: str
    members: dict[int, int] = field(default_factory=dict)  # contact id -> membership time (ms)

    def snapshot(self) -> JsonObject:
        ids = sorted(self.members)
        return {
            "listId": self.list_id,
            "name": self.name,
            "contactIds": [str(i) for i in ids],
            "membershipTimestamps": {str(i): self.members[i] for i in ids},
        }


@dataclass(frozen=True)
class WriteRecord:
    """One applied API write to one contact: what a test asks "did the worker write, and what?"."""

    contact_id: str
    properties: dict[str, str]
    at_ms: int

    def wire(self) -> JsonObject:
        return {"contactId": self.contact_id, "properties": self.properties, "at": self.at_ms}


def pairs(values: Iterable[Any]) -> list[tuple[str, str] | tuple[str, str, str]]:
    """`[{"name", "value", "objectTypeId"?}]` -> [(name, value) or (name, value, objectTypeId)], skipping
    entries without a name."""
    out: list[tuple[str, str] | tuple[str, str, str]] = []
    for item in values:
        if isinstance(item, Mapping) and item.get("name") is not None:
            value = "" if item.get("value") is None else str(item.get("value"))
            if item.get("objectTypeId") is not None:
                out.append((str(item["name"]), value, str(item["objectTypeId"])))
            else:
                out.append((str(item["name"]), value))
    return out
