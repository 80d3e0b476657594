"""The outbox: a batch's planned writes are recorded before they are sent, and completed (with the audit history,
dead letters and the cursor) in one transaction after, so a crash at any point resumes without losing a write or
recording one twice. Values written are absolute, so sending a pending batch again is harmless.

Every write passes the gate (sync.pipeline.gate) before it is sent, the run's lease included: under a stale fence
nothing is sent and the store records nothing (LeaseLostError); what HubSpot refused is kept as a dead letter
and tried again, once due, through the normal write path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from sync.core.model import PropertyUpdate, StageChange
from sync.core.wire import LIFECYCLE_STAGE
from sync.pipeline.cursors import BATCH, DEAD_LETTERS_PER_RUN
from sync.pipeline.gate import (
    check_company_writes,
    check_lease,
    check_writes,
    company_writable_properties,
    ensure_company_properties,
    writable_properties,
)
from sync.pipeline.portal import RunScope
from sync.ports import DeadLetter, PendingWrite

Rescore = Callable[[Sequence[str], int], None]  # score these contacts now (ms) and write what differs


class Outbox:
    """The contacts' writes: sent through the gate, recorded with their history, refusals kept and retried."""

    def __init__(self, scope: RunScope) -> None:
        self.scope = scope

    def send(self, pending: Sequence[PendingWrite], cursor: tuple[str, str] | None) -> None:
        portal, store, pid = self.scope.portal, self.scope.portal.store, self.scope.portal.id
        by_id = {p.contact_id: p for p in pending}
        updates = [PropertyUpdate(p.contact_id, p.properties) for p in pending if p.properties]
        stages = [StageChange(p.contact_id, p.stage, clear_first=True) for p in pending if p.stage]
        check_writes(portal, updates, stages)
        check_lease(self.scope, "before sending contact writes")
        outcome = portal.writer.update_contacts(updates)
        if stages:  # a pause between the two calls must not let the second one out
            check_lease(self.scope, "before sending stage moves", ask_store=False)
        staged = portal.writer.set_stages(stages)
        props_dead = {d.contact_id for d in outcome.dead}
        stage_dead = {d.contact_id for d in staged.dead}
        dead = [*outcome.dead, *staged.dead]
        applied: list[PendingWrite] = []
        for cid, write in by_id.items():
            if cid in props_dead:
                continue
            if cid not in stage_dead:
                applied.append(write)
            elif write.properties:
                # The properties are in HubSpot: record them (and their history); the stage is its own dead letter.
                history = replace(write.history, stage=None) if write.history is not None else None
                applied.append(PendingWrite(cid, write.properties, None, history))
        # Logged once HubSpot has the values and before the batch is recorded: a crash in between makes the
        # resumed run send and log them again (at least once), never lose the event of a write HubSpot took.
        emails = {c.id: c.email for c in store.get_contacts(pid, list(by_id))} if applied else {}
        allowed = portal.config.log_emails
        for write in applied:
            self.scope.summary.add("written")
            if write.history is not None:
                h = write.history
                self.scope.log.info(
                    "score_changed",
                    contact_id=h.contact_id,
                    email=portal.log_email(emails.get(h.contact_id, ""), allowed),
                    old_score=h.old_score,
                    new_score=h.new_score,
                    grade=h.grade,
                    stage=h.stage,
                    reasons=h.reasons,
                )
        store.complete_writes(pid, self.scope.run_id, applied, dead, cursor, fence=self.scope.fence)
        self._count_stage_moves(applied)
        for letter in dead:
            self.scope.summary.add("dead_lettered")
            self.scope.log.error(
                "dead_letter", contact_id=letter.contact_id, reason=letter.reason, status=letter.status
            )

    def finish_pending(self) -> None:
        """Send what a crashed run recorded but never completed."""
        pending = self._owned_pending(self.scope.portal.store.pending_writes(self.scope.portal.id))
        if pending:
            self.scope.log.info("resuming_pending_writes", count=len(pending))
            for start in range(0, len(pending), BATCH):
                self.send(pending[start : start + BATCH], None)

    def _owned_pending(self, pending: Sequence[PendingWrite]) -> list[PendingWrite]:
        """A crashed run's writes, less any property the config no longer owns (an output renamed since).

        Such a value is never sent; a write left with nothing to send becomes a dead letter saying why, so the
        outbox empties and the contact is rescored by the dead-letter retry under today's config."""
        allowed = writable_properties(self.scope.portal.rules)
        keep: list[PendingWrite] = []
        dropped: list[DeadLetter] = []
        for write in pending:
            foreign = sorted(set(write.properties) - allowed)
            if write.stage and LIFECYCLE_STAGE not in allowed:
                foreign.append(LIFECYCLE_STAGE)
            if not foreign:
                keep.append(write)
                continue
            self.scope.log.warning("pending_write_trimmed", contact_id=write.contact_id, properties=foreign)
            owned = {k: v for k, v in write.properties.items() if k in allowed}
            stage = write.stage if LIFECYCLE_STAGE in allowed else None
            if owned or stage:
                keep.append(replace(write, properties=owned, stage=stage))
            else:
                reason = (
                    f"not sent: the config no longer owns {', '.join(foreign)} (renamed since the write was planned)"
                )
                dropped.append(DeadLetter(write.contact_id, dict(write.properties), reason))
        if dropped:
            self.scope.portal.store.complete_writes(
                self.scope.portal.id, self.scope.run_id, [], dropped, fence=self.scope.fence
            )
            self.scope.summary.add("dead_lettered", len(dropped))
        return keep

    def retry_dead_letters(self, now_ms: int, rescore: Rescore) -> None:
        """Try again the writes HubSpot refused, once due (the store's backoff), through the normal write path.

        A letter is not resent as it was: a value from days ago could overwrite a newer one. Its contact is
        read from HubSpot now, rescored and planned like any other, and what differs is written; HubSpot
        taking it closes the letter (the write has its history row), a refusal counts an attempt (the store
        gives the letter up at the cap), and a contact that needs no write any more, or is gone from HubSpot,
        closes it as resolved.
        """
        store, pid = self.scope.portal.store, self.scope.portal.id
        tried = 0
        while tried < DEAD_LETTERS_PER_RUN and not self.scope.stop.is_set():
            due = store.begin_dead_letter_retries(pid, BATCH)
            if not due:
                break
            ids = sorted({d.contact_id for d in due})
            fresh = self.scope.portal.source.read_contacts(ids)
            store.upsert_contacts(pid, fresh)
            found = [c.id for c in fresh]
            gone = sorted(set(ids) - set(found))
            if gone:
                store.finish_dead_letter_retries(pid, gone, "the contact was deleted or merged in HubSpot")
            if found:
                rescore(found, now_ms)
                store.finish_dead_letter_retries(pid, found, "nothing to write any more: HubSpot holds the values")
            after = store.dead_letter_records(pid, ids=[d.id for d in due])
            resolved = sum(1 for d in after if d.state == "resolved")
            self.scope.summary.add("dead_letters_retried", len(due))
            self.scope.summary.add("dead_letters_resolved", resolved)
            self.scope.log.info("dead_letters_retried", letters=len(due), resolved=resolved, gone=len(gone))
            tried += len(due)

    def _count_stage_moves(self, applied: Sequence[PendingWrite]) -> None:
        """Promotions and demotions HubSpot took (a backward move is sent as clear then set)."""
        for write in applied:
            if write.stage:
                self.scope.summary.add("demotions")
            elif write.properties.get(LIFECYCLE_STAGE):
                self.scope.summary.add("promotions")


