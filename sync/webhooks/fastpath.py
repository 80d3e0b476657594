"""The fast path: a handful of contacts HubSpot told us about, scored and written within seconds.

One run of the pipeline (sync.pipeline.Cycle) with steps of its own: the contacts read in ONE batch read (consistent,
unlike search), stored, their new form submissions read (only the forms their recent conversion names, newest
first: usually one call each), then scored and written by the cycle's own batch step. So the identity check, the
live check, the gate, the outbox (and any fence it checks), the run record and the API budget are the cycle's: a
webhook never opens a second write path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from sync.core.conditions import parse_date_ms
from sync.core.model import Contact
from sync.pipeline import Cycle, Lease, Portal, RunSummary
from sync.pipeline.events import forms_named

# HubSpot's contact properties for a contact's latest form submission (set by HubSpot on every conversion).
RECENT_CONVERSION_DATE = "recent_conversion_date"
RECENT_CONVERSION_NAME = "recent_conversion_event_name"
NUM_CONVERSIONS = "num_conversion_events"
CONVERSION_PROPERTIES = (RECENT_CONVERSION_DATE, RECENT_CONVERSION_NAME, NUM_CONVERSIONS)
# A submission is read back from a little before the conversion time the contact shows (clocks, rounding).
SUBMISSION_SLACK_MS = 60_000
FORMS_TTL_S = 300.0  # the portal's forms (id -> name) are read again after this long


class FormNames:
    """The portal's forms, read at most every FORMS_TTL_S (a fast path run would otherwise spend a call on it)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._forms: dict[str, str] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def get(self, portal: Portal, fresh: bool = False) -> dict[str, str]:
        with self._lock:
            now = self.monotonic()
            if fresh or self._read_at is None or now - self._read_at > FORMS_TTL_S:
                self._forms = dict(portal.source.forms())
                self._read_at = now
            return dict(self._forms)


def run_fast_path(
    portal: Portal,
    ids: Sequence[str],
    forms: FormNames,
    stop: threading.Event | None = None,
    *,
    lease: Lease | None = None,
) -> RunSummary:
    """Score and write these contacts now (the caller holds the portal's lock and lease)."""
    wanted = list(dict.fromkeys(ids))

    def work(cycle: Cycle, now_ms: int) -> None:
        before = {c.id: c for c in portal.store.get_contacts(portal.id, wanted)}
        contacts = portal.source.read_contacts(wanted)  # one batch read: consistent, unlike search
        cycle.keep_contacts(contacts)
        gone = len(wanted) - len(contacts)
        if gone:
            cycle.summary.add("contacts_not_found", gone)
        converted = [c for c in contacts if _conversion_ms(c) is not None and _conversion_ms(c) != _conv(before, c.id)]
        cycle.scope.form_names = forms.get(portal)
        if converted:
            _read_submissions(cycle, converted, forms)
        cycle.score_contacts([c.id for c in contacts], now_ms)

    return Cycle(portal, "webhook", stop=stop, work=work, lease=lease).run()


def _read_submissions(cycle: Cycle, converted: Sequence[Contact], forms: FormNames) -> None:
    """Store the new submissions of the forms these contacts just converted on (one read per form)."""
    portal = cycle.portal
    names = cycle.scope.form_names
    since: dict[str, int] = {}
    for contact in converted:
        conversion = contact.properties.get(RECENT_CONVERSION_NAME, "")
        found = forms_named(conversion, names)
        if not found and names:
            names = cycle.scope.form_names = forms.get(portal, fresh=True)  # a form made since the last read?
            found = forms_named(conversion, names)
        at = _conversion_ms(contact)
        if not found or at is None:
            # Left to the safety-net poll, which reads every form's submissions.
            cycle.summary.add("conversions_unresolved")
            cycle.log.info("conversion_unresolved", contact_id=contact.id, reason="no form of that name")
            continue
        for form_id in found:
            since[form_id] = min(since.get(form_id, at), at)
    for form_id, at in sorted(since.items()):
        for page in portal.source.form_submissions(form_id, names[form_id], max(0, at - SUBMISSION_SLACK_MS)):
            cycle.scope.skipped(page.problems)
            cycle.summary.add("events_new", portal.store.add_events(portal.id, page.submissions))


def _conv(contacts: Mapping[str, Contact], cid: str) -> int | None:
    contact = contacts.get(cid)
    return _conversion_ms(contact) if contact is not None else None


def _conversion_ms(contact: Contact) -> int | None:
    return parse_date_ms(contact.properties.get(RECENT_CONVERSION_DATE))
