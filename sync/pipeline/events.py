"""Engagement: the portal's form submissions and email events, stored once each (by id) before any scoring.

Form submissions are read two ways. The sweep reads every form's newest submissions (one call per form at
least): the first run, `--full` and the nightly rescore sweep. An incremental run polls instead: one contacts
search for contacts whose latest conversion (recent_conversion_date) is since the last poll, less an overlap
(search lags writes), then reads only the forms those contacts submitted. An idle poll is that one search,
whatever the number of forms. Where the poll cannot tell which forms a contact submitted (a conversion name
no form listed has, or fewer submissions stored for it than HubSpot counts: two forms submitted between polls
show only the latest), it sweeps the forms it did not read, once per such conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sync.core.model import FormSubmission
from sync.pipeline.cursors import (
    CONVERSIONS_CURSOR,
    CONVERSIONS_SWEPT,
    EVENTS_CURSOR,
    EVENTS_LOOKBACK_MS,
    FORM_CURSOR,
)
from sync.pipeline.portal import RunScope
from sync.ports import Conversion


def pull_events(scope: RunScope, now_ms: int) -> set[str]:
    """Store new form submissions and email events; returns the emails they belong to."""
    return pull_submissions(scope, now_ms) | _pull_email_events(scope, now_ms)


def pull_submissions(scope: RunScope, now_ms: int) -> set[str]:
    """New form submissions: swept on full runs, rescores and the first run; polled on incremental runs."""
    store, pid = scope.portal.store, scope.portal.id
    polled = store.get_cursor(pid, CONVERSIONS_CURSOR)
    if scope.kind != "incremental" or polled is None:
        emails = _sweep(scope, now_ms)
        if not scope.stop.is_set():
            # Every form was read through now: the poll starts here.
            store.set_cursor(pid, CONVERSIONS_CURSOR, str(now_ms))
        return emails
    return _poll(scope, int(polled), now_ms)


def _sweep(scope: RunScope, now_ms: int) -> set[str]:
    """Every form's submissions since that form's own cursor (less the events lookback)."""
    store, pid = scope.portal.store, scope.portal.id
    emails: set[str] = set()
    for form_id, name in sorted(scope.form_names.items()):
        since = int(store.get_cursor(pid, FORM_CURSOR + form_id) or 0)
        emails |= _read_form(scope, form_id, name, max(0, since - EVENTS_LOOKBACK_MS))
        store.set_cursor(pid, FORM_CURSOR + form_id, str(now_ms))
        if scope.stop.is_set():
            break  # the forms left are read by the next run
    return emails


def _read_form(scope: RunScope, form_id: str, name: str, since_ms: int) -> set[str]:
    submissions, problems = scope.portal.source.form_submissions(form_id, name, since_ms)
    scope.skipped(problems)
    scope.summary.add("forms_read")
    new = scope.portal.store.add_events(scope.portal.id, submissions)
    scope.summary.add("events_new", new)
    return {s.email for s in submissions} if new else set()


def _poll(scope: RunScope, polled_ms: int, now_ms: int) -> set[str]:
    """The submissions of the contacts that converted since the last poll (less the overlap: a submission search
    showed late is still found), read from the forms they submitted. The cursor moves to this run's start once
    all of them are stored: whatever search did not show yet was made after it, less the lag."""
    portal, store, pid = scope.portal, scope.portal.store, scope.portal.id
    since = max(0, polled_ms - portal.poll_overlap_ms)
    conversions: list[Conversion] = []
    for page in portal.source.contacts_converted_since(since):
        scope.skipped(page.problems)
        conversions += page.conversions
        if scope.stop.is_set():
            return set()  # polled again by the next run
    emails: set[str] = set()
    if conversions:
        forms = scope.form_names
        touched = {fid for c in conversions for fid in forms_named(c.name, forms)}
        for form_id in sorted(touched):
            emails |= _read_form(scope, form_id, forms[form_id], since)
            if scope.stop.is_set():
                return emails
        emails |= _sweep_for_unexplained(scope, conversions, touched, since)
        scope.log.info("form_poll", conversions=len(conversions), forms_read=len(touched))
    if not scope.stop.is_set():
        store.set_cursor(pid, CONVERSIONS_CURSOR, str(now_ms))
    return emails


def _sweep_for_unexplained(
    scope: RunScope, conversions: Sequence[Conversion], read: set[str], since_ms: int
) -> set[str]:
    """The forms not read yet, when a conversion is not explained by what the store holds now: its name is no
    listed form's, or its contact has fewer submissions stored than HubSpot counts. Each conversion sweeps once
    (a later poll that sees it again within the overlap does not sweep for it again)."""
    store, pid = scope.portal.store, scope.portal.id
    swept = int(store.get_cursor(pid, CONVERSIONS_SWEPT) or 0)
    stored = _stored_submissions(scope, [c.email for c in conversions if c.count is not None])
    forms = scope.form_names
    unexplained = [
        c
        for c in conversions
        if c.at_ms > swept
        and (not forms_named(c.name, forms) or (c.count is not None and stored.get(c.email, 0) < c.count))
    ]
    if not unexplained:
        return set()
    scope.summary.add("form_sweeps")
    scope.log.info("form_poll_sweep", conversions=len(unexplained), forms=len(forms) - len(read))
    emails: set[str] = set()
    for form_id, name in sorted(forms.items()):
        if form_id not in read:
            emails |= _read_form(scope, form_id, name, since_ms)
            if scope.stop.is_set():
                return emails  # not marked swept: the next poll sweeps again
    store.set_cursor(pid, CONVERSIONS_SWEPT, str(max(swept, *(c.at_ms for c in unexplained))))
    return emails


def _stored_submissions(scope: RunScope, emails: Iterable[str]) -> dict[str, int]:
    wanted = sorted({e for e in emails if e})
    if not wanted:
        return {}
    found = scope.portal.store.events_for_emails(scope.portal.id, wanted)
    return {email: sum(isinstance(e, FormSubmission) for e in events) for email, events in found.items()}


def forms_named(conversion: str, forms: Mapping[str, str]) -> set[str]:
    """The forms a conversion's name names: HubSpot names a form submission by the form's name, after the title
    of the page it was on and ": " when it knows one ("Pricing: Demo request")."""
    return {fid for fid, name in forms.items() if name and (conversion == name or conversion.endswith(f": {name}"))}


def _pull_email_events(scope: RunScope, now_ms: int) -> set[str]:
    """Read a window at a time (the adapter's): the cursor moves to each window's end once it is read whole, so
    a stop or a crash resumes from the last complete window. Events are deduplicated by id."""
    portal, store = scope.portal, scope.portal.store
    emails: set[str] = set()
    done = int(store.get_cursor(portal.id, EVENTS_CURSOR) or 0)
    for page in portal.source.email_events(max(0, done - EVENTS_LOOKBACK_MS), now_ms):
        scope.skipped(page.problems)
        new = store.add_events(portal.id, page.events)
        scope.summary.add("events_new", new)
        if new:
            emails.update(e.email for e in page.events)
        if page.through_ms is not None and page.through_ms > done:
            done = page.through_ms
            store.set_cursor(portal.id, EVENTS_CURSOR, str(done))
        if scope.stop.is_set():
            scope.log.info("run_interrupted", events_read_through_ms=done)
            break  # the window in progress is read again by the next run
    return emails