class CompanyOutbox:
    """The account pass's writes: the same shape as the contacts' outbox, through the company gate; a write
    completes with the clearing of the stale marks of the companies its batch rescored."""

    def __init__(self, scope: RunScope) -> None:
        self.scope = scope

    def send(self, pending: Sequence[PendingWrite], rescored: Sequence[str]) -> None:
        """Write a batch through the company gate and record it with the clearing of `rescored`'s marks."""
        portal, store, pid = self.scope.portal, self.scope.portal.store, self.scope.portal.id
        applied: list[PendingWrite] = []
        dead: list[DeadLetter] = []
        if pending:
            writer = portal.company_writer
            assert writer is not None  # CompanyPass.account_pass, finish_pending
            updates = [PropertyUpdate(p.contact_id, p.properties) for p in pending]
            check_company_writes(portal, updates)
            check_lease(self.scope, "before sending company writes")
            outcome = writer.update_companies(updates)
            dead = list(outcome.dead)
            refused = {d.contact_id for d in dead}
            applied = [p for p in pending if p.contact_id not in refused]
        for write in applied:
            self.scope.summary.add("companies_written")
            if write.history is not None:
                h = write.history
                self.scope.log.info(
                    "account_score_changed",
                    company_id=h.contact_id,
                    old_score=h.old_score,
                    new_score=h.new_score,
                    grade=h.grade,
                    reasons=h.reasons,
                )
        store.complete_company_writes(pid, self.scope.run_id, applied, dead, rescored, fence=self.scope.fence)
        for letter in dead:
            self.scope.company_problem(
                "company_dead_letter", company_id=letter.contact_id, reason=letter.reason, status=letter.status
            )
        gone = [d.contact_id for d in dead if d.status == 404]
        if gone:
            store.remove_companies(pid, gone)  # deleted in HubSpot: nothing left to score

    def finish_pending(self) -> None:
        """Send the company writes a crashed run recorded but never completed, less any property the config no
        longer owns (a write left with nothing to send becomes a dead letter saying why)."""
        store, pid = self.scope.portal.store, self.scope.portal.id
        pending = store.pending_company_writes(pid)
        if not pending:
            return
        allowed = company_writable_properties(self.scope.portal.accounts)
        keep: list[PendingWrite] = []
        dropped: list[DeadLetter] = []
        for write in pending:
            owned = {k: v for k, v in write.properties.items() if k in allowed}
            if owned:
                keep.append(write if len(owned) == len(write.properties) else replace(write, properties=owned))
            else:
                reason = "not sent: the config no longer owns these company properties (changed since planned)"
                dropped.append(DeadLetter(write.contact_id, dict(write.properties), reason))
        if dropped:
            store.complete_company_writes(pid, self.scope.run_id, [], dropped, fence=self.scope.fence)
            self.scope.summary.add("company_problems", len(dropped))
        if keep and self.scope.portal.company_writer is not None:
            self.scope.log.info("resuming_pending_company_writes", count=len(keep))
            ensure_company_properties(self.scope.portal)
            for start in range(0, len(keep), BATCH):
                self.send(keep[start : start + BATCH], ())
