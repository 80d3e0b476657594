"""Runs, the leases that fence a portal to one worker (with their epochs, and the replicas' heartbeats), the daily
API budget, and installation settings."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.errors import LeaseLostError
from sync.ports import Fence, LeaseRow, RunRecord
from sync.store import schema
from sync.store.base import StoreBase, int_chunks

# A released lease expires at once (whatever the clocks say) and keeps its epoch.
RELEASED = datetime(1970, 1, 1, tzinfo=UTC)


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
        """Take the portal's lease for `ttl_s` seconds, or renew it if `holder` has it; False if another holds it."""
        return self.acquire_fence(portal_id, holder, ttl_s) is not None

    def acquire_fence(self, portal_id: int, holder: str, ttl_s: float, *, new_epoch: bool = False) -> Fence | None:
        """Take the portal's lease for `ttl_s` seconds, or renew it if `holder` has it: its fence, or None if another
        holds it.

        One upsert decides, atomically on both backends: it takes the row only
        when the lease has expired or is ours already, and bumps the epoch
        unless it renews a lease this holder still has (or `new_epoch` asks for
        one anyway: a run that must fence out an earlier run of the same
        holder, as `leadsync sync` does). RETURNING says whether it did.
        Expiry is judged by this process's clock, so replicas' clocks should
        agree to well within a ttl.
        """
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        expires = now + timedelta(seconds=ttl_s)
        table = schema.leases
        insert = self._insert(table).values(portal_id=portal_id, holder=holder, expires_at=expires, epoch=1)
        renewal = sa.and_(table.c.holder == holder, table.c.expires_at >= now, sa.literal(not new_epoch))
        stmt = insert.on_conflict_do_update(
            index_elements=[table.c.portal_id],
            set_={
                "holder": insert.excluded.holder,
                "expires_at": insert.excluded.expires_at,
                "epoch": sa.case((renewal, table.c.epoch), else_=table.c.epoch + 1),
            },
            where=sa.or_(table.c.expires_at < now, table.c.holder == holder),
        ).returning(table.c.epoch)
        with self._writer.begin() as conn:
            epoch = conn.execute(stmt).scalar_one_or_none()
        return None if epoch is None else Fence(portal_id, holder, int(epoch))

    def renew_leases(self, holder: str, portal_ids: Sequence[int], ttl_s: float) -> dict[int, int]:
        """Renew the unexpired leases `holder` has among `portal_ids` (one statement per chunk, not one
        transaction per portal: a replica holding thousands renews them all every third of a ttl); portal id ->
        epoch of those renewed. An expired one is left out, even if still the holder's: taking it again is a new
        epoch (acquire_fence)."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        table = schema.leases
        renewed: dict[int, int] = {}
        with self._writer.begin() as conn:
            for chunk in int_chunks(list(dict.fromkeys(portal_ids))):
                stmt = (
                    sa.update(table)
                    .where(table.c.holder == holder, table.c.portal_id.in_(chunk), table.c.expires_at >= now)
                    .values(expires_at=now + timedelta(seconds=ttl_s))
                    .returning(table.c.portal_id, table.c.epoch)
                )
                renewed.update((int(pid), int(epoch)) for pid, epoch in conn.execute(stmt))
        return renewed

    def check_fence(self, fence: Fence) -> bool:
        """Whether the fence is still its portal's lease: the same holder and epoch, and not expired."""
        table = schema.leases
        query = sa.select(table.c.portal_id).where(
            table.c.portal_id == fence.portal_id,
            table.c.holder == fence.holder,
            table.c.epoch == fence.epoch,
            table.c.expires_at >= self._now(),
        )
        with self._engine.connect() as conn:
            return conn.scalar(query) is not None

    def release_lease(self, portal_id: int, holder: str, epoch: int | None = None) -> None:
        """Give the lease up, if `holder` has it (at `epoch`, when given); another holder's lease is left alone.
        The row stays, expired, so the epoch goes on growing from where it was."""
        table = schema.leases
        ours = sa.and_(table.c.portal_id == portal_id, table.c.holder == holder)
        if epoch is not None:
            ours = sa.and_(ours, table.c.epoch == epoch)
        with self._writer.begin() as conn:
            conn.execute(sa.update(table).where(ours).values(expires_at=RELEASED))

    def leases(self) -> list[LeaseRow]:
        """Every portal's lease row, expired ones included, by portal id."""
        table = schema.leases
        query = sa.select(table.c.portal_id, table.c.holder, table.c.epoch, table.c.expires_at)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(table.c.portal_id))
            return [LeaseRow(r.portal_id, r.holder, int(r.epoch), r.expires_at) for r in rows]

    def heartbeat(self, holder: str, ttl_s: float) -> list[str]:
        """Announce `holder` as live for `ttl_s` seconds; the live replicas' holders, sorted (`holder` included)."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        now = self._now()
        table = schema.replicas
        stmt = self._insert(table).values(
            holder=holder, started_at=now, heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.holder],
            set_={"heartbeat_at": stmt.excluded.heartbeat_at, "expires_at": stmt.excluded.expires_at},
        )
        with self._writer.begin() as conn:
            conn.execute(stmt)
            # Replicas gone for a day are forgotten: the table stays the size of the fleet.
            conn.execute(sa.delete(table).where(table.c.expires_at < now - timedelta(days=1)))
            live = set(conn.scalars(sa.select(table.c.holder).where(table.c.expires_at >= now)))
        return sorted(live | {holder})

    def leave(self, holder: str) -> None:
        """Remove the replica's heartbeat, so the others count it out at once."""
        with self._writer.begin() as conn:
            conn.execute(sa.delete(schema.replicas).where(schema.replicas.c.holder == holder))

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


def fenced(conn: Connection, fence: Fence | None, where: str) -> None:
    """Inside a write transaction: raise LeaseLostError (rolling it back) unless the fence is still the
    portal's lease. The lease row is locked until the transaction ends (SELECT ... FOR UPDATE on PostgreSQL;
    SQLite's write transactions hold the whole database), so a take of the lease waits for this record to
    commit, and two replicas completing one batch cannot both pass."""
    if fence is None:
        return
    table = schema.leases
    row = conn.execute(
        sa.select(table.c.holder, table.c.epoch).where(table.c.portal_id == fence.portal_id).with_for_update()
    ).first()
    if row is None or row.holder != fence.holder or int(row.epoch) != fence.epoch:
        raise LeaseLostError(fence.portal_id, fence.epoch, where)
