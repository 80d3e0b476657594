"""Dead letters: the writes HubSpot refused, kept for the audit and retried with backoff until given up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from sync.ports import DeadLetter, DeadLetterRecord, PendingWrite
from sync.store import schema
from sync.store.base import StoreBase, chunks, int_chunks

# Dead letters are retried 15 min after HubSpot refused them, then 30 min, 1 h ... at most a day apart;
# after this many refused retries a letter is given up (an operator may still retry it).
DEAD_LETTER_FIRST_WAIT = timedelta(minutes=15)
DEAD_LETTER_MAX_WAIT = timedelta(hours=24)
DEAD_LETTER_MAX_ATTEMPTS = 8
OPEN, RETRYING, RESOLVED, DROPPED, GIVEN_UP = "open", "retrying", "resolved", "dropped", "given_up"


def dead_letter_wait(attempts: int) -> timedelta:
    """How long after its `attempts`-th refused retry (0: the first refusal) a dead letter is due again."""
    wait: timedelta = DEAD_LETTER_FIRST_WAIT * (2 ** min(attempts, 10))
    return min(DEAD_LETTER_MAX_WAIT, wait)


class DeadLetterStore(StoreBase):
    """The DeadLetters role (sync.ports): the letters, their retries and what an operator does with them."""

    def recent_dead_letters(self, portal_id: int, within_s: float) -> int:
        """How many dead letters the portal got in the last `within_s` seconds (by the store's clock)."""
        since = self._now() - timedelta(seconds=within_s)
        query = sa.select(sa.func.count()).where(
            schema.dead_letters.c.portal_id == portal_id, schema.dead_letters.c.recorded_at >= since
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def dead_letters(self, portal_id: int) -> list[DeadLetter]:
        """The portal's dead letters, oldest first."""
        query = (
            sa.select(schema.dead_letters)
            .where(schema.dead_letters.c.portal_id == portal_id)
            .order_by(schema.dead_letters.c.id)
        )
        with self._engine.connect() as conn:
            return [
                DeadLetter(
                    contact_id=row.contact_id, properties=dict(row.properties), reason=row.reason, status=row.status
                )
                for row in conn.execute(query)
            ]

    def dead_letter_records(
        self, portal_id: int, ids: Sequence[int] | None = None, states: Sequence[str] | None = None
    ) -> list[DeadLetterRecord]:
        """The portal's dead letters (those of `ids`, in `states`, when given), oldest first."""
        letters = schema.dead_letters
        query = sa.select(letters).where(letters.c.portal_id == portal_id).order_by(letters.c.id)
        if ids is not None:
            query = query.where(letters.c.id.in_(list(ids)))
        if states is not None:
            query = query.where(letters.c.state.in_(list(states)))
        with self._engine.connect() as conn:
            return [_dead_letter(row) for row in conn.execute(query)]

    def begin_dead_letter_retries(self, portal_id: int, limit: int) -> list[DeadLetterRecord]:
        """Take up to `limit` due letters (open and due by the store's clock, or left retrying by a run that
        stopped) and mark them retrying; complete_writes and finish_dead_letter_retries settle them."""
        letters = schema.dead_letters
        now = self._now()
        due = sa.or_(
            letters.c.state == RETRYING,
            sa.and_(
                letters.c.state == OPEN,
                sa.or_(letters.c.next_attempt_at.is_(None), letters.c.next_attempt_at <= now),
            ),
        )
        query = (
            sa.select(letters)
            .where(letters.c.portal_id == portal_id, due)
            .order_by(letters.c.next_attempt_at, letters.c.id)
            .limit(limit)
        )
        with self._writer.begin() as conn:
            rows = [_dead_letter(row) for row in conn.execute(query)]
            for chunk in int_chunks([r.id for r in rows]):
                conn.execute(letters.update().where(letters.c.id.in_(chunk)).values(state=RETRYING))
        return [replace(r, state=RETRYING) for r in rows]

    def finish_dead_letter_retries(self, portal_id: int, contact_ids: Sequence[str], note: str) -> int:
        """Close as resolved, with `note`, the letters of these contacts still retrying (nothing was written
        or refused for them); returns how many."""
        letters = schema.dead_letters
        closed = 0
        with self._writer.begin() as conn:
            for chunk in chunks(list(dict.fromkeys(contact_ids))):
                closed += conn.execute(
                    letters.update()
                    .where(
                        letters.c.portal_id == portal_id, letters.c.state == RETRYING, letters.c.contact_id.in_(chunk)
                    )
                    .values(state=RESOLVED, next_attempt_at=None, closed_at=self._now(), note=note)
                ).rowcount
        return closed

    def make_dead_letters_due(self, portal_id: int, ids: Sequence[int]) -> list[int]:
        """Open letters (given-up ones too) due now; returns the ids changed (closed letters stay closed)."""
        return self._set_letters(
            portal_id, ids, (OPEN, GIVEN_UP), state=OPEN, next_attempt_at=self._now(), closed_at=None, note=None
        )

    def drop_dead_letters(self, portal_id: int, ids: Sequence[int]) -> list[int]:
        """Never retry these letters again (they stay for the audit); returns the ids changed."""
        now = self._now()
        return self._set_letters(
            portal_id, ids, (OPEN, RETRYING, GIVEN_UP), state=DROPPED, next_attempt_at=None, closed_at=now,
            note="dropped by an operator",
        )  # fmt: skip

    def _set_letters(self, portal_id: int, ids: Sequence[int], states: Sequence[str], **values: Any) -> list[int]:
        letters = schema.dead_letters
        changed: list[int] = []
        with self._writer.begin() as conn:
            for chunk in int_chunks(list(dict.fromkeys(ids))):
                where = (letters.c.portal_id == portal_id, letters.c.id.in_(chunk), letters.c.state.in_(states))
                found = list(conn.scalars(sa.select(letters.c.id).where(*where)))
                if found:
                    conn.execute(letters.update().where(letters.c.id.in_(found)).values(**values))
                changed += found
        return sorted(changed)

    def company_dead_letters(self, portal_id: int) -> list[DeadLetter]:
        """The company writes HubSpot refused, oldest first."""
        table = schema.company_dead_letters
        query = sa.select(table).where(table.c.portal_id == portal_id).order_by(table.c.id)
        with self._engine.connect() as conn:
            return [
                DeadLetter(row.company_id, dict(row.properties), row.reason, row.status) for row in conn.execute(query)
            ]


def _dead_letter(row: Row[Any]) -> DeadLetterRecord:
    return DeadLetterRecord(
        id=row.id,
        contact_id=row.contact_id,
        properties=dict(row.properties),
        reason=row.reason,
        status=row.status,
        state=row.state,
        attempts=row.attempts,
        recorded_at=row.recorded_at,
        next_attempt_at=row.next_attempt_at,
        closed_at=row.closed_at,
        note=row.note,
    )


def settle_retries(
    conn: Connection,
    portal_id: int,
    run_id: str,
    applied: Sequence[PendingWrite],
    dead: Sequence[DeadLetter],
    now: datetime,
) -> list[DeadLetter]:
    """Settle the letters being retried for these contacts; returns the dead letters that are new.

    A contact HubSpot refused again counts an attempt on its letters (due again after the backoff, or
    given up at the cap) instead of getting a new letter; one whose write HubSpot took closes them."""
    letters = schema.dead_letters
    touched = sorted({d.contact_id for d in dead} | {w.contact_id for w in applied})
    retrying: dict[str, list[tuple[int, int]]] = {}  # contact -> (letter id, attempts)
    for chunk in chunks(touched):
        query = sa.select(letters.c.id, letters.c.contact_id, letters.c.attempts).where(
            letters.c.portal_id == portal_id, letters.c.state == RETRYING, letters.c.contact_id.in_(chunk)
        )
        for row in conn.execute(query):
            retrying.setdefault(row.contact_id, []).append((row.id, row.attempts))
    if not retrying:
        return list(dead)
    new: list[DeadLetter] = []
    for letter in dead:
        rows = retrying.pop(letter.contact_id, None)
        if rows is None:
            new.append(letter)
            continue
        for letter_id, tried in rows:
            attempts = tried + 1
            given_up = attempts >= DEAD_LETTER_MAX_ATTEMPTS
            conn.execute(
                letters.update()
                .where(letters.c.id == letter_id)
                .values(
                    run_id=run_id,
                    properties=dict(letter.properties),
                    status=letter.status,
                    reason=letter.reason,
                    attempts=attempts,
                    state=GIVEN_UP if given_up else OPEN,
                    next_attempt_at=None if given_up else now + dead_letter_wait(attempts),
                    closed_at=now if given_up else None,
                    note=f"given up after {attempts} refused retries" if given_up else None,
                )
            )
    written = [i for cid in sorted({w.contact_id for w in applied}) for i, _ in retrying.get(cid, [])]
    for ids in int_chunks(written):
        conn.execute(
            letters.update()
            .where(letters.c.id.in_(ids))
            .values(state=RESOLVED, next_attempt_at=None, closed_at=now, note=f"written by run {run_id}")
        )
    return new
