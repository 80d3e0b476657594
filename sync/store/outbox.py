"""The outboxes of contact and company writes: planned writes recorded before they are sent, and completed in one
transaction after (history rows, the values written, dead letters, the cursor), so a crash leaves a batch either
all recorded or still pending. The two outboxes share their shape; the contacts' also owns stages and settles the
retries of dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.core.wire import LIFECYCLE_STAGE
from sync.ports import DeadLetter, Fence, HistoryRow, PendingWrite
from sync.store import schema
from sync.store.base import chunks, history_from, history_json
from sync.store.cursors import CursorStore
from sync.store.dead_letters import OPEN, dead_letter_wait, settle_retries
from sync.store.runs import fenced


@dataclass(frozen=True)
class _Outbox:
    """One object type's outbox: its outbox table, its table of values written, and their record id column."""

    outbox: sa.Table
    written: sa.Table
    key: str


_CONTACTS = _Outbox(schema.outbox, schema.written_values, "contact_id")
_COMPANIES = _Outbox(schema.company_outbox, schema.company_written_values, "company_id")


class OutboxStore(CursorStore):
    """The Outbox and CompanyOutbox roles (sync.ports); a completed batch moves its cursor in the same transaction."""

    def record_pending(
        self, portal_id: int, run_id: str, writes: Sequence[PendingWrite], *, fence: Fence | None = None
    ) -> None:
        """Record planned writes before they are sent; a newer plan for a contact replaces its older one. Under a
        stale fence nothing is recorded (LeaseLostError)."""
        self._record(_CONTACTS, portal_id, run_id, writes, fence)

    def pending_writes(self, portal_id: int) -> list[PendingWrite]:
        return self._pending(_CONTACTS, portal_id)

    def complete_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        cursor: tuple[str, str] | None = None,
        *,
        fence: Fence | None = None,
    ) -> None:
        """Record a sent batch in one transaction, so a crash leaves it either all recorded or still pending.

        Removes the batch's outbox rows, adds the history rows applied writes
        carry, merges the applied values into the written values, records the
        lifecycle stages written as leadsync's own, adds the dead letters, and
        moves the cursor (stream, value) when one is given. Under a stale
        fence it records nothing and raises LeaseLostError.
        """
        now = self._now()
        with self._writer.begin() as conn:
            fenced(conn, fence, "completing contact writes")
            done = sorted({w.contact_id for w in applied} | {d.contact_id for d in dead})
            if done:
                remove = sa.delete(schema.outbox).where(
                    schema.outbox.c.portal_id == portal_id, schema.outbox.c.contact_id == sa.bindparam("cid")
                )
                conn.execute(remove, [{"cid": contact_id} for contact_id in done])
            history = [_history_row(portal_id, w.history, now) for w in applied if w.history is not None]
            if history:
                conn.execute(sa.insert(schema.score_history), history)
            self._merge_written(conn, _CONTACTS, portal_id, run_id, applied, now)
            self._own_stages(conn, portal_id, run_id, applied, now)
            dead = settle_retries(conn, portal_id, run_id, applied, dead, now)
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
            for chunk in chunks(wanted):
                query = sa.select(owners.c.contact_id, owners.c.stage).where(
                    owners.c.portal_id == portal_id, owners.c.contact_id.in_(chunk)
                )
                found.update((contact_id, stage) for contact_id, stage in conn.execute(query))
        return found

    def written_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The values last written per contact among `ids`; contacts never written to are left out."""
        return self._written(_CONTACTS, portal_id, ids)

    def record_company_pending(
        self, portal_id: int, run_id: str, writes: Sequence[PendingWrite], *, fence: Fence | None = None
    ) -> None:
        """Record planned company writes before they are sent; a newer plan for a company replaces its older one."""
        self._record(_COMPANIES, portal_id, run_id, writes, fence)

    def pending_company_writes(self, portal_id: int) -> list[PendingWrite]:
        return self._pending(_COMPANIES, portal_id)

    def complete_company_writes(
        self,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        dead: Sequence[DeadLetter],
        rescored: Sequence[str] = (),
        *,
        fence: Fence | None = None,
    ) -> None:
        """Record a sent batch of company writes in one transaction: outbox rows removed, history rows added,
        values merged into the written values, dead letters added, and the stale marks of `rescored` cleared.
        Under a stale fence it records nothing and raises LeaseLostError."""
        now = self._now()
        with self._writer.begin() as conn:
            fenced(conn, fence, "completing company writes")
            done = sorted({w.contact_id for w in applied} | {d.contact_id for d in dead})
            outbox, stale = schema.company_outbox, schema.stale_companies
            for chunk in chunks(done):
                conn.execute(outbox.delete().where(outbox.c.portal_id == portal_id, outbox.c.company_id.in_(chunk)))
            for chunk in chunks(list(dict.fromkeys(rescored))):
                conn.execute(stale.delete().where(stale.c.portal_id == portal_id, stale.c.company_id.in_(chunk)))
            history = [_company_history_row(portal_id, w.history, now) for w in applied if w.history is not None]
            if history:
                conn.execute(sa.insert(schema.company_history), history)
            self._merge_written(conn, _COMPANIES, portal_id, run_id, applied, now)
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

    def written_company_values(self, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The values last written per company among `ids`; companies never written to are left out."""
        return self._written(_COMPANIES, portal_id, ids)

    # -- the shape both outboxes share --

    def _record(
        self, box: _Outbox, portal_id: int, run_id: str, writes: Sequence[PendingWrite], fence: Fence | None
    ) -> None:
        now = self._now()
        staged = "stage" in box.outbox.c  # a company write never moves a stage
        rows: dict[str, dict[str, object]] = {}
        for w in writes:
            rows[w.contact_id] = {
                "portal_id": portal_id,
                box.key: w.contact_id,
                "run_id": run_id,
                "properties": dict(w.properties),
                **({"stage": w.stage} if staged else {}),
                "history": None if w.history is None else history_json(w.history),
                "recorded_at": now,
            }
        if not rows:
            return
        stmt = self._insert(box.outbox)
        updated = ("run_id", "properties", *(("stage",) if staged else ()), "history", "recorded_at")
        stmt = stmt.on_conflict_do_update(
            index_elements=[box.outbox.c.portal_id, box.outbox.c[box.key]],
            set_={name: stmt.excluded[name] for name in updated},
        )
        with self._writer.begin() as conn:
            fenced(conn, fence, "recording planned writes")
            conn.execute(stmt, list(rows.values()))

    def _pending(self, box: _Outbox, portal_id: int) -> list[PendingWrite]:
        table = box.outbox
        staged = "stage" in table.c
        query = sa.select(table).where(table.c.portal_id == portal_id).order_by(table.c[box.key])
        with self._engine.connect() as conn:
            return [
                PendingWrite(
                    contact_id=row._mapping[box.key],
                    properties=dict(row.properties),
                    stage=row.stage if staged else None,
                    history=None if row.history is None else history_from(row.history),
                )
                for row in conn.execute(query)
            ]

    def _merge_written(
        self,
        conn: Connection,
        box: _Outbox,
        portal_id: int,
        run_id: str,
        applied: Sequence[PendingWrite],
        now: datetime,
    ) -> None:
        # Keyed by (record, property), a later write in the batch winning, as it would in HubSpot.
        values = {(w.contact_id, name): value for w in applied for name, value in w.properties.items()}
        if not values:
            return
        table = box.written
        stmt = self._insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.portal_id, table.c[box.key], table.c.name],
            set_={name: stmt.excluded[name] for name in ("value", "run_id", "updated_at")},
        )
        rows = [
            {"portal_id": portal_id, box.key: rid, "name": name, "value": value, "run_id": run_id, "updated_at": now}
            for (rid, name), value in values.items()
        ]
        conn.execute(stmt, rows)

    def _written(self, box: _Outbox, portal_id: int, ids: Sequence[str]) -> dict[str, dict[str, str]]:
        table = box.written
        key = table.c[box.key]
        found: dict[str, dict[str, str]] = {}
        with self._engine.connect() as conn:
            for chunk in chunks(list(dict.fromkeys(ids))):
                query = sa.select(key, table.c.name, table.c.value).where(
                    table.c.portal_id == portal_id, key.in_(chunk)
                )
                for record_id, name, value in conn.execute(query):
                    found.setdefault(record_id, {})[name] = value
        return found


def _history_row(portal_id: int, history: HistoryRow, now: datetime) -> dict[str, object]:
    return {"portal_id": portal_id, **history_json(history), "recorded_at": now}


def _company_history_row(portal_id: int, history: HistoryRow, now: datetime) -> dict[str, object]:
    data = history_json(history)
    return {
        "portal_id": portal_id,
        "company_id": data.pop("contact_id"),
        **{k: v for k, v in data.items() if k != "stage"},
        "recorded_at": now,
    }
