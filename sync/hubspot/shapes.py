"""HubSpot's JSON shapes -> the core's values. HubSpot wire names live here and nowhere else.

Except the property names the core itself plans writes to or reads (lifecyclestage, email): those are
defined once in sync.core.wire.

Each function takes one record as HubSpot sends it and returns a core value,
or raises SkippableRecordError naming what is wrong, so one bad record is
reported and skipped while the rest go on.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from sync.core.conditions import parse_date_ms, parse_number
from sync.core.model import (
    EMAIL_BOUNCE,
    EMAIL_CLICK,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    EMAIL_SENT,
    EMAIL_SPAM_REPORT,
    EMAIL_UNBOUNCE,
    EMAIL_UNSUBSCRIBE,
    Company,
    Contact,
    EmailEvent,
    FormSubmission,
)
from sync.core.wire import EMAIL, LIFECYCLE_STAGE
from sync.errors import SkippableRecordError
from sync.ports import Conversion

CREATE_DATE = "createdate"
LAST_MODIFIED = "lastmodifieddate"
COMPANY_LAST_MODIFIED = "hs_lastmodifieddate"  # companies name their modified date differently
OBJECT_ID = "hs_object_id"
# Set by HubSpot on a contact when it submits a form: its latest submission's time and name, and how many in all.
RECENT_CONVERSION_DATE = "recent_conversion_date"
RECENT_CONVERSION_NAME = "recent_conversion_event_name"
NUM_CONVERSIONS = "num_conversion_events"
CONVERSION_PROPERTIES = (EMAIL, RECENT_CONVERSION_DATE, RECENT_CONVERSION_NAME, NUM_CONVERSIONS)

# The Forms v3 API's form types (`formType`, and `formTypes` when listing). Only `hubspot` forms are
# listed unless `formTypes` asks for more; every type but blog comments is read by default (README "What counts").
FORM_TYPES = ("hubspot", "captured", "flow", "blog_comment")
DEFAULT_FORM_TYPES = ("hubspot", "captured", "flow")
CONTACT_OBJECT = "0-1"  # a form field's objectTypeId when it maps to a contact property
NO_CONVERSION_ID = "nocid:"  # the event id of a submission HubSpot sent without a conversionId
_EMAIL_LIKE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# HubSpot email event types -> the core's event types. STATUSCHANGE is handled apart (only some are an
# unsubscribe), and so are BOUNCE (hard or soft, obsoleted or not) and UNBOUNCE (it lifts earlier bounces).
_EMAIL_TYPES = {
    "SENT": EMAIL_SENT,
    "DELIVERED": EMAIL_DELIVERED,
    "OPEN": EMAIL_OPEN,
    "CLICK": EMAIL_CLICK,
    "BOUNCE": EMAIL_BOUNCE,
    "SPAMREPORT": EMAIL_SPAM_REPORT,
    "UNBOUNCE": EMAIL_UNBOUNCE,
}
# Real HubSpot types that no rule scores: ignored without a complaint. A DROPPED email was never sent; its
# dropReason (PREVIOUSLY_BOUNCED, PREVIOUSLY_UNSUBSCRIBED_..., ...) restates a bounce or an unsubscribe that
# already counted once.
UNSCORED_EMAIL_TYPES = frozenset({"DROPPED", "PROCESSED", "DEFERRED", "PRINT", "FORWARD"})

# Bounce categories that say the address itself is unusable: a hard bounce. Every other category (MAILBOX_FULL,
# THROTTLED, TIMEOUT, DNS_FAILURE, CONTENT, SPAM, POLICY, UNCATEGORIZED, ...) or none is soft: the next send may
# well arrive, or the fault is the sender's (README "What counts").
HARD_BOUNCE_CATEGORIES = frozenset({"UNKNOWN_USER", "MAILBOX_MISCONFIGURATION"})

# STATUSCHANGE sources that are not the recipient unsubscribing: a bounce or a spam report (those have their
# own events), an operator's bulk import or a migration, HubSpot's own clean-ups. Any other source (the
# recipient's preferences page or list-unsubscribe header, a portal user on their behalf, a complaint) counts.
NOT_AN_UNSUBSCRIBE_SOURCES = frozenset(
    {
        "SOURCE_NON_DELIVERY_REPORT",
        "SOURCE_BOUNCE",
        "SOURCE_SPAM_REPORT",
        "SOURCE_IMPORT",
        "SOURCE_MIGRATION",
        "SOURCE_HUBSPOT_CLEANUP",
        "SOURCE_KNOWN_SPAM_TRAP",
        "SOURCE_MTA_RECORD",
        "SOURCE_NON_COMPLIANCE",
    }
)
# The subscriptions timeline's changeType, when a status change carries one: a bounce or spam report is not
# an unsubscribe either.
NOT_AN_UNSUBSCRIBE_CHANGES = frozenset({"PORTAL_BOUNCE", "PORTAL_SPAM_REPORT"})


def email_event_key(event_id: str, created_ms: int) -> str:
    """An email event's identity: HubSpot's id is unique only together with the event's created time."""
    return f"{event_id}:{created_ms}"


