"""Forms, form submissions, marketing email events and list memberships.

Submissions and email events have no SDK method: they go through the client's
requests.Session. Forms and lists use the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import structlog

from sync.core.model import EmailEvent, FormSubmission
from sync.errors import SkippableRecordError
from sync.hubspot.client import HubSpotClient
from sync.hubspot.errors import RejectedError
from sync.hubspot.objects import next_after as _next_after
from sync.hubspot.shapes import DEFAULT_FORM_TYPES, email_event_from_wire, submission_from_wire
from sync.ports import EventPage, SubmissionPage

log = structlog.get_logger("leadsync.hubspot")

SUBMISSIONS_PAGE = 50  # the endpoint's maximum
EVENTS_PAGE = 1000  # the endpoint's maximum
EVENTS_PATH = "/email/public/v1/events"
# Email events are read a window at a time. A day is small enough that an expired offset (HubSpot's offsets are
# short-lived and tied to their query) costs at most a day's re-read and a stop or a crash loses no more, and large
# enough that a quiet portal's catch-up costs few calls (an empty window is one call).
EVENTS_WINDOW_MS = 86_400_000
# An offset HubSpot refuses restarts its window; a window refused this many times fails the run (it resumes there).
OFFSET_RESTARTS = 3
# A pull longer than this many windows (or what remains after an empty window) first looks for its oldest event.
SKIP_AFTER_WINDOWS = 8
LIST_PAGE = 250


class Engagement:
    def __init__(self, client: HubSpotClient, form_types: Sequence[str] = DEFAULT_FORM_TYPES) -> None:
        self.client = client
        self.form_types = list(form_types)

    def forms(self) -> dict[str, str]:
        """Form id -> name, of the forms of `form_types` that are not archived.

        HubSpot lists only `hubspot` forms unless `formTypes` asks for more, and archived forms only when
        asked for (`archived=true`, which this never sends); one marked archived anyway is skipped."""
        names: dict[str, str] = {}
        after: str | None = None
        while True:
            response = self.client.sdk(
                "forms.list",
                self.client.forms_api.get_page,
                limit=100,
                after=after,
                form_types=self.form_types,
            )
            body = response.body or {}
            for form in body.get("results") or []:
                if form.get("id") is not None and form.get("archived") is not True:
                    names[str(form["id"])] = str(form.get("name") or "")
            after = _next_after(body)
            if after is None:
                return names

    def submissions(self, form_id: str, form_name: str, since_ms: int) -> Iterator[SubmissionPage]:
        """Submissions at or after `since_ms`, a page at a time. The endpoint gives newest first with no date
        filter: page until a submission is older than the checkpoint."""
        after: str | None = None
        while True:
            found: list[FormSubmission] = []
            problems: list[str] = []
            params: dict[str, str | int] = {"limit": SUBMISSIONS_PAGE}
            if after:
                params["after"] = after
            body = self.client.get(
                "forms.submissions", f"/form-integrations/v1/submissions/forms/{form_id}", params
            ).body
            results = (body or {}).get("results") or []
            older = False
            for raw in results:
                try:
                    submission = submission_from_wire(raw, form_id, form_name)
                except SkippableRecordError as exc:
                    problems.append(str(exc))
                    continue
                if submission.at_ms < since_ms:
                    older = True
                    continue
                found.append(submission)
            yield SubmissionPage(found, problems)
            after = _next_after(body)
            if older or after is None or not results:
                return

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[EventPage]:
        """Email events created in [start_ms, end_ms], a window at a time from the oldest.

        HubSpot lists a query's events newest first and its `offset` is short-lived and good only for that query,
        so a long span is never paged as one query: each window (EVENTS_WINDOW_MS) is its own query, paged to its
        end, and its last page carries `through_ms` (the window's end) so the caller can checkpoint there. An
        offset HubSpot no longer takes (a 400 on a request carrying one) restarts that window from its first page;
        events are deduplicated by id, so what was read twice costs calls, never a count. Before a long stretch
        (the first pull, or after an empty window) the first event is found by bisection rather than by reading
        empty windows one by one.
        """
        window_start = start_ms
        look_ahead = True
        while window_start <= end_ms:
            if look_ahead and end_ms - window_start >= SKIP_AFTER_WINDOWS * EVENTS_WINDOW_MS:
                first = self._oldest_event_ms(window_start, end_ms)
                if first is None:
                    yield EventPage([], [], end_ms)
                    return
                if first > window_start:
                    yield EventPage([], [], first - 1)  # nothing was created before `first`
                    window_start = first
            window_end = min(window_start + EVENTS_WINDOW_MS - 1, end_ms)
            found = 0
            for page in self._window(window_start, window_end):
                found += len(page.events) + len(page.problems)
                yield page
            look_ahead = found == 0
            window_start = window_end + 1

    def _window(self, start_ms: int, end_ms: int) -> Iterator[EventPage]:
        """One window's events, newest first, paged by offset while hasMore."""
        offset: str | None = None
        restarts = 0
        while True:
            params: dict[str, str | int] = {"startTimestamp": start_ms, "endTimestamp": end_ms, "limit": EVENTS_PAGE}
            if offset:
                params["offset"] = offset
            try:
                body = self.client.get("email.events", EVENTS_PATH, params).body or {}
            except RejectedError as exc:
                if offset is None or exc.status != 400:
                    raise
                if restarts >= OFFSET_RESTARTS:
                    raise RejectedError(
                        exc.endpoint,
                        400,
                        f"could not page the email events of {_iso(start_ms)} to {_iso(end_ms)}: HubSpot refused "
                        f"the offset {restarts + 1} times in a row ({exc.message}); the next run reads this window "
                        "again",
                        exc.body,
                        exc.category,
                    ) from exc
                restarts += 1
                log.warning(
                    "email_events_offset_expired", window_start_ms=start_ms, window_end_ms=end_ms, restarts=restarts
                )
                offset = None
                continue
            events: list[EmailEvent] = []
            problems: list[str] = []
            for raw in body.get("events") or []:
                try:
                    event = email_event_from_wire(raw)
                except SkippableRecordError as exc:
                    problems.append(str(exc))
                    continue
                if event is not None:
                    events.append(event)
            offset = str(body.get("offset") or "")
            more = bool(body.get("hasMore")) and bool(offset)
            yield EventPage(events, problems, None if more else end_ms)
            if not more:
                return

    def _oldest_event_ms(self, start_ms: int, end_ms: int) -> int | None:
        """A time at most one window before the oldest event in [start_ms, end_ms] (None: there is none).

        Newest first means one call with limit 1 tells whether a range holds an event, and the newest one's time:
        about log2(span / window) calls find the oldest to within a window."""
        low, high = start_ms, self._newest_event_ms(start_ms, end_ms)
        if high is None:
            return None
        while high - low >= EVENTS_WINDOW_MS:  # an event at `high`, none before `low`
            middle = low + (high - low) // 2
            newest = self._newest_event_ms(low, middle)
            if newest is None:
                low = middle + 1
            else:
                high = newest
        return low

    def _newest_event_ms(self, start_ms: int, end_ms: int) -> int | None:
        params: dict[str, str | int] = {"startTimestamp": start_ms, "endTimestamp": end_ms, "limit": 1}
        body = self.client.get("email.events", EVENTS_PATH, params).body or {}
        created = [raw.get("created") for raw in body.get("events") or [] if isinstance(raw, dict)]
        times = [int(c) for c in created if isinstance(c, int) and not isinstance(c, bool)]
        if not times and body.get("events"):
            return end_ms  # an event without a usable time: it is in the range, somewhere
        return max(times) if times else None

    def list_name(self, list_id: int) -> str | None:
        """The list's name, or None when the portal has no such list."""
        try:
            response = self.client.sdk("lists.get", self.client.lists_api.get_by_id, str(list_id))
        except RejectedError as exc:
            if exc.status == 404:
                return None
            raise
        body = response.body or {}
        found = body.get("list")
        return str((found if isinstance(found, dict) else body).get("name") or "")

    def list_members(self, list_id: int) -> set[str]:
        members: set[str] = set()
        after: str | None = None
        while True:
            response = self.client.sdk(
                "lists.memberships", self.client.list_memberships.get_page, str(list_id), after=after, limit=LIST_PAGE
            )
            body = response.body or {}
            members.update(str(item.get("recordId")) for item in body.get("results") or [] if item.get("recordId"))
            after = _next_after(body)
            if after is None:
                return members


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
