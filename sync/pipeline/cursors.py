"""Where a cycle resumes from: the cursors it keeps in the store, the overlaps it re-reads, the batch it writes."""

from __future__ import annotations

BATCH = 100  # HubSpot's batch size: one write call per batch
LOOKBACK_MS = 120_000  # search indexing lags a little; a small overlap is re-read and processed idempotently
# Engagement is reported late (opens and clicks processed minutes after they happened); events are
# deduplicated by id, so re-reading the last hour costs a few calls and loses nothing.
EVENTS_LOOKBACK_MS = 3_600_000
CONTACTS_CURSOR = "contacts_modified_ms"
BACKFILL_CURSOR = "contacts_backfill_after"
BACKFILL_STARTED = "contacts_backfill_started_ms"  # the first run of a (resumed) backfill
BACKFILL_DONE = "done"
EVENTS_SCORED = "events_scored_ms"  # contacts with events up to here were rescored by a completed run
EVENTS_CURSOR = "email_events_ms"
FORM_CURSOR = "form_submissions_ms:"
# The poll for new form submissions: contacts whose recent_conversion_date is at or after this, less the overlap.
CONVERSIONS_CURSOR = "form_conversions_ms"
# Per contact: how many of its form submissions HubSpot counts that no read finds (deleted forms, form types not
# read); per conversion name: one no read finds (a form type not read, such as blog comments).
UNREAD_SUBMISSIONS = "form_submissions_unread:"
UNREAD_CONVERSION = "form_conversion_unread:"
# How far before its last poll the poll looks again: HubSpot's search shows a change seconds to a minute after
# it was made; a submission search showed later than this would be missed until the next sweep (nightly).
POLL_OVERLAP_MS = 120_000
DEAD_LETTERS_PER_RUN = 1000  # due dead letters retried by one run at most; the rest wait for the next
COMPANIES_CURSOR = "companies_modified_ms"
COMPANIES_BACKFILL_CURSOR = "companies_backfill_after"
COMPANIES_BACKFILL_STARTED = "companies_backfill_started_ms"
