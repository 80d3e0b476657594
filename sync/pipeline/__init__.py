"""One sync cycle for one portal, in rooms named after its steps.

- portal: the Portal a cycle runs against (built by sync.app), a run's summary, what a run's steps share
- gate: do no harm - the token's portal, the live check, the properties leadsync owns, every write's check
- cycle: Cycle.run, the steps in order, and the contact passes (backfill, changed since, rescore, new events)
- events: form submissions and email events, stored once each
- companies: the company pull, contacts' associations, and the account pass
- outbox: writes recorded, sent through the gate and completed; dead letters retried
- cursors: where a cycle resumes from
"""

from sync.pipeline.cursors import (
    BACKFILL_CURSOR,
    BACKFILL_DONE,
    BACKFILL_STARTED,
    BATCH,
    COMPANIES_BACKFILL_CURSOR,
    COMPANIES_BACKFILL_STARTED,
    COMPANIES_CURSOR,
    CONTACTS_CURSOR,
    CONVERSIONS_CURSOR,
    DEAD_LETTERS_PER_RUN,
    EVENTS_CURSOR,
    EVENTS_LOOKBACK_MS,
    EVENTS_SCORED,
    FORM_CURSOR,
    LOOKBACK_MS,
    POLL_OVERLAP_MS,
    UNREAD_CONVERSION,
    UNREAD_SUBMISSIONS,
)
from sync.pipeline.cycle import Cycle
from sync.pipeline.gate import (
    budget_day,
    check_company_writes,
    check_lease,
    check_live,
    check_writes,
    company_writable_properties,
    owned_company_properties,
    owned_properties,
    read_company_properties,
    read_properties,
    time_zone,
    verify_identity,
    writable_properties,
)
from sync.pipeline.portal import Kind, Lease, Portal, Progress, RunSummary, with_lists

__all__ = [
    "BACKFILL_CURSOR",
    "BACKFILL_DONE",
    "BACKFILL_STARTED",
    "BATCH",
    "COMPANIES_BACKFILL_CURSOR",
    "COMPANIES_BACKFILL_STARTED",
    "COMPANIES_CURSOR",
    "CONTACTS_CURSOR",
    "CONVERSIONS_CURSOR",
    "DEAD_LETTERS_PER_RUN",
    "EVENTS_CURSOR",
    "EVENTS_LOOKBACK_MS",
    "EVENTS_SCORED",
    "FORM_CURSOR",
    "LOOKBACK_MS",
    "POLL_OVERLAP_MS",
    "UNREAD_CONVERSION",
    "UNREAD_SUBMISSIONS",
    "Cycle",
    "Kind",
    "Lease",
    "Portal",
    "Progress",
    "RunSummary",
    "budget_day",
    "check_company_writes",
    "check_lease",
    "check_live",
    "check_writes",
    "company_writable_properties",
    "owned_company_properties",
    "owned_properties",
    "read_company_properties",
    "read_properties",
    "time_zone",
    "verify_identity",
    "with_lists",
    "writable_properties",
]
