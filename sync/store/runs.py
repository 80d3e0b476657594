"""Runs, the leases that fence a portal to one worker, the daily API budget, and installation settings."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import timedelta

import sqlalchemy as sa

from sync.ports import RunRecord
from sync.store import schema
from sync.store.base import StoreBase


class RunStore(StoreBase):
    """The Runs, Leases and ApiBudget roles (sync.ports), and the installation settings."""

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

    def add_api_calls(self, portal_id: int, day: str, calls: int) -> int:
        """Add `calls` to the portal's count for `day` and return the new total (0 calls reads it)."""
        stmt = self._insert(schema.api_usage).values(portal_id=portal_id, day=day, calls=calls)
        upsert = stmt.on_conflict_do_update(
            index_elements=[schema.api_usage.c.portal_id, schema.api_usage.c.day],
            set_={"calls": schema.api_usage.c.calls + stmt.excluded.calls},
        ).returning(schema.api_usage.c.calls)
        with self._writer.begin() as conn:
            return int(conn.execute(upsert).scalar_one())

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
