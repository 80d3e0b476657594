"""Engagement: the portal's form submissions and email events, stored once each (by id) before any scoring.

Form submissions are read two ways. The sweep reads every form's newest submissions (one call per form at
least): the first run, `--full` and the nightly rescore sweep. An incremental run polls instead: one contacts
search for contacts whose latest conversion (recent_conversion_date) is since the last poll, less an overlap
(search lags writes), then reads only the forms those contacts submitted. An idle poll is that one search,
whatever the number of forms. Where the poll cannot tell which forms a contact submitted (a conversion name
no form listed has, or fewer submissions stored for it than HubSpot counts: two forms submitted between polls
show only the latest), it sweeps the forms it did not read, and remembers what a sweep cannot find.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sync.core.model import FormSubmission
from sync.pipeline.cursors import (
    CONVERSIONS_CURSOR,
    EVENTS_CURSOR,
    EVENTS_LOOKBACK_MS,
    FORM_CURSOR,
    UNREAD_CONVERSION,
    UNREAD_SUBMISSIONS,
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
    emails: set[str] = set()
    for page in scope.portal.source.form_submissions(form_id, name, since_ms):  # stored a page at a time
        scope.skipped(page.problems)
        new = scope.portal.store.add_events(scope.portal.id, page.submissions)
        scope.summary.add("events_new", new)
        if new:
            emails.update(s.email for s in page.submissions)
    scope.summary.add("forms_read")
    return emails


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
    listed form's, or its contact has fewer submissions stored than HubSpot counts (two forms between polls).

    What a sweep cannot find is remembered so that it does not sweep again for it: a contact's submissions no
    read finds (of deleted forms, of form types the portal does not read: HubSpot counts them), and a conversion
    name no read finds (a form type not read, such as blog comments): a later conversion under that name is
    allowed to be the one submission the store lacks."""
    store, pid = scope.portal.store, scope.portal.id
    forms = scope.form_names
    stored = _stored_submissions(scope, [c.email for c in conversions])
    unexplained = [c for c in conversions if c.email and not _explained(scope, c, forms, stored)]
    if not unexplained:
        return set()
    scope.summary.add("form_sweeps")
    scope.log.info("form_poll_sweep", conversions=len(unexplained), forms=len(forms) - len(read))
    emails: set[str] = set()
    for form_id, name in sorted(forms.items()):
        if form_id not in read:
            emails |= _read_form(scope, form_id, name, since_ms)
            if scope.stop.is_set():
                return emails  # nothing learned: the next poll sweeps again
    stored = _stored_submissions(scope, [c.email for c in unexplained])
    for c in unexplained:
        count, times = stored.get(c.email, (0, frozenset()))
        if c.count is not None and c.count > count:
            store.set_cursor(pid, UNREAD_SUBMISSIONS + c.contact_id, str(c.count - count))
        if c.name and not forms_named(c.name, forms) and c.at_ms not in times:
            store.set_cursor(pid, UNREAD_CONVERSION + c.name, "1")
    return emails


def _explained(
    scope: RunScope, c: Conversion, forms: Mapping[str, str], stored: Mapping[str, tuple[int, frozenset[int]]]
) -> bool:
    """Whether the store holds what HubSpot says the contact submitted (less what no read finds)."""
    store, pid = scope.portal.store, scope.portal.id
    named = bool(forms_named(c.name, forms))
    unreadable = not named and store.get_cursor(pid, UNREAD_CONVERSION + c.name) is not None
    if not (named or unreadable):
        return False
    if c.count is None:
        return True
    have = stored.get(c.email, (0, frozenset()))[0]
    unread = int(store.get_cursor(pid, UNREAD_SUBMISSIONS + c.contact_id) or 0)
    if have + unread + (1 if unreadable else 0) < c.count:
        return False
    if c.count - have > unread:  # the latest conversion is one no read finds: it joins the rest
        store.set_cursor(pid, UNREAD_SUBMISSIONS + c.contact_id, str(c.count - have))
    return True


def _stored_submissions(scope: RunScope, emails: Iterable[str]) -> dict[str, tuple[int, frozenset[int]]]:
    """Per email: how many form submissions the store holds, and their times."""
    wanted = sorted({e for e in emails if e})
    if not wanted:
        return {}
    found = scope.portal.store.events_for_emails(scope.portal.id, wanted)
    out: dict[str, tuple[int, frozenset[int]]] = {}
    for email, events in found.items():
        times = [e.at_ms for e in events if isinstance(e, FormSubmission)]
        out[email] = (len(times), frozenset(times))
    return out


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
