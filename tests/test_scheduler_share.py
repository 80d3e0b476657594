"""The service's fair share, on the in-memory store and a manual clock: lease jobs of several replicas, run by hand."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from sync.app import ConfiguredPortal
from sync.scheduler import Held, Service
from tests.fakes import ManualClock, MemoryStore

TTL = 30.0


def replica(store: MemoryStore, clock: ManualClock, name: str, portals: int) -> Service:
    def unused(file: Path, store: Any) -> ConfiguredPortal:
        raise AssertionError("portals are set by the test")

    service = Service(Path("."), store, unused, holder=name, lease_ttl_s=TTL, clock=clock, monotonic=clock.monotonic)
    for i in range(portals):
        portal = SimpleNamespace(id=1000 + i, config=SimpleNamespace(portal=SimpleNamespace(name=f"p{i}")))
        service.portals[f"p{i}"] = Held(cast(ConfiguredPortal, portal), Path(f"p{i}.yaml"))
    return service


def held(service: Service) -> set[int]:
    return {h.portal.id for h in service.portals.values() if h.leased}


def rounds(services: list[Service], clock: ManualClock, n: int = 3) -> None:
    for _ in range(n):
        for service in services:
            service.keep_leases()
        clock.advance(TTL / 3)


def test_replicas_hold_the_portals_over_the_live_replicas_rounded_up_for_the_remainder() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    services = [replica(store, clock, f"r-{i}", 10) for i in range(3)]
    rounds(services, clock)
    counts = sorted(len(held(s)) for s in services)
    assert counts == [3, 3, 4]
    assert Counter(pid for s in services for pid in held(s)) == Counter(range(1000, 1010))  # each exactly once
    assert [s.health()["replicas"]["live"] for s in services] == [3, 3, 3]


def test_a_new_replica_takes_only_what_the_others_give_back() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    services = [replica(store, clock, f"r-{i}", 12) for i in range(3)]
    rounds(services, clock)
    before = {s.holder: held(s) for s in services}
    newcomer = replica(store, clock, "r-new", 12)
    rounds([*services, newcomer], clock, 2)  # two lease periods' worth of lease jobs, at most
    assert sorted(len(held(s)) for s in [*services, newcomer]) == [3, 3, 3, 3]
    for s in services:
        assert held(s) <= before[s.holder]  # nothing moved between the old replicas: they only gave back


def test_a_dead_replicas_portals_are_spread_over_the_survivors_once_its_leases_expire() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    a, b, c = (replica(store, clock, f"r-{i}", 9) for i in range(3))
    rounds([a, b, c], clock)
    assert [len(held(s)) for s in (a, b, c)] == [3, 3, 3]
    rounds([a, b], clock, 4)  # c stops heartbeating and renewing: one lease lifetime and a lease job later
    assert sorted(len(held(s)) for s in (a, b)) == [4, 5]
    assert held(a) | held(b) == set(range(1000, 1009)) and not held(a) & held(b)


def test_a_portal_given_back_mid_cycle_is_released_only_when_its_cycle_ends() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    first = replica(store, clock, "r-a", 2)
    rounds([first], clock, 1)
    assert len(held(first)) == 2
    # The portal it will give back (the least preferred) has a cycle running.
    busy = min((h for h in first.portals.values() if h.leased), key=first._preference)
    busy.lock.acquire()
    busy.running = threading.Event()
    second = replica(store, clock, "r-b", 2)
    second.keep_leases()  # announces itself
    first.keep_leases()  # now over its share of 1
    assert busy.releasing and busy.leased and busy.running.is_set()  # stop after the batch in flight; held till then
    second.keep_leases()
    assert held(second) == set()  # not free yet
    busy.lock.release()
    first._release(busy)  # what run_portal does when the cycle ends
    assert len(held(first)) == 1
    second.keep_leases()
    assert len(held(second)) == 1
