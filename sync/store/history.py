"""The audit: every score change written, per contact and per company, and the stage moves runs made."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from sync.ports import HistoryRow, StageTransition
from sync.store import schema
from sync.store.base import StoreBase, chunks


class HistoryStore(StoreBase):
    """The History role (sync.ports)."""

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
            for chunk in chunks(wanted):
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
