"""Engagement: the portal's form submissions and email events, stored once each (by id) before any scoring."""

from __future__ import annotations

from sync.pipeline.cursors import EVENTS_CURSOR, EVENTS_LOOKBACK_MS, FORM_CURSOR
from sync.pipeline.portal import RunScope


def pull_events(scope: RunScope, now_ms: int) -> set[str]:
    """Store new form submissions and email events; returns the emails they belong to."""
    portal, store = scope.portal, scope.portal.store
    emails: set[str] = set()
    scope.form_names = portal.source.forms()
    for form_id, name in sorted(scope.form_names.items()):
        key = FORM_CURSOR + form_id
        since = int(store.get_cursor(portal.id, key) or 0)
        submissions, problems = portal.source.form_submissions(form_id, name, max(0, since - EVENTS_LOOKBACK_MS))
        scope.skipped(problems)
        new = store.add_events(portal.id, submissions)
        scope.summary.add("events_new", new)
        if new:
            emails.update(s.email for s in submissions)
        store.set_cursor(portal.id, key, str(now_ms))
    # Read a window at a time (the adapter's): the cursor moves to each window's end once it is read whole, so
    # a stop or a crash resumes from the last complete window. Events are deduplicated by id.
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
