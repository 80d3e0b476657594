"""The state store over SQLAlchemy Core: one class serving every role of the StateStore port (sync.ports), per portal.

Each public method runs in one transaction of its own and commits it before
returning. Writes use the writer engine (BEGIN IMMEDIATE on SQLite); reads
use plain connections. Bulk methods send one statement per call with many
parameter sets (or one per chunk of an IN list), never one query per record.
Emails are lowercased on the way in, on contacts and events alike, so the two
meet by plain equality.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from sync.core.model import FORM_SUBMISSION, Company, CompanyAssociation, Contact, EmailEvent, Event, FormSubmission
from sync.core.wire import LIFECYCLE_STAGE
from sync.ports import (
    Clock,
    DeadLetter,
    DeadLetterRecord,
    HistoryRow,
    PendingWrite,
    RunRecord,
    StageTransition,
    SystemClock,
)
from sync.store import schema

# Bound parameters per IN list: well under SQLite's variable limit, and keeps PostgreSQL plans generic.
IN_CHUNK = 500

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


class SqlStateStore:
    """SQLite file by default (see schema.database_url), PostgreSQL by URL; migrates the schema on open."""

    def __init__(self, url: str | None = None, *, clock: Clock | None = None) -> None:
        self._engine = schema.create_engine(url)
        self._writer = schema.writer(self._engine)
        self._clock = clock or SystemClock()
        self._log_key: bytes | None = None
        try:
            schema.migrate(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Close the pooled connections; the store is not used after this."""
        self._engine.dispose()

    def _now(self) -> datetime:
        return self._clock.now().astimezone(UTC)

    def _insert(self, table: sa.Table) -> schema.Upsert:
        return schema.dialect_insert(self._engine, table)

    # -- cursors --

    def get_cursor(self, portal_id: int, stream: str) -> str | None:
        query = sa.select(schema.cursors.c.value).where(
            schema.cursors.c.portal_id == portal_id, schema.cursors.c.stream == stream
        )
        with self._engine.connect() as conn:
            value: str | None = conn.scalar(query)
        return value

    def set_cursor(self, portal_id: int, stream: str, value: str) -> None:
        with self._writer.begin() as conn:
            self._put_cursor(conn, portal_id, stream, value)

    def _put_cursor(self, conn: Connection, portal_id: int, stream: str, value: str) -> None:
        stmt = self._insert(schema.cursors).values(
            portal_id=portal_id, stream=stream, value=value, updated_at=self._now()
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[schema.cursors.c.portal_id, schema.cursors.c.stream],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )

    # -- contacts --

    def upsert_contacts(self, portal_id: int, contacts: Sequence[Contact]) -> None:
        now = self._now()
        # Keyed by id, the last copy winning: one statement may not upsert the same row twice on PostgreSQL.
        rows = {
            c.id: {
                "portal_id": portal_id,
                "id": c.id,
                "email": normalize_email(c.email),
                "properties": dict(c.properties),
                "created_at_ms": c.created_at_ms,
                "lifecycle_stage": c.lifecycle_stage,
                "list_ids": sorted(c.list_ids),
                "updated_at": now,
            }
            for c in contacts
        }
        if not rows:
            return
        stmt = self._insert(schema.contacts)
        updated = ("email", "properties", "created_at_ms", "lifecycle_stage", "list_ids", "updated_at")
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.contacts.c.portal_id, schema.contacts.c.id],
            set_={name: stmt.excluded[name] for name in updated},
        )
        written = schema.written_values
        with self._writer.begin() as conn:
            conn.execute(stmt, list(rows.values()))
            # A contact freshly read from HubSpot shows what HubSpot holds now, our last writes included
            # (they bumped lastmodifieddate): what we remember writing is superseded, and must not mask an
            # edit someone made after it.
            for chunk in _chunks(list(rows), 500):
                conn.execute(written.delete().where(written.c.portal_id == portal_id, written.c.contact_id.in_(chunk)))

    def get_contacts(self, portal_id: int, ids: Sequence[str]) -> list[Contact]:
        """The stored contacts among `ids`, in the order asked; unknown ids are left out."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Contact] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = sa.select(schema.contacts).where(
                    schema.contacts.c.portal_id == portal_id, schema.contacts.c.id.in_(chunk)
                )
                found.update((row.id, _contact(row)) for row in conn.execute(query))
        return [found[i] for i in wanted if i in found]

    def contacts_by_email(self, portal_id: int, emails: Sequence[str]) -> list[Contact]:
        """The stored contacts with any of these emails (in any case), ordered by id."""
        wanted = sorted({normalize_email(e) for e in emails} - {""})
        found: list[Contact] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = sa.select(schema.contacts).where(
                    schema.contacts.c.portal_id == portal_id, schema.contacts.c.email.in_(chunk)
                )
                found.extend(_contact(row) for row in conn.execute(query))
        return sorted(found, key=lambda c: c.id)

    def iter_contact_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]:
        """Every stored contact id, in id (text) order, `batch` at a time.

        Keyset paging: each page is a short query of its own starting after the
        last id seen, so memory stays flat and no transaction stays open while
        the caller works on a page.
        """
        return self._keyset(schema.contacts.c.id, schema.contacts.c.portal_id == portal_id, batch)

    # -- events --

    def add_events(self, portal_id: int, events: Sequence[Event]) -> int:
        """Store the events not seen before (by kind and event id); returns how many were new."""
        rows: dict[tuple[str, str], dict[str, object]] = {}
        for e in events:
            rows.setdefault((e.kind, e.event_id), _event_row(portal_id, e))
        if not rows:
            return 0
        # RETURNING yields only the rows inserted: a reliable count where executemany's rowcount is not.
        stmt = (
            self._insert(schema.events)
            .on_conflict_do_nothing(
                index_elements=[schema.events.c.portal_id, schema.events.c.kind, schema.events.c.event_id]
            )
            .returning(schema.events.c.event_id)
        )
        with self._writer.begin() as conn:
            return len(conn.execute(stmt, list(rows.values())).all())

    def events_for_emails(self, portal_id: int, emails: Sequence[str]) -> dict[str, list[Event]]:
        """Events by lowercased email, oldest first; emails without events are left out."""
        wanted = sorted({normalize_email(e) for e in emails} - {""})
        grouped: dict[str, list[Event]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = (
                    sa.select(schema.events)
                    .where(schema.events.c.portal_id == portal_id, schema.events.c.email.in_(chunk))
                    .order_by(
                        schema.events.c.email, schema.events.c.at_ms, schema.events.c.kind, schema.events.c.event_id
                    )
                )
                for row in conn.execute(query):
                    grouped.setdefault(row.email, []).append(_event(row))
        return grouped

    def emails_with_events_since(self, portal_id: int, since_ms: int) -> list[str]:
        """Distinct lowercased emails with an event at or after `since_ms` (event time), sorted."""
        query = (
            sa.select(schema.events.c.email)
            .where(
                schema.events.c.portal_id == portal_id, schema.events.c.at_ms >= since_ms, schema.events.c.email != ""
            )
            .distinct()
            .order_by(schema.events.c.email)
        )
        with self._engine.connect() as conn:
            return list(conn.scalars(query))

    # -- the outbox --

    def record_pending(self, portal_id: int, run_id: str, writes: Sequence[PendingWrite]) -> None:
        """Record planned writes before they are sent; a newer plan for a contact replaces its older one."""
        now = self._now()
        rows = {
            w.contact_id: {
                "portal_id": portal_id,
                "contact_id": w.contact_id,
                "run_id": run_id,
                "properties": dict(w.properties),
                "stage": w.stage,
                "history": None if w.history is None else _history_json(w.history),
                "recorded_at": now,
            }
            for w in writes
        }
        if not rows:
            return
        stmt = self._insert(schema.outbox)
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.outbox.c.portal_id, schema.outbox.c.contact_id],
            set_={name: stmt.excluded[name] for name in ("run_id", "properties", "stage", "history", "recorded_at")},
        )
        with self._writer.begin() as conn:
            conn.execute(stmt, list(rows.values()))

    def pending_writes(self, portal_id: int) -> list[PendingWrite]:
        query = (
            sa.select(schema.outbox).where(schema.outbox.c.portal_id == portal_id).order_by(schema.outbox.c.contact_id)
        )
        with self._engine.connect() as conn:
            return [
                PendingWrite(
                    contact_id=row.contact_id,
                    properties=dict(row.properties),
                    stage=row.stage,
                    history=None if row.history is None else _history_from(row.history),
                )
                for row in conn.execute(query)
            ]

    def complete_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        cursor: tuple[str, str] | None = None,
    ) -> None:
        """Record a sent batch in one transaction, so a crash leaves it either all recorded or still pending.

        Removes the batch's outbox rows, adds the history rows applied writes
        carry, merges the applied values into the written values, records the
        lifecycle stages written as leadsync's own, adds the dead letters, and
        moves the cursor (stream, value) when one is given.
        """
        now = self._now()
        with self._writer.begin() as conn:
            done = sorted({w.contact_id for w in applied} | {d.contact_id for d in dead})
            if done:
                remove = sa.delete(schema.outbox).where(
                    schema.outbox.c.portal_id == portal_id, schema.outbox.c.contact_id == sa.bindparam("cid")
                )
                conn.execute(remove, [{"cid": contact_id} for contact_id in done])
            history = [_history_row(portal_id, w.history, now) for w in applied if w.history is not None]
            if history:
                conn.execute(sa.insert(schema.score_history), history)
            self._merge_written(conn, portal_id, run_id, applied, now)
            self._own_stages(conn, portal_id, run_id, applied, now)
            dead = self._settle_retries(conn, portal_id, run_id, applied, dead, now)
            if dead:
                conn.execute(
                    sa.insert(schema.dead_letters),
                    [
                        {
                            "portal_id": portal_id,
                            "run_id": run_id,
                            "contact_id": d.contact_id,
                            "properties": dict(d.properties),
                            "status": d.status,
                            "reason": d.reason,
                            "recorded_at": now,
                            "state": OPEN,
                            "attempts": 0,
                            "next_attempt_at": now + dead_letter_wait(0),
                        }
                        for d in dead
                    ],
                )
            if cursor is not None:
                self._put_cursor(conn, portal_id, cursor[0], cursor[1])

    def _settle_retries(
        self,
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
        for chunk in _chunks(touched):
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
        for ids in _int_chunks(written):
            conn.execute(
                letters.update()
                .where(letters.c.id.in_(ids))
                .values(state=RESOLVED, next_attempt_at=None, closed_at=now, note=f"written by run {run_id}")
            )
        return new

    def _merge_written(
        self, conn: Connection, portal_id: int, run_id: str, applied: Sequence[PendingWrite], now: datetime
    ) -> None:
        # Keyed by (contact, property), a later write in the batch winning, as it would in HubSpot.
        values = {(w.contact_id, name): value for w in applied for name, value in w.properties.items()}
        if not values:
            return
        stmt = self._insert(schema.written_values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[
                schema.written_values.c.portal_id,
                schema.written_values.c.contact_id,
                schema.written_values.c.name,
            ],
            set_={name: stmt.excluded[name] for name in ("value", "run_id", "updated_at")},
        )
        conn.execute(
            stmt,
            [
                {
                    "portal_id": portal_id,
                    "contact_id": contact_id,
                    "name": name,
                    "value": value,
                    "run_id": run_id,
                    "updated_at": now,
                }
                for (contact_id, name), value in values.items()
            ],
        )

    def _own_stages(
        self, conn: Connection, portal_id: int, run_id: str, applied: Sequence[PendingWrite], now: datetime
    ) -> None:
        """Remember the stage each applied write moved its contact to: a forward set among the properties, or a
        backward move (clear then set)."""
        stages = {w.contact_id: w.stage or w.properties.get(LIFECYCLE_STAGE) for w in applied}
        rows = [
            {"portal_id": portal_id, "contact_id": cid, "stage": stage, "run_id": run_id, "written_at": now}
            for cid, stage in stages.items()
            if stage
        ]
        if not rows:
            return
        stmt = self._insert(schema.stage_owners)
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.stage_owners.c.portal_id, schema.stage_owners.c.contact_id],
            set_={name: stmt.excluded[name] for name in ("stage", "run_id", "written_at")},
        )
        conn.execute(stmt, rows)

    def written_stages(self, portal_id: int, ids: Sequence[str]) -> dict[str, str]:
        """The lifecycle stage leadsync last wrote per contact among `ids`; contacts it never staged are left out."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, str] = {}
        owners = schema.stage_owners
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = sa.select(owners.c.contact_id, owners.c.stage).where(
                    owners.c.portal_id == portal_id, owners.c.contact_id.in_(chunk)
                )
                found.update((contact_id, stage) for contact_id, stage in conn.execute(query))
        return found

    def written_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The values last written per contact among `ids`; contacts never written to are left out."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict[str, str]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = sa.select(
                    schema.written_values.c.contact_id, schema.written_values.c.name, schema.written_values.c.value
                ).where(schema.written_values.c.portal_id == portal_id, schema.written_values.c.contact_id.in_(chunk))
                for contact_id, name, value in conn.execute(query):
                    found.setdefault(contact_id, {})[name] = value
        return found

    def history(self, portal_id: int, contact_id: str) -> list[HistoryRow]:
        """A contact's score history, oldest first."""
        query = (
            sa.select(schema.score_history)
            .where(schema.score_history.c.portal_id == portal_id, schema.score_history.c.contact_id == contact_id)
            .order_by(schema.score_history.c.id)
        )
        with self._engine.connect() as conn:
            return [
                HistoryRow(
                    contact_id=row.contact_id,
                    run_id=row.run_id,
                    version=row.version,
                    old_score=row.old_score,
                    new_score=row.new_score,
                    grade=row.grade,
                    stage=row.stage,
                    reasons=row.reasons,
                    breakdown=row.breakdown,
                )
                for row in conn.execute(query)
            ]

    def stage_transitions(self, portal_id: int, run_ids: Sequence[str]) -> list[StageTransition]:
        """The stage moves these runs wrote, counted per (run, from, to): runs in the order asked, then most first.

        Counted in the database: a full run of a big portal leaves a history row per contact.
        """
        h = schema.score_history
        # The stage a contact came from sits in the row's breakdown JSON (rows from older versions lack it).
        moved_from = h.c.breakdown["stage_from"].as_string().label("moved_from")
        wanted = list(dict.fromkeys(run_ids))
        found: list[StageTransition] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = (
                    sa.select(h.c.run_id, moved_from, h.c.stage, sa.func.count().label("contacts"))
                    .where(h.c.portal_id == portal_id, h.c.run_id.in_(chunk), h.c.stage.is_not(None))
                    # By the label: PostgreSQL would not match a repeated JSON path bound as new parameters.
                    .group_by(h.c.run_id, sa.literal_column("moved_from"), h.c.stage)
                )
                found.extend(
                    StageTransition(row.run_id, row.moved_from, row.stage, int(row.contacts))
                    for row in conn.execute(query)
                )
        order = {run_id: i for i, run_id in enumerate(wanted)}
        return sorted(found, key=lambda t: (order[t.run_id], -t.contacts, t.stage_from or "", t.stage_to))

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
            for chunk in _int_chunks([r.id for r in rows]):
                conn.execute(letters.update().where(letters.c.id.in_(chunk)).values(state=RETRYING))
        return [replace(r, state=RETRYING) for r in rows]

    def finish_dead_letter_retries(self, portal_id: int, contact_ids: Sequence[str], note: str) -> int:
        """Close as resolved, with `note`, the letters of these contacts still retrying (nothing was written
        or refused for them); returns how many."""
        letters = schema.dead_letters
        closed = 0
        with self._writer.begin() as conn:
            for chunk in _chunks(list(dict.fromkeys(contact_ids))):
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
            for chunk in _int_chunks(list(dict.fromkeys(ids))):
                where = (letters.c.portal_id == portal_id, letters.c.id.in_(chunk), letters.c.state.in_(states))
                found = list(conn.scalars(sa.select(letters.c.id).where(*where)))
                if found:
                    conn.execute(letters.update().where(letters.c.id.in_(found)).values(**values))
                changed += found
        return sorted(changed)

    # -- companies --

    def upsert_companies(self, portal_id: int, companies: Sequence[Company]) -> None:
        now = self._now()
        rows = {
            c.id: {"portal_id": portal_id, "id": c.id, "properties": dict(c.properties), "updated_at": now}
            for c in companies
        }
        if not rows:
            return
        stmt = self._insert(schema.companies)
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.companies.c.portal_id, schema.companies.c.id],
            set_={name: stmt.excluded[name] for name in ("properties", "updated_at")},
        )
        written = schema.company_written_values
        with self._writer.begin() as conn:
            conn.execute(stmt, list(rows.values()))
            # As for contacts: a company read again shows what HubSpot holds now, our last writes included.
            for chunk in _chunks(list(rows)):
                conn.execute(written.delete().where(written.c.portal_id == portal_id, written.c.company_id.in_(chunk)))

    def get_companies(self, portal_id: int, ids: Sequence[str]) -> list[Company]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Company] = {}
        table = schema.companies
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = sa.select(table.c.id, table.c.properties).where(
                    table.c.portal_id == portal_id, table.c.id.in_(chunk)
                )
                found.update((row.id, Company(row.id, dict(row.properties))) for row in conn.execute(query))
        return [found[i] for i in wanted if i in found]

    def remove_companies(self, portal_id: int, ids: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(ids))
        with self._writer.begin() as conn:
            for chunk in _chunks(wanted):
                for table, column in (
                    (schema.companies, schema.companies.c.id),
                    (schema.company_associations, schema.company_associations.c.company_id),
                    (schema.stale_companies, schema.stale_companies.c.company_id),
                    (schema.company_written_values, schema.company_written_values.c.company_id),
                ):
                    conn.execute(table.delete().where(table.c.portal_id == portal_id, column.in_(chunk)))

    def iter_company_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]:
        """Every stored company id, in id (text) order, `batch` at a time (keyset paging, as iter_contact_ids)."""
        table = schema.companies
        return self._keyset(table.c.id, table.c.portal_id == portal_id, batch)

    def _keyset(self, key: sa.Column[str], where: sa.ColumnElement[bool], batch: int) -> Iterator[list[str]]:
        if batch < 1:
            raise ValueError(f"batch must be positive, not {batch}")
        after: str | None = None
        while True:
            query = sa.select(key).where(where)
            if after is not None:
                query = query.where(key > after)
            with self._engine.connect() as conn:
                page = list(conn.scalars(query.order_by(key).limit(batch)))
            if page:
                yield page
            if len(page) < batch:
                return
            after = page[-1]

    def set_company_associations(
        self, portal_id: int, contact_ids: Sequence[str], associations: Sequence[CompanyAssociation]
    ) -> None:
        table = schema.company_associations
        rows: dict[tuple[str, str], dict[str, object]] = {}
        for a in associations:
            key = (a.contact_id, a.company_id)
            primary = a.primary or bool(rows.get(key, {}).get("is_primary"))
            rows[key] = {
                "portal_id": portal_id,
                "contact_id": a.contact_id,
                "company_id": a.company_id,
                "is_primary": primary,
            }
        contacts = list(dict.fromkeys([*contact_ids, *(a.contact_id for a in associations)]))
        with self._writer.begin() as conn:
            for chunk in _chunks(contacts):
                conn.execute(table.delete().where(table.c.portal_id == portal_id, table.c.contact_id.in_(chunk)))
            if rows:
                conn.execute(sa.insert(table), list(rows.values()))

    def company_associations(self, portal_id: int, contact_ids: Sequence[str]) -> list[CompanyAssociation]:
        """The stored associations of these contacts, ordered by contact then company id."""
        table = schema.company_associations
        found: list[CompanyAssociation] = []
        with self._engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(contact_ids))):
                query = sa.select(table.c.contact_id, table.c.company_id, table.c.is_primary).where(
                    table.c.portal_id == portal_id, table.c.contact_id.in_(chunk)
                )
                found += [
                    CompanyAssociation(r.contact_id, r.company_id, bool(r.is_primary)) for r in conn.execute(query)
                ]
        return sorted(found, key=lambda a: (a.contact_id, a.company_id))

    def iter_company_contact_ids(self, portal_id: int, company_id: str, batch: int = 1000) -> Iterator[list[str]]:
        table = schema.company_associations
        where = sa.and_(table.c.portal_id == portal_id, table.c.company_id == company_id)
        return self._keyset(table.c.contact_id, where, batch)

    def mark_companies_stale(self, portal_id: int, company_ids: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(company_ids))
        if not wanted:
            return
        now = self._now()
        table = schema.stale_companies
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=[table.c.portal_id, table.c.company_id])
        with self._writer.begin() as conn:
            conn.execute(stmt, [{"portal_id": portal_id, "company_id": cid, "marked_at": now} for cid in wanted])

    def stale_companies(self, portal_id: int, limit: int) -> list[str]:
        table = schema.stale_companies
        query = (
            sa.select(table.c.company_id)
            .where(table.c.portal_id == portal_id)
            .order_by(table.c.company_id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return list(conn.scalars(query))

    # -- the company outbox and history --

    def record_company_pending(self, portal_id: int, run_id: str, writes: Sequence[PendingWrite]) -> None:
        """Record planned company writes before they are sent; a newer plan for a company replaces its older one."""
        now = self._now()
        rows = {
            w.contact_id: {
                "portal_id": portal_id,
                "company_id": w.contact_id,
                "run_id": run_id,
                "properties": dict(w.properties),
                "history": None if w.history is None else _history_json(w.history),
                "recorded_at": now,
            }
            for w in writes
        }
        if not rows:
            return
        table = schema.company_outbox
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.portal_id, table.c.company_id],
            set_={name: stmt.excluded[name] for name in ("run_id", "properties", "history", "recorded_at")},
        )
        with self._writer.begin() as conn:
            conn.execute(stmt, list(rows.values()))

    def pending_company_writes(self, portal_id: int) -> list[PendingWrite]:
        table = schema.company_outbox
        query = sa.select(table).where(table.c.portal_id == portal_id).order_by(table.c.company_id)
        with self._engine.connect() as conn:
            return [
                PendingWrite(
                    contact_id=row.company_id,
                    properties=dict(row.properties),
                    stage=None,
                    history=None if row.history is None else _history_from(row.history),
                )
                for row in conn.execute(query)
            ]

    def complete_company_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        rescored: Sequence[str] = (),
    ) -> None:
        """Record a sent batch of company writes in one transaction: outbox rows removed, history rows added,
        values merged into the written values, dead letters added, and the stale marks of `rescored` cleared."""
        now = self._now()
        with self._writer.begin() as conn:
            done = sorted({w.contact_id for w in applied} | {d.contact_id for d in dead})
            outbox, stale = schema.company_outbox, schema.stale_companies
            for chunk in _chunks(done):
                conn.execute(outbox.delete().where(outbox.c.portal_id == portal_id, outbox.c.company_id.in_(chunk)))
            for chunk in _chunks(list(dict.fromkeys(rescored))):
                conn.execute(stale.delete().where(stale.c.portal_id == portal_id, stale.c.company_id.in_(chunk)))
            history = [_company_history_row(portal_id, w.history, now) for w in applied if w.history is not None]
            if history:
                conn.execute(sa.insert(schema.company_history), history)
            self._merge_company_written(conn, portal_id, run_id, applied, now)
            if dead:
                conn.execute(
                    sa.insert(schema.company_dead_letters),
                    [
                        {
                            "portal_id": portal_id,
                            "run_id": run_id,
                            "company_id": d.contact_id,
                            "properties": dict(d.properties),
                            "status": d.status,
                            "reason": d.reason,
                            "recorded_at": now,
                        }
                        for d in dead
                    ],
                )

    def _merge_company_written(
        self, conn: Connection, portal_id: int, run_id: str, applied: Sequence[PendingWrite], now: datetime
    ) -> None:
        values = {(w.contact_id, name): value for w in applied for name, value in w.properties.items()}
        if not values:
            return
        table = schema.company_written_values
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.portal_id, table.c.company_id, table.c.name],
            set_={name: stmt.excluded[name] for name in ("value", "run_id", "updated_at")},
        )
        rows = [
            {
                "portal_id": portal_id,
                "company_id": cid,
                "name": name,
                "value": value,
                "run_id": run_id,
                "updated_at": now,
            }
            for (cid, name), value in values.items()
        ]
        conn.execute(stmt, rows)

    def written_company_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The values last written per company among `ids`; companies never written to are left out."""
        table = schema.company_written_values
        found: dict[str, dict[str, str]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                query = sa.select(table.c.company_id, table.c.name, table.c.value).where(
                    table.c.portal_id == portal_id, table.c.company_id.in_(chunk)
                )
                for company_id, name, value in conn.execute(query):
                    found.setdefault(company_id, {})[name] = value
        return found

    def company_history(self, portal_id: int, company_id: str) -> list[HistoryRow]:
        """A company's account score history, oldest first."""
        table = schema.company_history
        query = (
            sa.select(table)
            .where(table.c.portal_id == portal_id, table.c.company_id == company_id)
            .order_by(table.c.id)
        )
        with self._engine.connect() as conn:
            return [
                HistoryRow(
                    contact_id=row.company_id,
                    run_id=row.run_id,
                    version=row.version,
                    old_score=row.old_score,
                    new_score=row.new_score,
                    grade=row.grade,
                    stage=None,
                    reasons=row.reasons,
                    breakdown=row.breakdown,
                )
                for row in conn.execute(query)
            ]

    def company_dead_letters(self, portal_id: int) -> list[DeadLetter]:
        """The company writes HubSpot refused, oldest first."""
        table = schema.company_dead_letters
        query = sa.select(table).where(table.c.portal_id == portal_id).order_by(table.c.id)
        with self._engine.connect() as conn:
            return [
                DeadLetter(row.company_id, dict(row.properties), row.reason, row.status) for row in conn.execute(query)
            ]

    # -- runs --

    def start_run(self, run: RunRecord) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                sa.insert(schema.runs).values(
                    run_id=run.run_id,
                    portal_id=run.portal_id,
                    kind=run.kind,
                    status=run.status,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    counts=dict(run.counts),
                    error=run.error,
                )
            )

    def finish_run(self, run_id: str, status: str, counts: Mapping[str, int], error: str | None = None) -> None:
        stmt = (
            sa.update(schema.runs)
            .where(schema.runs.c.run_id == run_id)
            .values(status=status, counts=dict(counts), error=error, finished_at=self._now())
        )
        with self._writer.begin() as conn:
            if conn.execute(stmt).rowcount == 0:
                raise LookupError(f"no run {run_id!r} to finish: start_run was not called for it")

    def last_runs(self, portal_id: int, limit: int = 10) -> list[RunRecord]:
        """The portal's latest runs, newest first."""
        query = (
            sa.select(schema.runs)
            .where(schema.runs.c.portal_id == portal_id)
            .order_by(schema.runs.c.started_at.desc(), schema.runs.c.run_id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [
                RunRecord(
                    run_id=row.run_id,
                    portal_id=row.portal_id,
                    kind=row.kind,
                    started_at=row.started_at,
                    finished_at=row.finished_at,
                    status=row.status,
                    counts=dict(row.counts),
                    error=row.error,
                )
                for row in conn.execute(query)
            ]

    # -- leases --

    def acquire_lease(self, portal_id: int, holder: str, ttl_s: float) -> bool:
        """Take the portal's lease for `ttl_s` seconds, or renew it if `holder` has it; False if another holds it.

        One upsert decides, atomically on both backends: it takes the row only
        when the lease has expired or is ours already. Reading the row back in
        the same transaction says who holds it now. Expiry is judged by this
        process's clock, so replicas' clocks should agree to well within a ttl.
        """
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        expires = now + timedelta(seconds=ttl_s)
        stmt = self._insert(schema.leases).values(portal_id=portal_id, holder=holder, expires_at=expires)
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.leases.c.portal_id],
            set_={"holder": stmt.excluded.holder, "expires_at": stmt.excluded.expires_at},
            where=sa.or_(schema.leases.c.expires_at < now, schema.leases.c.holder == holder),
        )
        with self._writer.begin() as conn:
            conn.execute(stmt)
            current = conn.scalar(sa.select(schema.leases.c.holder).where(schema.leases.c.portal_id == portal_id))
        return bool(current == holder)

    def release_lease(self, portal_id: int, holder: str) -> None:
        """Give the lease up, if `holder` has it; another holder's lease is left alone."""
        with self._writer.begin() as conn:
            conn.execute(
                sa.delete(schema.leases).where(schema.leases.c.portal_id == portal_id, schema.leases.c.holder == holder)
            )

    # -- the daily API budget --

    def add_api_calls(self, portal_id: int, day: str, calls: int) -> int:
        """Add `calls` to the portal's count for `day` and return the new total (0 calls reads it)."""
        stmt = self._insert(schema.api_usage).values(portal_id=portal_id, day=day, calls=calls)
        upsert = stmt.on_conflict_do_update(
            index_elements=[schema.api_usage.c.portal_id, schema.api_usage.c.day],
            set_={"calls": schema.api_usage.c.calls + stmt.excluded.calls},
        ).returning(schema.api_usage.c.calls)
        with self._writer.begin() as conn:
            return int(conn.execute(upsert).scalar_one())

    # -- installation settings --

    def log_key(self) -> bytes:
        """The installation's key for hashing emails in logs: 32 random bytes made by the first process to ask,
        then the same for every process and replica using this store (so their logs correlate)."""
        if self._log_key is None:
            table = schema.settings
            fresh = self._insert(table).values(
                name=schema.LOG_KEY_SETTING, value=secrets.token_hex(32), updated_at=self._now()
            )
            with self._writer.begin() as conn:
                conn.execute(fresh.on_conflict_do_nothing(index_elements=[table.c.name]))
                value = conn.scalar(sa.select(table.c.value).where(table.c.name == schema.LOG_KEY_SETTING))
            self._log_key = bytes.fromhex(str(value))
        return self._log_key


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _int_chunks(values: Sequence[int], size: int = IN_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


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


def _contact(row: Row[Any]) -> Contact:
    return Contact(
        id=row.id,
        properties=dict(row.properties),
        email=row.email,
        created_at_ms=row.created_at_ms,
        lifecycle_stage=row.lifecycle_stage,
        list_ids=frozenset(row.list_ids),
    )


def _event_row(portal_id: int, event: Event) -> dict[str, object]:
    payload: dict[str, object]
    if isinstance(event, FormSubmission):
        payload = {"form_id": event.form_id, "form_name": event.form_name, "page_url": event.page_url}
    else:
        payload = {"campaign_id": event.campaign_id, "url": event.url, "filtered": event.filtered}
        if event.category or event.soft_bounce:
            payload.update(category=event.category, soft_bounce=event.soft_bounce)
    return {
        "portal_id": portal_id,
        "kind": event.kind,
        "event_id": event.event_id,
        "email": normalize_email(event.email),
        "at_ms": event.at_ms,
        "payload": payload,
    }


def _event(row: Row[Any]) -> Event:
    payload = row.payload
    if row.kind == FORM_SUBMISSION:
        return FormSubmission(
            event_id=row.event_id,
            at_ms=row.at_ms,
            email=row.email,
            form_id=payload["form_id"],
            form_name=payload["form_name"],
            page_url=payload["page_url"],
        )
    return EmailEvent(
        event_id=row.event_id,
        kind=row.kind,
        at_ms=row.at_ms,
        email=row.email,
        campaign_id=payload["campaign_id"],
        url=payload["url"],
        filtered=bool(payload["filtered"]),
        category=str(payload.get("category", "")),
        soft_bounce=bool(payload.get("soft_bounce", False)),
    )


def _history_json(history: HistoryRow) -> dict[str, object]:
    data = {f.name: getattr(history, f.name) for f in fields(HistoryRow)}
    data["breakdown"] = dict(history.breakdown)
    return data


def _history_from(data: Mapping[str, Any]) -> HistoryRow:
    return HistoryRow(**{f.name: data[f.name] for f in fields(HistoryRow)})


def _history_row(portal_id: int, history: HistoryRow, now: datetime) -> dict[str, object]:
    return {"portal_id": portal_id, **_history_json(history), "recorded_at": now}


def _company_history_row(portal_id: int, history: HistoryRow, now: datetime) -> dict[str, object]:
    data = _history_json(history)
    return {
        "portal_id": portal_id,
        "company_id": data.pop("contact_id"),
        **{k: v for k, v in data.items() if k != "stage"},
        "recorded_at": now,
    }
