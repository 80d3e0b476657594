"""Companies: pulled like contacts, with each contact's associations to them, and the account pass that scores
every stale company from its contacts and writes what differs.

The pull stores what changed and marks it stale; a contact's scoring reads its primary company (what
`company.<property>` reads); the account pass then rolls up each stale company's contacts, a batch at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sync.core.account_planning import plan_account
from sync.core.accounts import CompiledAccounts, number_problems, numeric_company_reads, score_tally
from sync.core.conditions import parse_number
from sync.core.model import (
    AccountResult,
    Company,
    CompanyAssociation,
    Contact,
    Event,
    PropertyUpdate,
    ScoredContact,
    primary_company,
    with_company,
    with_current_form_names,
)
from sync.core.scoring import breakdown_reasons, score_at
from sync.pipeline.cursors import (
    BACKFILL_DONE,
    BATCH,
    COMPANIES_BACKFILL_CURSOR,
    COMPANIES_BACKFILL_STARTED,
    COMPANIES_CURSOR,
    CONTACTS_CURSOR,
    LOOKBACK_MS,
)
from sync.pipeline.gate import ensure_company_properties
from sync.pipeline.outbox import CompanyOutbox, Rescore
from sync.pipeline.portal import RunScope, with_lists
from sync.ports import HistoryRow, PendingWrite


class CompanyPass:
    """A run's company steps. `rescore` scores contacts the way the contact pass does (the cycle's batch)."""

    def __init__(self, scope: RunScope, rescore: Rescore) -> None:
        self.scope = scope
        self.rescore = rescore
        self.outbox = CompanyOutbox(scope)
        accounts = scope.portal.accounts
        # The company properties rules read as numbers: a value there that does not parse is read as missing
        # (the core's rule), and said once per company pulled.
        self.numeric = numeric_company_reads(scope.portal.rules, accounts.spec if accounts is not None else None)

    # -- the pull: companies changed, and each contact's associations to them --

    def pull(self, now_ms: int) -> set[str]:
        """Store the companies changed since the last run (all of them on a full or first run) and mark them for
        the account pass; returns the ids changed (on incremental runs only: other runs score every contact)."""
        portal, store, pid = self.scope.portal, self.scope.portal.store, self.scope.portal.id
        if not portal.uses_companies:
            return set()
        if self.scope.kind == "rescore":
            for ids in store.iter_company_ids(pid, 10 * BATCH):
                store.mark_companies_stale(pid, ids)
            return set()
        if self.scope.kind == "full" or store.get_cursor(pid, COMPANIES_CURSOR) is None:
            self._company_backfill(now_ms)
            return set()
        return self._companies_changed_since(now_ms)

    def _company_backfill(self, now_ms: int) -> None:
        """Every company by list, resuming from the cursor of an interrupted backfill. On a portal whose contacts
        were synced before companies were, their associations are then read (and the contacts rescored)."""
        store, pid, source = self.scope.portal.store, self.scope.portal.id, self.scope.portal.companies
        assert source is not None  # uses_companies
        after = store.get_cursor(pid, COMPANIES_BACKFILL_CURSOR) or None
        if after == BACKFILL_DONE and store.get_cursor(pid, COMPANIES_CURSOR) is not None:
            after = None  # a new full backfill
        if after is None:
            store.set_cursor(pid, COMPANIES_BACKFILL_STARTED, str(now_ms))
        if after != BACKFILL_DONE:
            for page in source.company_pages(after):
                self._keep_companies(page.companies, page.problems)
                store.set_cursor(pid, COMPANIES_BACKFILL_CURSOR, page.after or BACKFILL_DONE)
                if self.scope.stop.is_set():
                    self.scope.log.info("run_interrupted", during="companies_backfill")
                    return
        contacts_backfill = self.scope.kind == "full" or store.get_cursor(pid, CONTACTS_CURSOR) is None
        first = store.get_cursor(pid, COMPANIES_CURSOR) is None
        if first and not contacts_backfill and not self._associate_stored(now_ms):
            return  # the backfill cursor says "done": the next run reads the associations again
        began = int(store.get_cursor(pid, COMPANIES_BACKFILL_STARTED) or now_ms)
        store.set_cursor(pid, COMPANIES_CURSOR, str(min(began, now_ms) - LOOKBACK_MS))
        store.set_cursor(pid, COMPANIES_BACKFILL_CURSOR, BACKFILL_DONE)

    def _associate_stored(self, now_ms: int) -> bool:
        """Read the associations of every stored contact and rescore it; False when stopped midway."""
        for ids in self.scope.portal.store.iter_contact_ids(self.scope.portal.id, BATCH):
            self.associate(ids)
            self.rescore(ids, now_ms)
            if self.scope.stop.is_set():
                return False
        return True

    def _companies_changed_since(self, now_ms: int) -> set[str]:
        """Companies modified since the cursor, less the lookback (search lags writes, as for contacts)."""
        store, pid, source = self.scope.portal.store, self.scope.portal.id, self.scope.portal.companies
        assert source is not None  # uses_companies
        since = int(store.get_cursor(pid, COMPANIES_CURSOR) or 0)
        newest = since
        changed: set[str] = set()
        for page in source.companies_changed_since(max(0, since - LOOKBACK_MS), now_ms):
            self._keep_companies(page.companies, page.problems)
            changed.update(c.id for c in page.companies)
            if page.max_modified_ms is not None:
                newest = min(max(newest, page.max_modified_ms), now_ms)
            store.set_cursor(pid, COMPANIES_CURSOR, str(newest))  # the page is stored and marked: it is done
            if self.scope.stop.is_set():
                return changed
        store.set_cursor(pid, COMPANIES_CURSOR, str(max(newest, now_ms - LOOKBACK_MS)))
        return changed

    def _keep_companies(self, companies: Sequence[Company], problems: Sequence[str]) -> None:
        for problem in problems:
            self.scope.company_problem("company_skipped", reason=problem)
        for problem in number_problems(companies, self.numeric):
            self.scope.company_problem("company_value_unreadable", problem=problem)
        store, pid = self.scope.portal.store, self.scope.portal.id
        store.upsert_companies(pid, companies)
        store.mark_companies_stale(pid, [c.id for c in companies])
        self.scope.summary.add("companies_pulled", len(companies))

    def associate(self, contact_ids: Sequence[str]) -> None:
        """Read these contacts' company associations (100 contacts a call) and store them, less those to a company
        HubSpot no longer has; a company a contact left is marked for the account pass."""
        store, pid, source = self.scope.portal.store, self.scope.portal.id, self.scope.portal.companies
        assert source is not None  # uses_companies
        found, problems = source.company_associations(contact_ids)
        for problem in problems:
            self.scope.company_problem("associations_skipped", reason=problem)
        company_ids = sorted({a.company_id for a in found})
        known = {c.id for c in store.get_companies(pid, company_ids)}
        missing = [i for i in company_ids if i not in known]
        if missing:
            # Created since the company pull (the next one reads it again), or deleted since the association was.
            fresh = source.read_companies(missing)
            self._keep_companies(fresh, [])
            known.update(c.id for c in fresh)
        kept: list[CompanyAssociation] = []
        for link in found:
            if link.company_id in known:
                kept.append(link)
            else:
                self.scope.company_problem(
                    "association_skipped",
                    contact_id=link.contact_id,
                    company_id=link.company_id,
                    reason="the associated company does not exist",
                )
        before = {a.company_id for a in store.company_associations(pid, contact_ids)}
        store.set_company_associations(pid, contact_ids, kept)
        if self.scope.portal.accounts is not None:
            store.mark_companies_stale(pid, sorted(before - {a.company_id for a in kept}))

    def with_companies(self, contacts: Sequence[Contact]) -> tuple[list[Contact], list[str]]:
        """The contacts carrying their primary company's properties (what `company.<property>` reads), and the ids
        of every company they are associated with."""
        if not self.scope.portal.uses_companies or not contacts:
            return list(contacts), []
        store, pid = self.scope.portal.store, self.scope.portal.id
        links: dict[str, list[CompanyAssociation]] = {}
        for link in store.company_associations(pid, [c.id for c in contacts]):
            links.setdefault(link.contact_id, []).append(link)
        primary = {cid: primary_company(found) for cid, found in links.items()}
        companies = {c.id: c for c in store.get_companies(pid, sorted({p for p in primary.values() if p}))}
        carrying = []
        for contact in contacts:
            company = companies.get(primary.get(contact.id) or "")
            carrying.append(with_company(contact, company))
        return carrying, sorted({a.company_id for found in links.values() for a in found})

    def rescore_contacts_of(self, company_ids: set[str], scored: set[str], now_ms: int) -> None:
        """Rescore the contacts of companies that changed, when contact rules read `company.<property>`."""
        store, pid = self.scope.portal.store, self.scope.portal.id
        if not company_ids or not self.scope.portal.rules.company_properties_read or self.scope.kind != "incremental":
            return
        for company_id in sorted(company_ids):
            for ids in store.iter_company_contact_ids(pid, company_id, BATCH):
                fresh = [i for i in ids if i not in scored]
                if fresh:
                    self.rescore(fresh, now_ms)
                    scored.update(fresh)
                if self.scope.stop.is_set():
                    return

    # -- the account pass: every stale company scored from its contacts, its changes written --

    def account_pass(self, now_ms: int) -> None:
        """Score the companies marked stale (changed, or one of their contacts scored), 100 at a time; a batch's
        writes and the clearing of its marks are recorded together, so a crash resumes with what is left."""
        if self.scope.portal.accounts is None or self.scope.portal.company_writer is None:
            return
        store, pid = self.scope.portal.store, self.scope.portal.id
        ensure_company_properties(self.scope.portal)
        while not self.scope.stop.is_set():
            ids = store.stale_companies(pid, BATCH)
            if not ids:
                return
            self._score_companies(ids, now_ms)

    def _score_companies(self, ids: Sequence[str], now_ms: int) -> None:
        portal, store, pid = self.scope.portal, self.scope.portal.store, self.scope.portal.id
        accounts = portal.accounts
        assert accounts is not None  # account_pass
        written = store.written_company_values(pid, ids)
        pending: list[PendingWrite] = []
        for company in store.get_companies(pid, ids):  # a mark of a company since removed is simply cleared
            try:
                result = self._score_company(company, accounts, now_ms)
            except Exception as exc:  # the record boundary: a broken company never fails the portal
                self.scope.company_problem(
                    "company_skipped", company_id=company.id, error=f"{type(exc).__name__}: {exc}"
                )
                continue
            self.scope.summary.add("companies_scored")
            ours = written.get(company.id)
            current = {**company.properties, **ours} if ours else company.properties
            update = plan_account(result, accounts.spec.properties, current, now_ms)
            if update is None:
                self.scope.summary.add("companies_unchanged")
                continue
            pending.append(self._company_pending(result, update, current.get(accounts.spec.properties.score)))
        if pending:
            store.record_company_pending(pid, self.scope.run_id, pending, fence=self.scope.fence)
        self.outbox.send(pending, ids)

    def _score_company(self, company: Company, accounts: CompiledAccounts, now_ms: int) -> AccountResult:
        """The company's contacts streamed from the store a batch at a time into one tally: memory stays flat
        whatever the company's size."""
        tally = accounts.tally()
        for ids in self.scope.portal.store.iter_company_contact_ids(self.scope.portal.id, company.id, BATCH):
            for member in self._members(ids, accounts, now_ms):
                tally.add(member, now_ms)
        return score_tally(company, tally, now_ms)

    def _members(self, ids: Sequence[str], accounts: CompiledAccounts, now_ms: int) -> list[ScoredContact]:
        """These contacts scored as the contact pass scores them (the roll-up reads this run's results)."""
        store, pid = self.scope.portal.store, self.scope.portal.id
        contacts, _ = self.with_companies(store.get_contacts(pid, ids))
        events = store.events_for_emails(pid, sorted({c.email for c in contacts if c.email}))
        members = []
        for stored in contacts:
            contact = with_lists(stored, self.scope.lists)
            mine: list[Event] = with_current_form_names(events.get(contact.email, ()), self.scope.form_names)
            result = score_at(contact, mine, self.scope.portal.rules, now_ms)
            members.append(ScoredContact(contact, result, mine if accounts.event_kinds else ()))
        return members

    def _company_pending(self, result: AccountResult, update: PropertyUpdate, old_score: str | None) -> PendingWrite:
        """The company outbox entry of a write, and the history row it completes with."""
        props = update.properties
        history = HistoryRow(
            contact_id=result.company_id,
            run_id=self.scope.run_id,
            version=result.version,
            old_score=parse_score(old_score),
            new_score=result.score,
            grade=result.grade,
            stage=None,
            reasons=breakdown_reasons(result.breakdown),
            breakdown=_account_breakdown(result),
        )
        return PendingWrite(result.company_id, dict(props), None, history)


def parse_score(value: str | None) -> int | None:
    """A score HubSpot holds, as the history's old score (None: none, or not a number)."""
    number = parse_number(value)
    return int(number) if number is not None else None


def _account_breakdown(result: AccountResult) -> dict[str, Any]:
    return {
        "score": result.score,
        "fit": result.fit,
        "engagement": result.engagement,
        "rollup": result.rollup,
        "contacts": result.contacts,
        "excluded_contacts": result.excluded_contacts,
        "lines": [[h.rule, h.cents / 100, h.detail] for h in result.breakdown if h.cents or h.matched],
    }