def email_event_wire_id(event: EmailEvent) -> str:
    """HubSpot's id of an event whose identity `email_event_key` made (a bare id is returned as it is)."""
    head, sep, tail = event.event_id.rpartition(":")
    return head if sep and tail == str(event.at_ms) else event.event_id


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _ms(record: str, field: str, value: Any) -> int:
    """An event's time: HubSpot sends epoch milliseconds, sometimes as strings, sometimes ISO text.

    A time at or before 1970-01-01 (0 or negative) cannot be a real event: the record is skipped. A time
    after now is kept; the core counts an event only from its time on (README "Edge data").
    """
    if isinstance(value, bool):
        raise SkippableRecordError(record, f"{field} is not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise SkippableRecordError(record, f"{field} is not a finite timestamp: {value!r}")
        parsed: int | None = int(value)
    else:
        parsed = parse_date_ms(value) if isinstance(value, str) else None
    if parsed is None:
        raise SkippableRecordError(record, f"{field} is missing or not a timestamp: {value!r}")
    if parsed <= 0:
        raise SkippableRecordError(record, f"{field} {value!r} is at or before 1970-01-01: not a real time")
    return parsed


def _created_ms(record: str, value: str | None) -> int | None:
    """A contact's create date: None when empty or blank, and when at or before 1970-01-01 (it cannot be
    real; the contact is still scored, with no create date). A future date is kept: ages count it as 0 days.
    A value that is no date at all skips the contact."""
    if value is None or not value.strip():
        return None
    parsed = parse_date_ms(value)
    if parsed is None:
        raise SkippableRecordError(record, f"{CREATE_DATE} is not a date: {value!r}")
    return parsed if parsed > 0 else None


def contact_from_wire(raw: Any, list_ids: frozenset[int] = frozenset()) -> Contact:
    """`{"id", "properties": {...}}` -> Contact. Property values stay strings; nulls are dropped."""
    if not isinstance(raw, Mapping):
        raise SkippableRecordError("contact", "is not an object")
    cid = _text(raw.get("id")).strip()
    if not cid:
        raise SkippableRecordError("contact", "has no id")
    record = f"contact {cid}"
    props_raw = raw.get("properties") or {}
    if not isinstance(props_raw, Mapping):
        raise SkippableRecordError(record, "properties is not an object")
    props = {str(k): _text(v) for k, v in props_raw.items() if v is not None}
    return Contact(
        id=cid,
        properties=props,
        email=props.get(EMAIL, "").strip().lower(),
        created_at_ms=_created_ms(record, props.get(CREATE_DATE)),
        lifecycle_stage=props.get(LIFECYCLE_STAGE, ""),
        list_ids=list_ids,
    )


def company_from_wire(item: Any) -> Company:
    """`{"id", "properties": {...}}` -> Company: a numeric id, property values as strings, nulls dropped."""
    if not isinstance(item, Mapping):
        raise SkippableRecordError("company", "is not an object")
    cid = _text(item.get("id")).strip()
    if not cid:
        raise SkippableRecordError("company", "has no id")
    if not (cid.isascii() and cid.isdigit()):
        raise SkippableRecordError(f"company {cid}", "id is not numeric")
    props = item.get("properties") or {}
    if not isinstance(props, Mapping):
        raise SkippableRecordError(f"company {cid}", "properties is not an object")
    return Company(str(int(cid)), {str(k): str(v) for k, v in props.items() if v is not None})


def conversion_from_wire(raw: Any) -> Conversion:
    """A contact of the conversions search -> its most recent conversion (recent_conversion_date, whose time
    is HubSpot's ISO text or epoch ms; a contact without one is skipped)."""
    if not isinstance(raw, Mapping):
        raise SkippableRecordError("contact", "is not an object")
    cid = _text(raw.get("id")).strip()
    record = f"contact {cid or '?'}"
    props = raw.get("properties") or {}
    if not cid or not isinstance(props, Mapping):
        raise SkippableRecordError(record, "has no id or no properties")
    at_ms = _ms(record, RECENT_CONVERSION_DATE, props.get(RECENT_CONVERSION_DATE))
    count = parse_number(_text(props.get(NUM_CONVERSIONS)))
    return Conversion(
        contact_id=cid,
        email=_text(props.get(EMAIL)).strip().lower(),
        at_ms=at_ms,
        name=_text(props.get(RECENT_CONVERSION_NAME)).strip(),
        count=int(count) if count is not None and count >= 0 and count == int(count) else None,
    )


def submission_from_wire(raw: Any, form_id: str, form_name: str = "") -> FormSubmission:
    """One result of the form submissions endpoint; its email value ties it to a contact (`submission_email`).

    Its event id is HubSpot's `conversionId`; a submission without one gets a stable key of its form, time
    and email instead, so reading it again finds the same event (README "What counts")."""
    if not isinstance(raw, Mapping):
        raise SkippableRecordError(f"submission of form {form_id}", "is not an object")
    conversion = _text(raw.get("conversionId")).strip()
    record = f"submission {conversion}" if conversion else f"submission of form {form_id} without conversionId"
    values = raw.get("values") or []
    if not isinstance(values, list):
        raise SkippableRecordError(record, "values is not a list")
    email = submission_email(values)
    if not email:
        raise SkippableRecordError(record, "has no email value to tie it to a contact")
    at_ms = _ms(record, "submittedAt", raw.get("submittedAt"))
    return FormSubmission(
        event_id=conversion or no_conversion_key(form_id, at_ms, email),
        at_ms=at_ms,
        email=email,
        form_id=form_id,
        form_name=form_name,
        page_url=_text(raw.get("pageUrl")),
    )


def submission_email(values: list[Any]) -> str:
    """The email address a submission's values give, lowercased; "" when none.

    The value of the field named `email` (unless its objectTypeId names another object than a contact);
    else the first contact field (objectTypeId `0-1`) whose value looks like an address (one `@`, a dot in
    the domain, no spaces): a form may map the contact's email to a field of another name."""
    fields = [item for item in values if isinstance(item, Mapping)]
    for item in fields:
        object_type = _text(item.get("objectTypeId")).strip()
        if _text(item.get("name")).strip().lower() == EMAIL and object_type in ("", CONTACT_OBJECT):
            value = _text(item.get("value")).strip().lower()
            if value:
                return value
    for item in fields:
        if _text(item.get("objectTypeId")).strip() == CONTACT_OBJECT:
            value = _text(item.get("value")).strip().lower()
            if _EMAIL_LIKE.match(value):
                return value
    return ""


def no_conversion_key(form_id: str, at_ms: int, email: str) -> str:
    """The event id of a submission without a conversionId: the same submission always gets the same key."""
    digest = hashlib.sha1(f"{form_id}\n{at_ms}\n{email}".encode(), usedforsecurity=False).hexdigest()
    return NO_CONVERSION_ID + digest


def email_event_from_wire(raw: Any) -> EmailEvent | None:
    """One marketing email event, or None for one that no rule scores (README "What counts")."""
    if not isinstance(raw, Mapping):
        raise SkippableRecordError("email event", "is not an object")
    eid = _text(raw.get("id")).strip()
    if not eid:
        raise SkippableRecordError("email event", "has no id")
    record = f"email event {eid}"
    wire_type = _text(raw.get("type")).upper()
    category = ""
    if wire_type == "STATUSCHANGE":
        if not _is_unsubscribe(raw):
            return None
        kind = EMAIL_UNSUBSCRIBE
    elif wire_type == "BOUNCE" and _present(raw.get("obsoletedBy")):
        return None  # a later event made this bounce obsolete (HubSpot's obsoletedBy)
    elif wire_type in _EMAIL_TYPES:
        kind = _EMAIL_TYPES[wire_type]
        if kind == EMAIL_BOUNCE:
            category = _text(raw.get("category")).strip().upper()
    elif wire_type in UNSCORED_EMAIL_TYPES:
        return None
    else:
        raise SkippableRecordError(record, f"unknown event type {raw.get('type')!r}")
    recipient = _text(raw.get("recipient")).strip().lower()
    if not recipient:
        raise SkippableRecordError(record, "has no recipient")
    at_ms = _ms(record, "created", raw.get("created"))
    return EmailEvent(
        event_id=email_event_key(eid, at_ms),
        kind=kind,
        at_ms=at_ms,
        email=recipient,
        campaign_id=_text(raw.get("emailCampaignId")),
        url=_text(raw.get("url")),
        filtered=_flag(raw.get("filteredEvent")),
        category=category,
        soft_bounce=kind == EMAIL_BOUNCE and category not in HARD_BOUNCE_CATEGORIES,
    )


def _present(value: Any) -> bool:
    """Whether an event reference (obsoletedBy: {id, created}, or a bare id) is set."""
    if isinstance(value, Mapping):
        return bool(_text(value.get("id")).strip())
    return bool(_text(value).strip())


def _is_unsubscribe(raw: Mapping[str, Any]) -> bool:
    """A STATUSCHANGE the recipient made to unsubscribe: from everything (portalSubscriptionStatus UNSUBSCRIBED,
    whatever the subscriptions array says: HubSpot documents it as neither necessarily empty nor all
    unsubscribed) or from one subscription type. Not when a bounce, a spam report, an import or HubSpot made it."""
    if _text(raw.get("source")).strip().upper() in NOT_AN_UNSUBSCRIBE_SOURCES:
        return False
    if _text(raw.get("changeType")).strip().upper() in NOT_AN_UNSUBSCRIBE_CHANGES:
        return False
    if _flag(raw.get("bounced")):
        return False  # HubSpot's (deprecated) block of a recipient, not the recipient's choice
    if _text(raw.get("portalSubscriptionStatus")).strip().upper() == "UNSUBSCRIBED":
        return True
    subscriptions = raw.get("subscriptions")
    if not isinstance(subscriptions, list):
        return False
    return any(
        isinstance(s, Mapping) and _text(s.get("status")).strip().upper() == "UNSUBSCRIBED" for s in subscriptions
    )


def _flag(value: Any) -> bool:
    """HubSpot booleans arrive as true/false, sometimes as the strings "true"/"false"."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# -- core values back to HubSpot's shapes (a snapshot file of a live portal) ------------------------

_WIRE_EMAIL_TYPES = {kind: wire for wire, kind in _EMAIL_TYPES.items()}


def contact_to_wire(contact: Contact) -> dict[str, Any]:
    properties = dict(contact.properties)
    properties.setdefault(LIFECYCLE_STAGE, contact.lifecycle_stage)
    if contact.email:
        properties.setdefault(EMAIL, contact.email)
    if contact.created_at_ms is not None:
        properties.setdefault(CREATE_DATE, str(contact.created_at_ms))
    return {"id": contact.id, "properties": properties}


def submission_to_wire(submission: FormSubmission) -> dict[str, Any]:
    return {
        "formId": submission.form_id,
        "conversionId": submission.event_id,
        "submittedAt": submission.at_ms,
        "values": [{"name": EMAIL, "value": submission.email}],
        "pageUrl": submission.page_url,
    }


def email_event_to_wire(event: EmailEvent) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "id": email_event_wire_id(event),
        "recipient": event.email,
        "created": event.at_ms,
        "emailCampaignId": event.campaign_id,
        "filteredEvent": event.filtered,
    }
    if event.url:
        wire["url"] = event.url
    if event.kind == EMAIL_UNSUBSCRIBE:
        wire.update(type="STATUSCHANGE", portalSubscriptionStatus="UNSUBSCRIBED", subscriptions=[])
    else:
        wire["type"] = _WIRE_EMAIL_TYPES[event.kind]
    if event.kind == EMAIL_BOUNCE:
        # A bounce stored without a category (none sent) reads back soft, as it was read.
        wire["category"] = event.category
    return wire
