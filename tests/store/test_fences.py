"""Leases' fencing epochs, the outbox fenced by them, and the replicas' heartbeats: the store contract on SQLite,
PostgreSQL and the in-memory store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
import sqlalchemy as sa

from sync.errors import LeaseLostError
from sync.ports import DeadLetter, Fence, PendingWrite, StateStore
from sync.store import schema
from sync.store.state import SqlStateStore
from tests.fakes import ManualClock, in_parallel
from tests.store.conftest import MakeStore
from tests.store.test_state import OTHER, PORTAL, history, pending

# -- epochs --


def test_the_first_take_of_a_lease_is_epoch_1_and_a_renewal_keeps_it(store: StateStore, clock: ManualClock) -> None:
    assert store.acquire_fence(PORTAL, "worker-a", 60) == Fence(PORTAL, "worker-a", 1)
    clock.advance(50)
    assert store.acquire_fence(PORTAL, "worker-a", 60) == Fence(PORTAL, "worker-a", 1)
    assert store.acquire_fence(PORTAL, "worker-b", 60) is None


@pytest.mark.parametrize("taker", ["worker-b", "worker-a"], ids=["another-holder", "the-same-holder"])
def test_taking_an_expired_lease_bumps_the_epoch(store: StateStore, clock: ManualClock, taker: str) -> None:
    store.acquire_fence(PORTAL, "worker-a", 60)
    clock.advance(61)
    assert store.acquire_fence(PORTAL, taker, 60) == Fence(PORTAL, taker, 2)


def test_epochs_keep_growing_across_releases_and_are_kept_per_portal(store: StateStore) -> None:
    store.acquire_fence(PORTAL, "worker-a", 60)
    store.release_lease(PORTAL, "worker-a")
    assert store.acquire_fence(PORTAL, "worker-b", 60) == Fence(PORTAL, "worker-b", 2)
    store.release_lease(PORTAL, "worker-b")
    assert store.acquire_fence(PORTAL, "worker-b", 60) == Fence(PORTAL, "worker-b", 3)
    assert store.acquire_fence(OTHER, "worker-a", 60) == Fence(OTHER, "worker-a", 1)


def test_a_fence_is_current_until_its_lease_expires_or_moves_on(store: StateStore, clock: ManualClock) -> None:
    first = store.acquire_fence(PORTAL, "worker-a", 60)
    assert first is not None and store.check_fence(first)
    clock.advance(61)
    assert not store.check_fence(first)  # expired: another may take it any moment
    second = store.acquire_fence(PORTAL, "worker-b", 60)
    assert second is not None and store.check_fence(second)
    assert not store.check_fence(first)
    assert not store.check_fence(Fence(PORTAL, "worker-b", 1))  # the right holder, an old epoch


def test_the_leases_list_their_holder_epoch_and_expiry(store: StateStore, clock: ManualClock) -> None:
    store.acquire_fence(PORTAL, "worker-a", 60)
    store.acquire_fence(OTHER, "worker-b", 30)
    rows = store.leases()
    assert [(r.portal_id, r.holder, r.epoch) for r in rows] == [(PORTAL, "worker-a", 1), (OTHER, "worker-b", 1)]
    assert [r.expires_at for r in rows] == [clock.now() + timedelta(seconds=60), clock.now() + timedelta(seconds=30)]


def test_a_released_lease_is_listed_as_expired(store: StateStore, clock: ManualClock) -> None:
    store.acquire_fence(PORTAL, "worker-a", 60)
    store.release_lease(PORTAL, "worker-a")
    (row,) = store.leases()
    assert row.expires_at < clock.now() and row.epoch == 1


# -- the outbox, fenced --


def stale_and_current(store: StateStore, clock: ManualClock) -> tuple[Fence, Fence]:
    """worker-a's fence, gone stale when worker-b took the expired lease; and worker-b's."""
    old = store.acquire_fence(PORTAL, "worker-a", 60)
    clock.advance(61)
    new = store.acquire_fence(PORTAL, "worker-b", 60)
    assert old is not None and new is not None
    return old, new


def test_a_stale_fence_completes_nothing_and_writes_no_history(store: StateStore, clock: ManualClock) -> None:
    writes = [pending("1", 10), pending("2", 20)]
    store.record_pending(PORTAL, "run-1", writes)
    old, _ = stale_and_current(store, clock)
    with pytest.raises(LeaseLostError, match=f"portal {PORTAL}"):
        store.complete_writes(
            PORTAL, "run-1", writes, [DeadLetter("3", {}, "gone", 404)], ("contacts_after", "9"), fence=old
        )
    assert store.pending_writes(PORTAL) == writes
    assert store.history(PORTAL, "1") == [] and store.written_values(PORTAL, ["1", "2"]) == {}
    assert store.dead_letters(PORTAL) == [] and store.get_cursor(PORTAL, "contacts_after") is None


def test_a_stale_fence_records_no_planned_writes(store: StateStore, clock: ManualClock) -> None:
    old, _ = stale_and_current(store, clock)
    for record in (store.record_pending, store.record_company_pending):
        with pytest.raises(LeaseLostError):
            record(PORTAL, "run-1", [pending("1", 10)], fence=old)
    assert store.pending_writes(PORTAL) == [] and store.pending_company_writes(PORTAL) == []


def test_a_stale_fence_completes_no_company_writes(store: StateStore, clock: ManualClock) -> None:
    store.record_company_pending(PORTAL, "run-1", [pending("c-1", 40)])
    store.mark_companies_stale(PORTAL, ["c-1"])
    old, _ = stale_and_current(store, clock)
    with pytest.raises(LeaseLostError):
        store.complete_company_writes(PORTAL, "run-1", [pending("c-1", 40)], [], ["c-1"], fence=old)
    assert [w.contact_id for w in store.pending_company_writes(PORTAL)] == ["c-1"]
    assert store.company_history(PORTAL, "c-1") == [] and store.stale_companies(PORTAL, 10) == ["c-1"]


def test_the_current_fence_records_and_completes(store: StateStore, clock: ManualClock) -> None:
    _, new = stale_and_current(store, clock)
    store.record_pending(PORTAL, "run-2", [pending("1", 10)], fence=new)
    store.complete_writes(PORTAL, "run-2", [pending("1", 10)], [], fence=new)
    store.record_company_pending(PORTAL, "run-2", [pending("c-1", 40)], fence=new)
    store.complete_company_writes(PORTAL, "run-2", [pending("c-1", 40)], [], fence=new)
    assert store.pending_writes(PORTAL) == [] and store.history(PORTAL, "1") == [history("1", 10)]
    assert store.pending_company_writes(PORTAL) == [] and len(store.company_history(PORTAL, "c-1")) == 1


def test_a_fence_whose_lease_expired_untaken_still_completes_what_it_sent(
    store: StateStore, clock: ManualClock
) -> None:
    """Nobody else held the portal meanwhile, so nobody else could have sent or recorded this batch."""
    fence = store.acquire_fence(PORTAL, "worker-a", 60)
    assert fence is not None
    clock.advance(61)
    store.complete_writes(PORTAL, "run-1", [pending("1", 10)], [], fence=fence)
    assert store.history(PORTAL, "1") == [history("1", 10)]


def completion(store: StateStore, portal: int, writes: list[PendingWrite], fence: Fence) -> Callable[[], str]:
    """A completion of `writes` under `fence`, saying how it ended: ok, or lease_lost."""

    def run() -> str:
        try:
            store.complete_writes(portal, "run", writes, [], fence=fence)
        except LeaseLostError:
            return "lease_lost"
        return "ok"

    return run


def test_two_replicas_completing_one_batch_leave_one_history_row_each(
    make_store: MakeStore, clock: ManualClock
) -> None:
    first, second = make_store(), make_store()
    for round_ in range(5):
        portal = 100 + round_
        writes = [pending(str(i), i) for i in range(1, 21)]
        first.record_pending(portal, "run-a", writes)
        old = first.acquire_fence(portal, "worker-a", 60)
        clock.advance(61)
        new = second.acquire_fence(portal, "worker-b", 60)
        assert old is not None and new is not None

        outcomes = in_parallel(completion(first, portal, writes, old), completion(second, portal, writes, new))
        assert outcomes == ["lease_lost", "ok"]
        assert all(len(first.history(portal, str(i))) == 1 for i in range(1, 21))


def test_a_take_waits_for_a_completion_in_flight_and_then_fences_it_out(make_store: MakeStore) -> None:
    """A completion and a takeover racing: whichever commits first, the history holds each row once, and the
    loser of a completion that came second records nothing."""
    first, second = make_store(), make_store()
    for round_ in range(5):
        portal = 200 + round_
        writes = [pending(str(i), i) for i in range(1, 11)]
        first.record_pending(portal, "run-a", writes)
        old = first.acquire_fence(portal, "worker-a", 1)
        assert old is not None
        first.release_lease(portal, "worker-a")  # expired at once: free to take

        outcome, taken = in_parallel(
            completion(first, portal, writes, old), partial(second.acquire_fence, portal, "worker-b", 60)
        )
        assert taken == Fence(portal, "worker-b", 2)
        left = {w.contact_id for w in second.pending_writes(portal)}
        assert left == (set() if outcome == "ok" else {w.contact_id for w in writes})
        assert all(len(first.history(portal, str(i))) == (1 if outcome == "ok" else 0) for i in range(1, 11))


# -- replicas --


def test_a_heartbeat_lists_the_live_replicas_itself_included(store: StateStore, clock: ManualClock) -> None:
    assert store.heartbeat("worker-a", 30) == ["worker-a"]
    assert store.heartbeat("worker-c", 30) == ["worker-a", "worker-c"]
    clock.advance(20)
    assert store.heartbeat("worker-b", 30) == ["worker-a", "worker-b", "worker-c"]
    clock.advance(11)  # a and c stopped heartbeating 31 s ago
    assert store.heartbeat("worker-b", 30) == ["worker-b"]


def test_a_replica_that_leaves_is_counted_out_at_once(store: StateStore) -> None:
    store.heartbeat("worker-a", 30)
    store.leave("worker-a")
    store.leave("never-came")
    assert store.heartbeat("worker-b", 30) == ["worker-b"]


def test_a_heartbeat_needs_a_positive_ttl(store: StateStore) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        store.heartbeat("worker-a", 0)


# -- the migration --


def test_a_v6_database_gains_epochs_and_the_replicas_table(store_url: str) -> None:
    store = SqlStateStore(store_url)
    with schema.writer(store.engine).begin() as conn:  # back to v6: leases without an epoch, no replicas
        conn.exec_driver_sql("DROP TABLE replicas")
        conn.exec_driver_sql("ALTER TABLE leases DROP COLUMN epoch")
        conn.execute(sa.delete(schema.schema_migrations).where(schema.schema_migrations.c.version > 6))
        conn.exec_driver_sql(
            "INSERT INTO leases (portal_id, holder, expires_at) VALUES (7, 'old-worker', '2026-01-01 00:00:00')"
        )
    store.close()
    reopened = SqlStateStore(store_url)  # migrates
    try:
        assert [(r.holder, r.epoch) for r in reopened.leases()] == [("old-worker", 0)]
        assert reopened.acquire_fence(7, "worker-a", 60) == Fence(7, "worker-a", 1)
        assert reopened.heartbeat("worker-a", 30) == ["worker-a"]
        assert schema.migrate(reopened.engine) == []
    finally:
        reopened.close()


def test_a_take_with_new_epoch_fences_out_the_holders_earlier_take(store: StateStore) -> None:
    first = store.acquire_fence(PORTAL, "sync@host", 60)
    second = store.acquire_fence(PORTAL, "sync@host", 60, new_epoch=True)
    assert first == Fence(PORTAL, "sync@host", 1) and second == Fence(PORTAL, "sync@host", 2)
    assert not store.check_fence(first) and store.check_fence(second)
    assert store.acquire_fence(PORTAL, "worker-b", 60, new_epoch=True) is None  # still never another's lease


def test_a_release_at_an_old_epoch_leaves_the_newer_lease_alone(store: StateStore) -> None:
    store.acquire_fence(PORTAL, "sync@host", 60)
    newer = store.acquire_fence(PORTAL, "sync@host", 60, new_epoch=True)
    assert newer is not None
    store.release_lease(PORTAL, "sync@host", epoch=1)
    assert store.check_fence(newer)
    store.release_lease(PORTAL, "sync@host", epoch=2)
    assert not store.check_fence(newer)


def test_renew_leases_renews_the_holders_unexpired_leases_in_one_call(store: StateStore, clock: ManualClock) -> None:
    for portal in (1, 2, 3):
        store.acquire_fence(portal, "worker-a", 60)
    store.acquire_fence(4, "worker-b", 60)
    clock.advance(30)
    store.acquire_fence(3, "worker-a", 10)  # expires 10 s from now
    clock.advance(20)
    assert store.renew_leases("worker-a", [1, 2, 3, 4, 5], 60) == {1: 1, 2: 1}  # 3 expired, 4 is b's, 5 unheld
    clock.advance(50)  # past the first expiry of 1 and 2: renewed
    assert store.acquire_fence(1, "worker-b", 60) is None and store.acquire_fence(2, "worker-b", 60) is None
    assert store.acquire_fence(3, "worker-a", 60) == Fence(3, "worker-a", 2)  # taken again: a new epoch
