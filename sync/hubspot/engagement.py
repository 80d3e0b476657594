"""Forms, form submissions, marketing email events and list memberships.

Submissions and email events have no SDK method: they go through the client's
requests.Session. Forms and lists use the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sync.core.model import EmailEvent, FormSubmission
from sync.errors import SkippableRecordError
from sync.hubspot.client import HubSpotClient
from sync.hubspot.contacts import _next_after
from sync.hubspot.errors import RejectedError
from sync.hubspot.shapes import DEFAULT_FORM_TYPES, email_event_from_wire, submission_from_wire

SUBMISSIONS_PAGE = 50  # the endpoint's maximum
EVENTS_PAGE = 1000
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

    def submissions(self, form_id: str, form_name: str, since_ms: int) -> tuple[list[FormSubmission], list[str]]:
        """Submissions at or after `since_ms`. The endpoint gives newest first with no date filter:
        page until a submission is older than the checkpoint."""
        found: list[FormSubmission] = []
        problems: list[str] = []
        after: str | None = None
        while True:
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
            after = _next_after(body)
            if older or after is None or not results:
                return found, problems

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[tuple[list[EmailEvent], list[str]]]:
        """Email events created in [start_ms, end_ms], a page at a time (offset while hasMore)."""
        offset: str | None = None
        while True:
            params: dict[str, str | int] = {"startTimestamp": start_ms, "endTimestamp": end_ms, "limit": EVENTS_PAGE}
            if offset:
                params["offset"] = offset
            body = self.client.get("email.events", "/email/public/v1/events", params).body or {}
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
            yield events, problems
            offset = str(body.get("offset") or "")
            if not body.get("hasMore") or not offset:
                return

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
