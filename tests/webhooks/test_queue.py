"""The intake queue: coalesced per (portal, contact), grouped about a second per portal, bounded under a flood."""

from __future__ import annotations

import tracemalloc

from sync.webhooks import IntakeQueue
from tests.fakes import ManualClock


def test_a_contact_pending_once_is_taken_once_however_many_events_name_it() -> None:
    clock = ManualClock()
    queue = IntakeQueue(monotonic=clock.monotonic)
    for _ in range(5):
        queue.put(7, "42", must=False, check=("lifecyclestage", "lead"))
    queue.put(7, "42", must=True)
    queue.put(7, "43", must=False, check=("lifecyclestage", "lead"))
    clock.advance(1.0)
    taken = dict(queue.take(7))
    assert set(taken) == {"42", "43"} and len(queue) == 0
    assert taken["42"].must and not taken["43"].must and taken["43"].checks == {"lifecyclestage": "lead"}


def test_a_portal_is_due_after_the_window_or_a_full_batch_and_portals_wait_apart() -> None:
    clock = ManualClock()
    queue = IntakeQueue(window_s=1.0, batch=3, monotonic=clock.monotonic)
    queue.put(1, "a", must=True)
    clock.advance(0.5)
    queue.put(2, "b", must=True)
    assert queue.due() == ([], 0.5)
    clock.advance(0.5)
    assert queue.due()[0] == [1]
    assert queue.due(busy={1})[0] == []  # a portal in flight is not handed out twice
    for cid in ("c", "d"):
        queue.put(2, cid, must=True)
    assert sorted(queue.due()[0]) == [1, 2]  # portal 2's batch is full before its window ends
    assert [cid for cid, _ in queue.take(2)] == ["b", "c", "d"]


def test_a_flood_of_ten_thousand_deliveries_is_absorbed_in_bounded_memory_and_drops_are_counted() -> None:
    queue = IntakeQueue(capacity=10_000)
    tracemalloc.start()
    try:
        for delivery in range(10_000):  # 10 events each, over 50,000 contacts of three portals
            for i in range(10):
                queue.put(1 + i % 3, str((delivery * 10 + i) % 50_000), must=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(queue) == 10_000
    assert queue.dropped > 0  # contacts that did not fit: left to the safety-net poll
    assert peak < 20 * 1024 * 1024


def test_contacts_handed_back_keep_what_they_waited_for() -> None:
    queue = IntakeQueue(window_s=0)
    queue.put(1, "a", must=False, check=("lifecyclestage", "lead"))
    queue.put(1, "b", must=True)
    taken = queue.take(1)
    assert queue.put_back(1, taken) == 2
    again = dict(queue.take(1))
    assert again["a"].checks == {"lifecyclestage": "lead"} and again["b"].must
