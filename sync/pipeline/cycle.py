"""One sync cycle for one portal: identity -> pull -> store events -> decide -> write (fenced) -> checkpoint.

Gather inputs through the ports, let the pure core decide, apply its decisions. The cycle runs the steps in
order and pulls the contacts a page at a time; the steps it hands off live beside it: the checks every write
passes (gate), the events (events), the companies and the account pass (companies), the outbox (outbox).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from sync.core.decision import Decision, decide
from sync.core.likelihood import Likelihood
from sync.core.model import Contact, ScoreResult, with_current_form_names
from sync.core.rules import RuleSet
from sync.errors import (
    BudgetExhaustedError,
    ConfigError,
    FatalError,
    LeaseLostError,
    LiveCheckError,
    PausedError,
    StoppedError,
    SyncError,
    WrongPortalError,
)
from sync.pipeline import parallel
from sync.pipeline.companies import CompanyPass
from sync.pipeline.cursors import (
    BACKFILL_CURSOR,
    BACKFILL_DONE,
    BACKFILL_STARTED,
    BATCH,
    CONTACTS_CURSOR,
    EVENTS_LOOKBACK_MS,
    EVENTS_SCORED,
    LOOKBACK_MS,
)
from sync.pipeline.events import pull_events
from sync.pipeline.gate import budget_day, check_lease, check_live, ensure_properties, verify_identity
from sync.pipeline.outbox import Outbox
from sync.pipeline.parallel import WORKER_PAGES, Ask, Failure, Parallel, Reopenable, reopened_here, worker_processes
from sync.pipeline.portal import Kind, Lease, Portal, Progress, RunScope, RunSummary, with_lists
from sync.ports import HistoryRow, PendingWrite, RunRecord

log = structlog.get_logger("leadsync.pipeline")

# A run's own steps in place of a sync cycle's (the webhook fast path), around the same identity check, live check,
# pending writes, properties, run record and call counts; given the cycle and the run's start (ms).
Work = Callable[["Cycle", int], None]


class Cycle:
    """One run of one portal. `stop` ends it cleanly after the batch in flight."""

    def __init__(
        self,
        portal: Portal,
        kind: Kind,
        *,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        backfill_total: Callable[[], int | None] | None = None,
        work: Work | None = None,
        lease: Lease | None = None,
    ):
        self.portal = portal
        self.kind = kind
        self.stop = stop or threading.Event()
        self.progress = progress
        self.backfill_total = backfill_total  # asked once a backfill starts: the progress bar's total
        self.work = work
        self.run_id = uuid.uuid4().hex[:12]
        self.summary = RunSummary(self.run_id, kind)
        self.log = log.bind(portal=portal.config.portal.name, run_id=self.run_id, version=portal.rules.version)
        self.scope = RunScope(portal, kind, self.run_id, self.summary, self.log, self.stop, lease=lease)
        self.outbox = Outbox(self.scope)
        self.companies = CompanyPass(self.scope, self._batch)

    # -- the run --

    def run(self) -> RunSummary:
        portal, store = self.portal, self.portal.store
        started = portal.clock.now()
        calls_before = dict(portal.api_calls())
        began = time.monotonic()
        store.start_run(RunRecord(self.run_id, portal.id, self.kind, started))
        self.log.info("run_started", kind=self.kind)
        portal.bind_stop(self.stop)
        try:
            check_lease(self.scope, "before the run started")  # a run starts only once its lease is confirmed
            verify_identity(portal)  # before anything is written, the pending writes of a crashed run included
            check_live(portal)
            self.outbox.finish_pending()
            self.companies.outbox.finish_pending()
            ensure_properties(portal)
            now_ms = int(started.timestamp() * 1000)
            (self.work or Cycle._work)(self, now_ms)
            if self.stop.is_set():
                self._stopped()
            elif self.work is None:  # a run of its own steps has not scored the contacts of every new event
                store.set_cursor(portal.id, EVENTS_SCORED, str(now_ms))
        except SyncError as exc:
            self._ended_by(exc)
        except Exception as exc:
            self.summary.status, self.summary.error = "failed", f"{type(exc).__name__}: {exc}"
            raise  # recorded as failed below; the job boundary logs it
        finally:
            self._count_calls(calls_before)
            self.summary.time_zone = portal.time_zone
            if self.summary.counts.get("api_calls"):
                # The day's budget is shared by restarts and replicas: keep the count in the store, under the
                # portal's local date (HubSpot's daily limit resets at the portal's midnight).
                store.add_api_calls(portal.id, budget_day(portal, started), self.summary.counts["api_calls"])
            self.summary.counts["duration_ms"] = int((time.monotonic() - began) * 1000)
            store.finish_run(self.run_id, self.summary.status, self.summary.counts, self.summary.error)
            self.log.info("run_finished", kind=self.kind, status=self.summary.status, **self.summary.counts)
            if portal.after_run is not None and self.work is None:  # alerts follow the sync cycles, never flap
                portal.after_run(self.summary)
        return self.summary

    def _work(self, now_ms: int) -> None:
        """Events, companies, contacts, dead letters, then the account pass: each step skipped once stopped."""
        store, pid = self.portal.store, self.portal.id
        event_emails = pull_events(self.scope, now_ms)  # first, so the scores below count them
        changed_companies = self.companies.pull(now_ms)  # before the contacts, whose rules may read them
        if self.stop.is_set():
            return
        scored, backfilled = self._contacts(now_ms)
        if not self.stop.is_set() and not backfilled:
            # New events, and events stored by a run that did not get to score their contacts.
            since = int(store.get_cursor(pid, EVENTS_SCORED) or 0)
            event_emails |= set(store.emails_with_events_since(pid, max(0, since - EVENTS_LOOKBACK_MS)))
            self._contacts_with_new_events(event_emails, scored, now_ms)
            self.companies.rescore_contacts_of(changed_companies, scored, now_ms)
        if not self.stop.is_set():
            self.outbox.retry_dead_letters(now_ms, self._batch)
        if not self.stop.is_set():
            self.companies.account_pass(now_ms)

    def _ended_by(self, exc: SyncError) -> None:
        """Records how an error ended the run: interrupted, paused (the operator must act) or failed."""
        summary, error, kind = self.summary, str(exc), type(exc).__name__
        if isinstance(exc, LeaseLostError):
            self._lease_lost(error)
        elif isinstance(exc, StoppedError) and self._lease_moved_on():
            self._lease_lost(error)  # stopped because the lease was lost: say so
        elif isinstance(exc, StoppedError):
            # Asked to stop while a call waited to be retried: what was in flight stays in the outbox.
            summary.status = "interrupted"
            self.log.info("run_interrupted", reason=error)
        elif isinstance(exc, PausedError):
            summary.status, summary.error = "paused", error
            if isinstance(exc, WrongPortalError):
                summary.cause = "wrong_portal"
            elif isinstance(exc, LiveCheckError):
                summary.cause = "live_check"
            self.log.error("run_stopped", error=error, error_type=kind, status="paused")
        elif isinstance(exc, BudgetExhaustedError):
            summary.status, summary.error, summary.budget_spent = "failed", error, True
            self.log.error("run_stopped", error=error, error_type=kind, status="failed", reason="daily_budget")
        elif isinstance(exc, FatalError):
            summary.status, summary.error = "failed", error
            self.log.error("run_stopped", error=error, error_type=kind, status="failed")
        else:
            summary.status, summary.error = "failed", error
            if isinstance(exc, ConfigError):
                summary.cause = "config"
            self.log.error("run_failed", error=error, error_type=kind)

    def _stopped(self) -> None:
        """A run stopped after its batch in flight: interrupted, or lease_lost when its lease moved on."""
        if self._lease_moved_on():
            self._lease_lost("lease lost: another replica holds the portal now; stopped after the batch in flight")
        else:
            self.summary.status = "interrupted"

    def _lease_moved_on(self) -> bool:
        lease = self.scope.lease
        return lease is not None and not (lease.trusted() and self.portal.store.check_fence(lease.fence))

    def _lease_lost(self, error: str) -> None:
        self.summary.status, self.summary.error = "lease_lost", error
        fence = self.scope.fence
        self.log.warning("lease_lost", error=error, epoch=None if fence is None else fence.epoch)

    def _count_calls(self, before: Mapping[tuple[str, int], int]) -> None:
        after = self.portal.api_calls()
        delta = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
        self.summary.counts["api_calls"] = sum(delta.values())
        self.summary.counts["rate_limited"] = sum(n for (_, status), n in delta.items() if status == 429)

    # -- contacts, a page at a time: store, score, write, checkpoint --

    def _contacts(self, now_ms: int) -> tuple[set[str], bool]:
        """Process changed contacts page by page (all of them on a full or first run, every stored one on a
        rescore). Returns the ids scored (kept on incremental runs only) and whether this was a backfill."""
        store, pid = self.portal.store, self.portal.id
        if self.kind == "rescore":
            self._rescore_stored(now_ms)
            return set(), False
        if self.kind == "full" or store.get_cursor(pid, CONTACTS_CURSOR) is None:
            return self._backfill(now_ms), True
        return self._changed_since(now_ms), False

    def _rescore_stored(self, now_ms: int) -> None:
        """Every stored contact, a page at a time, each page's writes sent in order (see `rescore_pages`)."""
        done = 0
        pages = self.rescore_pages(now_ms)
        try:
            for page in pages:
                self._apply(page)
                done += len(page.outcomes)
                if self._tick(done):
                    return
        finally:
            pages.close()  # stopped or failed: the workers go now, not when the generator is collected

    def rescore_pages(self, now_ms: int) -> Generator[_Decided, None, None]:
        """Every stored contact's decision, a page at a time, in the store's order.

        Past the first `PARALLEL_FROM` contacts, on a store that can be opened again (SQL), the pages are read and
        decided in forked workers, one a core, each on connections of its own: this process only lists the ids
        and gets back what to write and what to count, which is small. On one core, or `LEADSYNC_PROCESSES=1`,
        or the in-memory store, every page is read and decided here: the same code, so the same decisions."""
        store, pid = self.portal.store, self.portal.id
        processes = worker_processes() if isinstance(store, Reopenable) else 1
        if processes > 1:
            # Read here before the workers fork, so that they inherit them and never ask HubSpot.
            _ = self.scope.lists, self.scope.form_names
        start_after = parallel.PARALLEL_FROM // BATCH  # pages decided here before the workers start
        work = self._page_decider(now_ms)
        with Parallel(work, processes=processes, start_after=start_after, chunk=WORKER_PAGES) as pool:
            for _ids, page in pool.map(store.iter_contact_ids(pid, BATCH)):
                yield page

    def _page_decider(self, now_ms: int) -> Callable[[Sequence[str]], _Decided]:
        """Loads and decides a page of ids; in a forked worker, from a store opened there on its first page."""
        here = [os.getpid()]

        def work(ids: Sequence[str]) -> _Decided:
            if here[0] != os.getpid():  # a forked worker's first page: never the parent's connections
                here[0] = os.getpid()
                store = self.portal.store
                assert isinstance(store, Reopenable)
                self.portal.store = reopened_here(store)  # this process's copy of the portal only
            return self._decided(self._load(ids), now_ms)

        return work

    def _backfill(self, now_ms: int) -> set[str]:
        """Every contact, resuming from the backfill cursor of an interrupted backfill."""
        store, pid = self.portal.store, self.portal.id
        after = store.get_cursor(pid, BACKFILL_CURSOR) or None
        if after == BACKFILL_DONE:
            if store.get_cursor(pid, CONTACTS_CURSOR) is None:
                return self._backfill_done(pid, now_ms)  # stopped right after its last page
            after = None  # a new full backfill
        if after is None:
            store.set_cursor(pid, BACKFILL_STARTED, str(now_ms))
        total = self.backfill_total() if self.backfill_total is not None else None
        done = 0
        for page in self.portal.source.contact_pages(after):
            self._keep(page.contacts, page.problems)
            self._batch([c.id for c in page.contacts], now_ms, cursor=(BACKFILL_CURSOR, page.after or BACKFILL_DONE))
            done += len(page.contacts)
            if self._tick(done, total):
                return set()  # the backfill cursor resumes it
        return self._backfill_done(pid, now_ms)

    def _changed_since(self, now_ms: int) -> set[str]:
        """Contacts modified since the cursor (less the lookback: search lags writes); returns the ids scored."""
        store, pid = self.portal.store, self.portal.id
        since = int(store.get_cursor(pid, CONTACTS_CURSOR) or 0)
        newest = since
        scored: set[str] = set()
        done = 0
        for page in self.portal.source.contacts_changed_since(max(0, since - LOOKBACK_MS), now_ms):
            self._keep(page.contacts, page.problems)
            ids = [c.id for c in page.contacts]
            for start in range(0, len(ids), BATCH):
                last = start + BATCH >= len(ids)
                if last and page.max_modified_ms is not None:
                    # Only once the whole page is done may the cursor pass its newest time.
                    newest = min(max(newest, page.max_modified_ms), now_ms)
                self._batch(ids[start : start + BATCH], now_ms, cursor=(CONTACTS_CURSOR, str(newest)))
            scored.update(c.id for c in page.contacts)
            done += len(page.contacts)
            if self._tick(done):
                return scored
        # Everything modified before this run's start less the lookback was indexed by the time it searched, and
        # read: the next run re-reads from there (its cursor less the lookback), no further back. A burst of our
        # own writes is pulled again for one lookback, not every cycle.
        store.set_cursor(pid, CONTACTS_CURSOR, str(max(newest, now_ms)))
        return scored

    def _backfill_done(self, pid: int, now_ms: int) -> set[str]:
        """From here on, increments from when the backfill began (an overlap is re-read, idempotently)."""
        began = int(self.portal.store.get_cursor(pid, BACKFILL_STARTED) or now_ms)
        self.portal.store.set_cursor(pid, CONTACTS_CURSOR, str(min(began, now_ms) - LOOKBACK_MS))
        self.portal.store.set_cursor(pid, BACKFILL_CURSOR, BACKFILL_DONE)
        return set()

    def _contacts_with_new_events(self, emails: set[str], scored: set[str], now_ms: int) -> None:
        """Contacts whose only change is a new event: found by email in the store."""
        if not emails or self.kind != "incremental":
            return  # full runs and rescores score every contact anyway
        ordered = sorted(emails)
        for chunk in range(0, len(ordered), 10 * BATCH):  # a big send touches many contacts: a slice at a time
            found = self.portal.store.contacts_by_email(self.portal.id, ordered[chunk : chunk + 10 * BATCH])
            ids = sorted({c.id for c in found} - scored, key=lambda i: (len(i), i))
            for start in range(0, len(ids), BATCH):
                self._batch(ids[start : start + BATCH], now_ms)
                if self.stop.is_set():
                    return

    def _tick(self, done: int, total: int | None = None) -> bool:
        if self.progress is not None:
            self.progress(done, total)
        if self.stop.is_set():
            self.log.info("run_interrupted", after_contacts=done)
            return True
        return False

    def _keep(self, contacts: Sequence[Contact], problems: Sequence[str]) -> None:
        self.scope.skipped(problems)
        # With the lists they are in now: what plan, score and backtest read from the store (--from-store).
        self.portal.store.upsert_contacts(self.portal.id, [with_lists(c, self.scope.lists) for c in contacts])
        self.summary.add("pulled", len(contacts))
        if self.portal.uses_companies and contacts:
            self.companies.associate([c.id for c in contacts])

    # -- scoring and writing --

    def keep_contacts(self, contacts: Sequence[Contact]) -> None:
        """Store contacts read from HubSpot (and their company associations, when the rules use companies)."""
        self._keep(contacts, ())

    def score_contacts(self, ids: Sequence[str], now_ms: int) -> None:
        """Score these stored contacts with their stored events and write what differs, through the gate and the
        outbox (the webhook fast path's last step: the same write path as the cycle's)."""
        self._batch(ids, now_ms)

    def _batch(self, ids: Sequence[str], now_ms: int, cursor: tuple[str, str] | None = None) -> None:
        self._apply(self._decided(self._load(ids), now_ms), cursor)

    def _load(self, ids: Sequence[str]) -> _Page:
        """A page of stored contacts, each with its events, what HubSpot holds and the stage leadsync wrote."""
        store, pid = self.portal.store, self.portal.id
        contacts, company_ids = self.companies.with_companies(store.get_contacts(pid, ids))
        events = store.events_for_emails(pid, sorted({c.email for c in contacts if c.email}))
        written = store.written_values(pid, ids)
        staged = store.written_stages(pid, ids)
        asks: list[Ask] = []
        for stored in contacts:
            contact = with_lists(stored, self.scope.lists)
            # What HubSpot holds, over which the values leadsync wrote and HubSpot may not show yet.
            ours = written.get(contact.id)
            current = {**contact.properties, **ours} if ours else contact.properties
            mine = with_current_form_names(events.get(contact.email, ()), self.scope.form_names)
            asks.append((contact, mine, current, staged.get(contact.id)))
        return _Page(asks, company_ids)

    def _decided(self, page: _Page, now_ms: int) -> _Decided:
        """A page's decisions, as what to write and what to count: all `_apply` needs, small to pickle."""
        outcomes: list[_Outcome] = []
        for ask in page.asks:
            contact = ask[0]
            decision = _decided(ask, self.portal.rules, now_ms)
            if isinstance(decision, Failure):
                outcomes.append(_Outcome(contact.id, contact.email, error=decision.text))
                continue
            result = decision.result
            write = None if decision.model is None or decision.plan.empty else self._pending(decision)
            outcomes.append(
                _Outcome(
                    contact.id,
                    contact.email,
                    excluded=result.excluded,
                    exclusion_reason=result.exclusion_reason,
                    holdout=result.holdout,
                    stage=result.current_stage,
                    stage_held=result.stage_held,
                    unchanged=decision.model is not None and decision.plan.empty,
                    write=write,
                )
            )
        return _Decided(outcomes, page.company_ids)

    def _apply(self, page: _Decided, cursor: tuple[str, str] | None = None) -> None:
        """Records and sends the writes of a page's decisions, then checkpoints."""
        portal, store, pid = self.portal, self.portal.store, self.portal.id
        pending: list[PendingWrite] = []
        for outcome in page.outcomes:
            if outcome.error is not None:  # the record boundary: a broken contact never fails the portal
                self.summary.add("skipped_contacts")
                self.log.warning("contact_skipped", contact_id=outcome.contact_id, error=outcome.error)
                continue
            self.summary.add("scored")
            self._note_result(outcome)
            if outcome.unchanged:
                self.summary.add("unchanged")
            if outcome.write is not None:
                pending.append(outcome.write)
        if portal.accounts is not None:
            # Before the writes are sent: a crash after them still leaves these companies to the next account pass.
            store.mark_companies_stale(pid, page.company_ids)
        if pending:
            store.record_pending(pid, self.run_id, pending, fence=self.scope.fence)
            self.outbox.send(pending, cursor)
        elif cursor is not None:
            check_lease(self.scope, "before moving a cursor", ask_store=False)  # a woken replica moves none
            store.set_cursor(pid, *cursor)

    def _pending(self, decision: Decision) -> PendingWrite:
        """The outbox entry of a decision with writes, and the history row it completes with."""
        result, update = decision.result, decision.plan.update
        old = decision.before.score
        history = HistoryRow(
            contact_id=result.contact_id,
            run_id=self.run_id,
            version=result.version,
            old_score=int(old) if old is not None else None,
            new_score=0 if result.excluded else result.score,
            grade=result.grade,
            stage=decision.planned_stage,
            reasons=decision.reasons,
            breakdown=_breakdown(result, decision.likelihood),
        )
        properties = dict(update.properties) if update is not None else {}
        return PendingWrite(result.contact_id, properties, decision.stage_move, history)

    def _note_result(self, result: _Outcome) -> None:
        if result.excluded:
            self.summary.add("excluded")
            self.log.info(
                "contact_excluded",
                contact_id=result.contact_id,
                email=self.portal.log_email(result.email, self.portal.config.log_emails),
                reason=result.exclusion_reason,
            )
        if result.holdout:
            self.summary.add("holdout")
        if result.stage_held is not None:
            self.summary.add("stages_held_back")
            self.log.info("stage_held_back", contact_id=result.contact_id, stage=result.stage, reason=result.stage_held)


