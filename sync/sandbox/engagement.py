"""The engagement log: forms, their submissions, marketing email events, and the email events offsets.

Events are kept in (created, id) order overall and per type, submissions newest first per form.
Not locked: the portal front holds the lock around every call.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from sync.hubspot.shapes import FORM_TYPES, submission_email
from sync.sandbox.records import EmailEventRecord, FormRecord, Submission, pairs
from sync.sandbox.wire import ApiError, JsonObject, bad_request, decode_cursor, encode_cursor, not_found, parse_ms
from sync.snapshot import numeric

# How long an email events offset stays valid. HubSpot says its offsets are not meant to last and documents no
# lifetime (connectors have seen them last hours); five minutes is ample for paging a window without a pause.
DEFAULT_OFFSET_TTL_S = 300.0
_OFFSETS_KEPT = 10_000


@dataclasses.dataclass(frozen=True)
class EventQuery:
    """One email events request: created in [start, end], of one type or all, filtered ones left out or not."""

    start: int | None
    end: int | None
    event_type: str | None
    exclude_filtered: bool
    offset: str | None
    limit: int


@dataclasses.dataclass(frozen=True)
class _IssuedOffset:
    query: tuple[int | None, int | None, str | None, bool]  # start, end, type, excludeFilteredEvents
    after: tuple[int, str]  # the (created, id) of the last event handed out: the next page is older
    issued_ms: int


class EngagementLog:
    def __init__(self) -> None:
        self.forms: dict[str, FormRecord] = {}
        # Per form id, forms deleted since included: their submissions stay on the contacts and in snapshots.
        self.submissions: dict[str, list[Submission]] = {}
        self._conversion_ids: set[str] = set()
        self._per_email: dict[str, int] | None = None  # submissions per email (lowercased), counted when first asked
        self.events: list[EmailEventRecord] = []
        self._events_by_type: dict[str, list[EmailEventRecord]] = {}
        self._event_ids: set[tuple[str, int]] = set()  # (id, created): HubSpot's ids repeat across times
        # The email events' offsets handed out: token -> its query, position and when (they expire).
        self._offsets: dict[str, _IssuedOffset] = {}
        self._offset_serial = 0
        self.offset_ttl_seconds = DEFAULT_OFFSET_TTL_S

    # --- building --------------------------------------------------------------------------------

    def add_form(self, form: FormRecord) -> None:
        self.forms[form.id] = form
        self.submissions.setdefault(form.id, [])

    def remove_form(self, form_id: str) -> bool:
        return self.forms.pop(form_id, None) is not None

    def load(self, submissions: Iterable[Submission], events: Iterable[EmailEventRecord]) -> None:
        """Many at once: sorted once at the end instead of kept sorted per insert."""
        for sub in submissions:
            self.submissions.setdefault(sub.form_id, []).append(sub)
            self._conversion_ids.add(sub.conversion_id)
        for subs in self.submissions.values():
            subs.sort(key=_submission_key)
        self._per_email = None
        for event in events:
            self.events.append(event)
            self._event_ids.add((event.id, event.created))
        self.events.sort(key=_event_key)
        self._events_by_type = {}
        for event in self.events:
            self._events_by_type.setdefault(event.type, []).append(event)

    def add_submission(self, sub: Submission) -> None:
        if sub.form_id not in self.forms:
            raise not_found(f"Form {sub.form_id} does not exist")
        if sub.conversion_id in self._conversion_ids:
            raise ApiError(409, "CONFLICT", f"Submission {sub.conversion_id} already exists")
        self._conversion_ids.add(sub.conversion_id)
        insort(self.submissions[sub.form_id], sub, key=_submission_key)
        if self._per_email is not None:
            email = _email_of(sub)
            self._per_email[email] = self._per_email.get(email, 0) + 1

    def submissions_of(self, email: str) -> int:
        """How many form submissions (of every form, deleted ones included) give this email."""
        if self._per_email is None:
            self._per_email = {}
            for sub in (s for subs in self.submissions.values() for s in subs):
                email_of = _email_of(sub)
                self._per_email[email_of] = self._per_email.get(email_of, 0) + 1
        return self._per_email.get(email.lower(), 0)

    def add_event(self, event: EmailEventRecord) -> None:
        if (event.id, event.created) in self._event_ids:
            raise ApiError(409, "CONFLICT", f"Email event {event.id} created {event.created} already exists")
        self._event_ids.add((event.id, event.created))
        insort(self.events, event, key=_event_key)
        insort(self._events_by_type.setdefault(event.type, []), event, key=_event_key)

    # --- the forms API ---------------------------------------------------------------------------

    def forms_page(self, limit: int, after: str | None, form_types: Collection[str], archived: bool) -> JsonObject:
        forms = [f for f in self.forms.values() if f.form_type in form_types and f.archived == archived]
        start = 0
        if after is not None:
            (form_id,) = decode_cursor(after, 1)
            start = next((i for i, f in enumerate(forms) if f.id == form_id), len(forms))
        page = forms[start : start + limit]
        body: JsonObject = {"results": [f.wire() for f in page]}
        if start + limit < len(forms):
            token = encode_cursor(forms[start + limit].id)
            body["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
        return body

    def form(self, form_id: str) -> FormRecord:
        form = self.forms.get(form_id)
        if form is None:
            raise not_found(f"Form {form_id} does not exist")
        return form

    def submissions_page(self, form_id: str, limit: int, after: str | None) -> JsonObject:
        self.form(form_id)
        subs = self.submissions[form_id]
        start = 0
        if after is not None:
            at, conversion = decode_cursor(after, 2)
            if not numeric(at.lstrip("-")):
                raise bad_request(f"Invalid paging token 'after': {after!r}")
            # A key cursor, not an offset: a submission arriving meanwhile cannot shift the pages.
            start = bisect_right(subs, (-int(at), conversion), key=_submission_key)
        page = subs[start : start + limit]
        body: JsonObject = {"results": [s.wire() for s in page]}
        if page and start + limit < len(subs):
            last = page[-1]
            token = encode_cursor(last.submitted_at, last.conversion_id)
            body["paging"] = {"next": {"after": token, "link": f"?after={token}"}}
        return body

    # --- the email events API --------------------------------------------------------------------

    def events_page(self, q: EventQuery, now_ms: int, expire_offset: bool) -> JsonObject:
        kind = q.event_type.upper() if q.event_type else None
        key = (q.start, q.end, kind, q.exclude_filtered)
        events = self.events if kind is None else self._events_by_type.get(kind, [])
        low = 0 if q.start is None else bisect_left(events, q.start, key=_event_created)
        high = len(events) if q.end is None else bisect_right(events, q.end, key=_event_created)
        if q.offset is not None:
            issued = self._redeem(q.offset, key, now_ms, expire_offset)
            # A key position, not a count: an event arriving meanwhile cannot shift the pages.
            high = min(high, bisect_left(events, issued.after, key=_event_key))
        page: list[EmailEventRecord] = []
        has_more = False
        for index in range(high - 1, low - 1, -1):
            event = events[index]
            if q.exclude_filtered and event.filtered:
                continue
            if len(page) == q.limit:
                has_more = True
                break
            page.append(event)
        token = ""
        if has_more:
            self._offset_serial += 1
            token = encode_cursor(self._offset_serial, page[-1].created, page[-1].id)
            self._issue(token, _IssuedOffset(key, _event_key(page[-1]), now_ms), now_ms)
        return {"events": [e.wire() for e in page], "hasMore": has_more, "offset": token}

    def _redeem(
        self, offset: str, query: tuple[int | None, int | None, str | None, bool], now_ms: int, expire: bool
    ) -> _IssuedOffset:
        issued = self._offsets.get(offset)
        expired = issued is not None and now_ms - issued.issued_ms > self.offset_ttl_seconds * 1000
        if expire or expired:
            self._offsets.pop(offset, None)
        if expire or expired or issued is None or issued.query != query:
            raise bad_request(
                f"Invalid offset {offset!r}: an offset is valid for a short time and only for the query "
                "that returned it; start the query again without one"
            )
        return issued

    def _issue(self, token: str, issued: _IssuedOffset, now_ms: int) -> None:
        if len(self._offsets) >= _OFFSETS_KEPT:  # forget expired ones (and, past twice the cap, the oldest)
            ttl_ms = self.offset_ttl_seconds * 1000
            self._offsets = {k: v for k, v in self._offsets.items() if now_ms - v.issued_ms <= ttl_ms}
            while len(self._offsets) >= 2 * _OFFSETS_KEPT:
                self._offsets.pop(next(iter(self._offsets)))
        self._offsets[token] = issued

    def snapshot(self) -> JsonObject:
        return {
            "forms": [f.snapshot() for f in self.forms.values()],
            "form_submissions": [s.snapshot() for subs in self.submissions.values() for s in reversed(subs)],
            "email_events": [e.wire() for e in self.events],
        }


def _email_of(sub: Submission) -> str:
    return submission_email(sub.wire()["values"])


def _submission_key(sub: Submission) -> tuple[int, str]:
    return (-sub.submitted_at, sub.conversion_id)


def _event_key(event: EmailEventRecord) -> tuple[int, str]:
    return (event.created, event.id)


def _event_created(event: EmailEventRecord) -> int:
    return event.created


# --- records from the admin endpoints and snapshots ---------------------------------------------


def submission_from(item: Any, now_ms: int | None, new_id: Callable[[], str] | None, where: str) -> Submission:
    if not isinstance(item, Mapping) or not item.get("formId"):
        raise bad_request(f"{where}: needs a formId")
    submitted = item.get("submittedAt")
    at = now_ms if submitted is None and now_ms is not None else parse_ms(submitted)
    if at is None:
        raise bad_request(f"{where}: submittedAt {submitted!r} is not epoch ms")
    # An admin post without conversionId gets one; `"conversionId": null` (or a snapshot's submission without
    # one) is a submission HubSpot sends without it: the sandbox keys it by an id of its own it never sends.
    sent = bool(item.get("conversionId")) or ("conversionId" not in item and new_id is not None)
    conversion = item.get("conversionId") or (new_id() if new_id else f"nocid:{where}")
    values = item.get("values") or []
    if not isinstance(values, list):
        raise bad_request(f"{where}: values must be a list")
    page = str(item.get("pageUrl") or "")
    return Submission(str(item["formId"]), str(conversion), at, pairs(values), page, sends_conversion_id=sent)


def form_from(item: Mapping[str, Any], now_ms: int, where: str) -> FormRecord:
    form_type = str(item.get("formType") or "hubspot")
    if form_type not in FORM_TYPES:
        raise bad_request(f"{where}: formType {form_type!r} is not one of {', '.join(FORM_TYPES)}")
    archived = item.get("archived", False)
    if not isinstance(archived, bool):
        raise bad_request(f"{where}: archived must be true or false")
    return FormRecord(str(item["id"]), str(item.get("name") or ""), now_ms, form_type=form_type, archived=archived)


_EVENT_FIELDS = frozenset({"id", "created", "type", "recipient", "emailCampaignId", "portalId", "filteredEvent"})


def event_from(
    item: Any, now_ms: int | None, new_id: Callable[[], str] | None, portal_id: int, where: str
) -> EmailEventRecord:
    if not isinstance(item, Mapping) or not item.get("type") or not item.get("recipient"):
        raise bad_request(f"{where}: needs a type and a recipient")
    created_raw = item.get("created")
    created = now_ms if created_raw is None and now_ms is not None else parse_ms(created_raw)
    if created is None:
        raise bad_request(f"{where}: created {created_raw!r} is not epoch ms")
    event_id = item.get("id") or (new_id() if new_id else None)
    if not event_id:
        raise bad_request(f"{where}: needs an id")
    campaign = item.get("emailCampaignId", 0)
    return EmailEventRecord(
        str(event_id),
        created,
        str(item["type"]).upper(),
        str(item["recipient"]),
        int(campaign) if numeric(str(campaign)) else 0,
        int(item["portalId"]) if numeric(str(item.get("portalId", ""))) else portal_id,
        bool(item.get("filteredEvent", False)),
        {k: v for k, v in item.items() if k not in _EVENT_FIELDS},
    )


def list_from(item: Any, now_ms: int, where: str) -> tuple[int, str, dict[int, int]]:
    if not isinstance(item, Mapping) or not numeric(str(item.get("listId", ""))):
        raise bad_request(f"{where}: needs a numeric listId")
    ids = item.get("contactIds") or []
    if not isinstance(ids, list) or not all(numeric(str(c)) for c in ids):
        raise bad_request(f"{where}: contactIds must be a list of numeric ids")
    stamps = item.get("membershipTimestamps") or {}
    if not isinstance(stamps, Mapping):
        raise bad_request(f"{where}: membershipTimestamps must map contact ids to epoch ms")
    members: dict[int, int] = {}
    for cid in ids:
        stamp = parse_ms(stamps.get(str(cid)))
        members[int(str(cid))] = now_ms if stamp is None else stamp
    list_id = int(str(item["listId"]))
    return list_id, str(item.get("name") or f"List {list_id}"), members
