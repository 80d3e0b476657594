"""Replicas share the portals fairly on PostgreSQL: 3 replicas hold 3 of 9 portals each; when one dies (its
heartbeats and renewals stop, nothing released) the survivors spread its portals, 4-5 each, within a lease's
lifetime; a new replica gets its share within two lease periods. Real Service objects, in this process."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sync.app import open_portal
from sync.scheduler import Service
from sync.store.state import SqlStateStore
from tests.e2e.test_service import portal_file, sandboxes, wait_for

TTL = 3.0
PORTALS = 9


class Replica:
    """One Service with its own store (engine and pool), serving on a thread of its own."""

    def __init__(self, folder: Path, url: str, name: str) -> None:
        self.store = SqlStateStore(url)
        self.service = Service(folder, self.store, open_portal, holder=name, lease_ttl_s=TTL, jitter_s=0)
        self.thread = threading.Thread(target=self.service.serve, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()

    def held(self) -> set[int]:
        return {h.portal.id for h in self.service.portals.values() if h.leased}

    def crash(self) -> None:
        """Stop heartbeating and renewing, release nothing: what a killed process leaves behind."""
        self.service.scheduler.pause()

    def close(self) -> None:
        self.service.stop.set()
        self.thread.join(60)
        self.store.close()


@contextmanager
def replicas(folder: Path, url: str, names: list[str]) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        started.extend(Replica(folder, url, name) for name in names)
        yield started
    finally:
        for replica in started:
            replica.close()


def spread(live: list[Replica]) -> dict[str, int] | None:
    """Each live replica's count, when every portal is held by exactly one of them (per the store, too)."""
    held = [r.held() for r in live]
    owners = Counter(pid for ids in held for pid in ids)
    rows = {row.portal_id: row.holder for row in live[0].store.leases() if row.expires_at.timestamp() > time.time()}
    names = {r.service.holder for r in live}
    if len(owners) != PORTALS or set(owners.values()) != {1} or set(rows.values()) - names or len(rows) != PORTALS:
        return None
    return {r.service.holder: len(ids) for r, ids in zip(live, held, strict=True)}


@pytest.mark.postgres
def test_three_replicas_share_nine_portals_and_rebalance_on_a_death_and_a_birth(
    tmp_path: Path, pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sandboxes(PORTALS, contacts=20) as boxes:
        monkeypatch.setenv("LEADSYNC_SERVICE_TOKEN", boxes[0].token)
        folder = tmp_path / "portals"
        folder.mkdir()
        for i, box in enumerate(boxes):
            portal_file(folder, f"p{i}", 7000 + i, box, every="1h")
        with replicas(folder, pg_schema_url, ["r-a", "r-b", "r-c"]) as (a, b, c):
            # 3 each, every portal held by exactly one replica.
            counts = wait_for(lambda: (s := spread([a, b, c])) and set(s.values()) == {3} and s, 8 * TTL, 0.05)
            assert counts == {"r-a": 3, "r-b": 3, "r-c": 3}

            # c dies: a and b spread its portals, 4-5 each, within a lease lifetime of its last renewal.
            c.crash()
            died = time.monotonic()
            counts = wait_for(lambda: spread([a, b]), 3 * TTL, 0.05)
            took = time.monotonic() - died
            assert sorted(counts.values()) == [4, 5]
            # The last renewal was at most a third of a ttl before the crash; then one ttl to expire; then each
            # survivor's lease job (every third of a ttl, the two not in step) takes its part: 5/3 ttl at worst.
            assert took <= TTL * 5 / 3 + 0.5, took

            # A new replica gets its share (9 over 3 live) within two lease periods of joining (its files loaded).
            with replicas(folder, pg_schema_url, ["r-d"]) as (d,):
                wait_for(lambda: len(d.service.portals) == PORTALS, 30, 0.05)
                born = time.monotonic()
                counts = wait_for(lambda: (s := spread([a, b, d])) and set(s.values()) == {3} and s, 3 * TTL, 0.05)
                assert counts == {"r-a": 3, "r-b": 3, "r-d": 3}
                assert time.monotonic() - born <= 2 * TTL
                health = d.service.health()["replicas"]
                assert health == {"live": 3, "share": 3, "held": 3}