@dataclass(frozen=True)
class _Page:
    """A page of contacts loaded for deciding: what each decision needs, and the companies to mark stale."""

    asks: list[Ask]
    company_ids: Sequence[str]


@dataclass(frozen=True)
class _Outcome:
    """What one contact's decision means to the run: its counts, its log lines, and its write if it has one."""

    contact_id: str
    email: str
    error: str | None = None  # its scoring raised: skipped
    excluded: bool = False
    exclusion_reason: str | None = None
    holdout: bool = False
    stage: str | None = None
    stage_held: str | None = None
    unchanged: bool = False
    write: PendingWrite | None = None


@dataclass(frozen=True)
class _Decided:
    """A page decided: each contact's outcome in order, and the companies to mark stale."""

    outcomes: list[_Outcome]
    company_ids: Sequence[str]


def _decided(ask: Ask, rules: RuleSet, now_ms: int) -> Decision | Failure:
    contact, events, current, stage = ask
    try:
        return decide(contact, events, rules, now_ms, current, written_stage=stage)
    except Exception as exc:  # the record boundary: reported by the caller
        return Failure.of(exc)


def _breakdown(result: ScoreResult, likelihood: Likelihood | None = None) -> dict[str, Any]:
    learned = {}
    if likelihood is not None:
        learned["likelihood"] = {"value": likelihood.value, "model": likelihood.model_version}
    return {
        **learned,  # the learned likelihood written, and the model (its version hash) that gave it
        "score": result.score,
        "fit": result.fit,
        "engagement": result.engagement,
        "decay": result.decay,
        "stage_from": result.current_stage,  # with the row's stage: the run's stage transitions (reports)
        "lines": [[h.rule, h.cents / 100, h.detail] for h in result.breakdown if h.cents or h.matched],
        **({"interests": interests_breakdown(result)} if result.interests else {}),
    }


def interests_breakdown(result: ScoreResult) -> dict[str, Any]:
    """The product-interest scores in a history row: by name, each with its lines (score None: not in segment)."""
    return {
        i.name: {
            "score": i.score,
            "points": i.points,
            "decay": i.decay,
            "lines": [[h.rule, h.cents / 100, h.detail] for h in i.breakdown if h.cents or h.matched],
        }
        for i in result.interests
    }
