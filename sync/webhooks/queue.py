"""The intake queue: contacts waiting for the fast path, coalesced per (portal, contact), in bounded memory.

A contact pending once is enough: however many events name it, it is read, scored and written once. Each portal's
contacts wait about a second (HubSpot sends a burst of changes as several deliveries) or until a batch is full,
then are taken a batch at a time. Past `capacity` contacts pending, a new one is dropped and counted: the
safety-net poll finds it (it reads what changed since its cursor, webhooks or not).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

BATCH = 100  # one batch read and one batch write
CAPACITY = 10_000
WINDOW_S = 1.0
MAX_CHECKS = 8  # property values kept per contact to compare with what leadsync wrote


@dataclass
class Pending:
    """Why a contact waits: `must` (created, or a change that needs a rescore whatever leadsync wrote), and the
    changes to compare with the values leadsync wrote last (a change back to its own value is its own write)."""

    since: float
    must: bool = False
    checks: dict[str, str] = field(default_factory=dict)

    def merge(self, must: bool, check: tuple[str, str] | None) -> None:
        self.must = self.must or must
        if check is not None and not self.must:
            if len(self.checks) < MAX_CHECKS or check[0] in self.checks:
                self.checks[check[0]] = check[1]
            else:
                self.must = True  # too many to compare: rescore, which writes only what differs


class IntakeQueue:
    def __init__(
        self,
        capacity: int = CAPACITY,
        window_s: float = WINDOW_S,
        batch: int = BATCH,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.window_s = window_s
        self.batch = batch
        self.monotonic = monotonic
        self._portals: dict[int, OrderedDict[str, Pending]] = {}
        self._size = 0
        self.dropped = 0  # contacts refused for want of room (left to the poll)
        self._ready = threading.Condition()

    def __len__(self) -> int:
        with self._ready:
            return self._size

    def put(self, portal_id: int, contact_id: str, must: bool, check: tuple[str, str] | None = None) -> bool:
        """Queue a contact (or fold the event into its pending entry); False when dropped for want of room."""
        with self._ready:
            waiting = self._portals.setdefault(portal_id, OrderedDict())
            pending = waiting.get(contact_id)
            if pending is None:
                if self._size >= self.capacity:
                    self.dropped += 1
                    if not waiting:
                        del self._portals[portal_id]
                    return False
                pending = waiting[contact_id] = Pending(self.monotonic())
                self._size += 1
            pending.merge(must, check)
            if len(waiting) >= self.batch or len(waiting) == 1:
                self._ready.notify_all()
            return True

    def put_back(self, portal_id: int, items: list[tuple[str, Pending]]) -> int:
        """Return taken contacts (their portal was busy); those no longer fitting are dropped. Returns how many."""
        kept = 0
        for contact_id, pending in items:
            if self.put(portal_id, contact_id, pending.must):
                for name, value in pending.checks.items():
                    self.put(portal_id, contact_id, False, (name, value))
                kept += 1
        return kept

    def due(self, busy: set[int] | frozenset[int] = frozenset()) -> tuple[list[int], float | None]:
        """The portals (not in `busy`) whose contacts are due now, and the seconds until the next one is."""
        with self._ready:
            return self._due(busy)

    def _due(self, busy: set[int] | frozenset[int]) -> tuple[list[int], float | None]:
        now = self.monotonic()
        ready: list[int] = []
        wait: float | None = None
        for portal_id, waiting in self._portals.items():
            if portal_id in busy or not waiting:
                continue
            oldest = next(iter(waiting.values())).since
            left = oldest + self.window_s - now
            if left <= 0 or len(waiting) >= self.batch:
                ready.append(portal_id)
            else:
                wait = left if wait is None else min(wait, left)
        return ready, wait

    def wait(self, timeout: float, busy: set[int] | frozenset[int] = frozenset()) -> list[int]:
        """Wait up to `timeout` for a portal to be due; the portals due."""
        deadline = self.monotonic() + timeout
        with self._ready:
            while True:
                ready, left = self._due(busy)
                remaining = deadline - self.monotonic()
                if ready or remaining <= 0:
                    return ready
                self._ready.wait(min(remaining, left) if left is not None else remaining)

    def take(self, portal_id: int) -> list[tuple[str, Pending]]:
        """Up to a batch of the portal's contacts, oldest first."""
        with self._ready:
            waiting = self._portals.get(portal_id)
            if not waiting:
                return []
            taken = [waiting.popitem(last=False) for _ in range(min(self.batch, len(waiting)))]
            self._size -= len(taken)
            if not waiting:
                del self._portals[portal_id]
            return taken

    def discard(self, portal_id: int) -> int:
        """Forget a portal's contacts (its lease went elsewhere): how many were pending."""
        with self._ready:
            waiting = self._portals.pop(portal_id, None)
            n = len(waiting) if waiting else 0
            self._size -= n
            return n

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()
