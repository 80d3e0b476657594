"""The service (`leadsync run`): every portal file in a folder, synced on its schedule.

- One interval job per portal (its `schedule.every`, with jitter) and one nightly rescore
  (its cron, in its time zone); max_instances=1 and coalescing, so a slow run is never doubled.
- Replicas share portals through expiring leases in the state store, each its fair share: a
  lease job heartbeats this replica (the replicas table), renews the leases it holds, gives
  back what is over its share (after the batch in flight) and takes free or expired ones up to
  it. The share is the portals over the live replicas, rounded up for as many replicas as the
  remainder (those holding most keep the extra one), down for the others; which portals to
  give back or take is a rendezvous hash of portal and replica, so the same ones stay put. A
  new replica gets its share within two lease periods; a dead one's portals are spread over
  the survivors once its leases expire. A portal runs only on the replica holding its lease.
- Every lease carries a fencing epoch: a run holds its fence (portal, holder, epoch) and the
  pipeline checks it before the run starts, before every batch is sent and in the transaction
  that records it, so a replica paused past its lease (a freeze, SIGSTOP) sends and records
  nothing once it wakes: its run ends as lease_lost.
- A portal that fails is recorded and logged; the others go on. SIGTERM finishes the batch in
  flight (cycles check the stop flag after each batch, and checkpoint), then exits 0. SIGHUP
  re-reads the portal files.
- A portal file that does not load, for whatever reason, is reported (a `config_error` event, the
  gauge leadsync_portal_config_errors{file} at 1, an entry under `broken` in /healthz, whose status
  becomes "degraded") and the other portals run. A reload that breaks a file whose portal was
  running stops that portal (after the batch in flight) and releases its lease: the service never
  keeps running rules the file no longer says; it runs again once the file is fixed and reloaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.app import ConfiguredPortal
from sync.config import parse_duration, portal_files, portal_name
from sync.errors import ConfigError
from sync.live import Finding
from sync.observability import Metrics
from sync.pipeline import Cycle, Kind, Lease
from sync.ports import Clock, LeaseRow, StateStore, SystemClock
from sync.reports.text import iso

log = structlog.get_logger("leadsync.service")

LEASE_TTL_S = 45.0


@dataclass
class Held:
    portal: ConfiguredPortal
    file: Path
    lock: threading.Lock = field(default_factory=threading.Lock)  # one cycle at a time per portal
    leased: bool = False
    running: threading.Event | None = None  # the stop flag of the cycle in flight
    lease: Lease | None = None  # while leased: the fence and local bound its runs are checked against
    releasing: bool = False  # over the fair share: given back once the cycle in flight ends


@dataclass(frozen=True)
class Broken:
    """A portal file that did not load: reported in the logs, the metrics and /healthz until it does."""

    file: Path
    portal: str | None  # the portal's name, when the file gets far enough to give it
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "portal": self.portal, "error": self.error}


class Service:
    def __init__(
        self,
        config_dir: Path,
        store: StateStore,
        open_portal: Callable[[Path, StateStore], ConfiguredPortal],
        *,
        metrics: Metrics | None = None,
        holder: str | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
        jitter_s: float = 30.0,
        workers: int = 4,
        live_check: Callable[[ConfiguredPortal], Sequence[Finding]] | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config_dir = config_dir
        self.store = store
        self.open_portal = open_portal
        self.metrics = metrics or Metrics()
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_ttl_s = lease_ttl_s
        self.jitter_s = jitter_s
        self.live_check = live_check
        self.clock: Clock = clock if clock is not None else SystemClock()  # the time /healthz reports
        self.monotonic = monotonic  # the local bound of a lease: a pause past it stops every send
        self.live: list[str] = [self.holder]  # the live replicas at the last heartbeat
        self.share = 0  # the most portals this replica may hold, at the last lease job
        self.stop = threading.Event()
        self.reload = threading.Event()
        self.portals: dict[str, Held] = {}
        self.broken: dict[Path, Broken] = {}
        self.files: list[Path] = []  # the portal files of the last load
        # A load publishes the portals and the broken files together: /healthz never sees one without the other.
        self.published = threading.Lock()
        # Leases renew on a thread of their own: busy cycles must never delay a renewal past its expiry.
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers), "leases": ThreadPoolExecutor(1)}, timezone=UTC
        )
        self.log = log.bind(holder=self.holder)
        # Called once a stop is asked, before the leases are released (the webhook intake stops its fast runs).
        self.stopping_hooks: list[Callable[[], None]] = []

    # -- portals --

    def load(self) -> None:
        """(Re)read every portal file; a broken file is reported and skipped, the others run."""
        found: dict[str, Held] = {}
        broken: dict[Path, Broken] = {}
        files = portal_files(self.config_dir)
        for file in files:
            try:
                portal = self.open_portal(file, self.store)
            except Exception as exc:  # whatever stops one file from loading, the others still run
                broken[file] = self._report_broken(file, exc)
                continue
            name = portal.config.portal.name
            twin = next(
                (h for h in found.values() if h.portal.config.portal.name == name or h.portal.id == portal.id), None
            )
            if twin is not None:  # one portal, one file: two would sync it twice (or one would vanish)
                problem = (
                    f"portal {name} (id {portal.id}) is already defined by {twin.file}: "
                    "each portal needs a name and an id of its own; this file is skipped"
                )
                self.log.error("config_error", file=str(file), portal=name, problem=problem)
                broken[file] = Broken(file, name, problem)
                continue
            old = self.portals.get(name)
            held = Held(portal, file, leased=bool(old and old.leased))
            if old is not None:
                held.lock, held.lease, held.releasing = old.lock, old.lease, old.releasing
            found[name] = held
        for name in set(self.portals) - set(found):
            gone = self.portals[name]
            if gone.running is not None:
                gone.running.set()  # its file is gone or broken: stop after the batch in flight
            self._release(gone)
        self._report_config_errors(files, broken)
        with self.published:
            self.portals, self.files, self.broken = found, files, broken
        self._schedule()
        self.log.info("portals_loaded", portals=sorted(found), files=len(found), broken=sorted(str(f) for f in broken))

    def _report_broken(self, file: Path, exc: Exception) -> Broken:
        problems = [str(p) for p in exc.problems] if isinstance(exc, ConfigError) else [f"{type(exc).__name__}: {exc}"]
        # The name, when the file gives one; else the portal this file ran before it broke, if any.
        name = portal_name(file) or next((n for n, h in self.portals.items() if h.file == file), None)
        for problem in problems:
            self.log.error("config_error", file=str(file), portal=name, problem=problem[:2000])
        return Broken(file, name, "\n".join(problems)[:2000])

    def _report_config_errors(self, files: list[Path], broken: dict[Path, Broken]) -> None:
        """The gauge per portal file: 1 while it does not load, 0 once it does; gone with the file."""
        for file in files:
            self.metrics.config_errors.labels(file=str(file)).set(1 if file in broken else 0)
        for file in set(self.files) - set(files):
            self.metrics.config_errors.remove(str(file))

    def _schedule(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id != "leases":
                job.remove()
        for name, held in self.portals.items():
            sched = held.portal.config.schedule
            every = parse_duration(sched.every) or 900
            self.scheduler.add_job(
                self.run_portal,
                IntervalTrigger(seconds=every, jitter=min(self.jitter_s, every / 4)),
                args=[name, "incremental"],
                id=f"{name}:sync",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=every,
            )
            if sched.rescore:
                self.scheduler.add_job(
                    self.run_portal,
                    CronTrigger.from_crontab(sched.rescore, timezone=ZoneInfo(sched.timezone)),
                    args=[name, "rescore"],
                    id=f"{name}:rescore",
                    max_instances=1,
                    coalesce=True,
                    misfire_grace_time=3600,
                )

    # -- leases --

    def keep_leases(self) -> None:
        """Heartbeat, renew what we hold, give back what is over our fair share (after the batch in flight) and
        take free portals up to it; a newly taken portal syncs at once."""
        asked_at = self.monotonic()  # before asking: the local bound of a renewal errs on the short side
        try:
            self.live = self.store.heartbeat(self.holder, self.lease_ttl_s)
        except Exception as exc:  # a store hiccup must not kill the lease job
            self.log.warning("heartbeat_error", error=str(exc))
        self._renew_all(asked_at)
        try:
            rows = self.store.leases()
        except Exception as exc:
            self.log.warning("lease_error", error=str(exc))
            return
        self.share = self._fair_share(rows)
        mine = sorted((h for h in self.portals.values() if h.leased and not h.releasing), key=self._preference)
        for held in mine[: max(0, len(mine) - self.share)]:  # the least preferred go back first
            self._give_back(held)
        if len(mine) < self.share:
            self._take(rows, self.share - len(mine), asked_at)
        held_now = sum(1 for h in self.portals.values() if h.leased)
        self.metrics.replicas_live.set(len(self.live))
        self.metrics.portals_held.set(held_now)
        self.metrics.portal_share.set(self.share)

    def _renew_all(self, asked_at: float) -> None:
        """Renew every lease held in one statement; one that did not renew (expired, or moved on) is asked about
        alone, and lost (or taken again, under a new epoch)."""
        held = {h.portal.id: (name, h) for name, h in list(self.portals.items()) if h.leased}
        if not held:
            return
        try:
            renewed = self.store.renew_leases(self.holder, list(held), self.lease_ttl_s)
        except Exception as exc:  # a store hiccup must not kill the lease job; the local bounds run out meanwhile
            self.log.warning("lease_error", error=str(exc))
            return
        for pid, (name, h) in held.items():
            if h.lease is not None and renewed.get(pid) == h.lease.fence.epoch:
                h.lease.renewed(asked_at)
            else:
                self._renew(name, h, asked_at)

    def _renew(self, name: str, held: Held, asked_at: float) -> None:
        try:
            fence = self.store.acquire_fence(held.portal.id, self.holder, self.lease_ttl_s)
        except Exception as exc:  # a store hiccup must not kill the lease job; the local bound runs out meanwhile
            self.log.warning("lease_error", portal=name, error=str(exc))
            return
        if fence is not None and held.lease is not None and fence.epoch == held.lease.fence.epoch:
            held.lease.renewed(asked_at)
            return
        self._lost(name, held)
        if fence is not None:  # it had expired and we took it again: a new epoch, for new runs only
            self._acquired(name, held, Lease.taken(fence, self.lease_ttl_s, asked_at, self.monotonic))

    def _fair_share(self, rows: Sequence[LeaseRow]) -> int:
        """The most portals this replica may hold: the portals over the live replicas, rounded up for as many
        replicas as the remainder (those holding most now, so nothing moves that need not), down for the rest."""
        live = self.live if self.holder in self.live else sorted([*self.live, self.holder])
        base, extra = divmod(len(self.portals), len(live))
        if extra == 0:
            return base
        now = self.clock.now()
        ours = {h.portal.id for h in self.portals.values()}
        counts = dict.fromkeys(live, 0)
        for row in rows:
            if row.holder in counts and row.portal_id in ours and row.expires_at >= now:
                counts[row.holder] += 1
        counts[self.holder] = sum(1 for h in self.portals.values() if h.leased and not h.releasing)
        ranked = sorted(live, key=lambda h: (-counts[h], h))
        return base + 1 if self.holder in ranked[:extra] else base

    def _preference(self, held: Held) -> int:
        """Rendezvous hashing: how much this replica wants this portal (the same on every replica, for every
        replica), so the portals that move when the share changes are few and always the same ones."""
        digest = hashlib.blake2b(f"{held.portal.id}:{self.holder}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _take(self, rows: Sequence[LeaseRow], wanted: int, asked_at: float) -> None:
        now = self.clock.now()
        busy = {row.portal_id for row in rows if row.expires_at >= now and row.holder != self.holder}
        free = [h for h in self.portals.values() if not h.leased and h.portal.id not in busy]
        for held in sorted(free, key=self._preference, reverse=True):
            if wanted <= 0:
                return
            name = held.portal.config.portal.name
            try:
                fence = self.store.acquire_fence(held.portal.id, self.holder, self.lease_ttl_s)
            except Exception as exc:  # a store hiccup must not kill the lease job
                self.log.warning("lease_error", portal=name, error=str(exc))
                continue
            if fence is not None:
                self._acquired(name, held, Lease.taken(fence, self.lease_ttl_s, asked_at, self.monotonic))
                wanted -= 1

    def _acquired(self, name: str, held: Held, lease: Lease) -> None:
        held.leased, held.lease, held.releasing = True, lease, False
        self.log.info("lease_acquired", portal=name, epoch=lease.fence.epoch)
        self.metrics.leased.labels(portal=name).set(1)
        # Whenever a worker is free: a takeover run waiting behind busy workers must not be dropped as missed.
        self.scheduler.add_job(
            self.run_portal,
            args=[name, "incremental"],
            id=f"{name}:takeover",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def _lost(self, name: str, held: Held) -> None:
        held.leased, held.lease, held.releasing = False, None, False
        self.log.warning("lease_lost", portal=name)
        self.metrics.leased.labels(portal=name).set(0)
        if held.running is not None:
            held.running.set()  # another replica owns it now: stop after the batch in flight

    def _give_back(self, held: Held) -> None:
        """Over the fair share: release the portal now if it is idle, else once its cycle ends (run_portal)."""
        held.releasing = True
        self.log.info("lease_giving_back", portal=held.portal.config.portal.name, share=self.share)
        if held.lock.acquire(blocking=False):
            try:
                self._release(held)
            finally:
                held.lock.release()
        elif held.running is not None:
            held.running.set()  # stop after the batch in flight; run_portal releases it then

    def _release(self, held: Held) -> None:
        held.releasing = False
        if held.leased:
            held.leased, held.lease = False, None
            self.store.release_lease(held.portal.id, self.holder)
            name = held.portal.config.portal.name
            self.metrics.leased.labels(portal=name).set(0)
            self.log.info("lease_released", portal=name)

    # -- running --

    def run_portal(self, name: str, kind: Kind) -> None:
        """One cycle of one portal: the job boundary, where any failure is recorded and contained."""
        held = self.portals.get(name)
        if held is None or not held.leased or held.releasing or self.stop.is_set():
            return
        # A rescore waits for a running incremental (it must not be dropped for the night); an incremental
        # that finds a cycle running is skipped, the next one comes soon.
        # (An incremental waits a little for a webhook fast run, which holds the lock for one batch at a time.)
        if not held.lock.acquire(timeout=3600 if kind == "rescore" else 15):
            return
        portal = held.portal  # the object this cycle runs with, even if a reload replaces it meanwhile
        stop = threading.Event()
        held.running = stop
        if self.live_check is not None and portal.live_check is None:
            portal.live_check = functools.partial(self._live, name, held)
        try:
            if not held.leased or held.releasing or held.lease is None:
                return
            summary = Cycle(portal, kind, stop=stop, lease=held.lease).run()
            self.metrics.record(name, kind, summary.status, summary.counts, portal.api_calls, portal.headroom())
        except Exception as exc:  # the job boundary: a failing portal never stops the others
            self.metrics.record(name, kind, "failed", {}, portal.api_calls)
            self.log.exception("run_crashed", portal=name, kind=kind, error=f"{type(exc).__name__}: {exc}")
        finally:
            held.running = None
            if held.releasing:
                self._release_quietly(held)
            held.lock.release()

    def _release_quietly(self, held: Held) -> None:
        try:
            self._release(held)
        except Exception as exc:  # the lease then expires on its own
            self.log.warning("lease_error", portal=held.portal.config.portal.name, error=str(exc))

    def _live(self, name: str, held: Held) -> str:
        """The live check of a portal file (once per Portal object, from its first cycle): findings are logged;
        the errors returned pause the portal."""
        assert self.live_check is not None
        findings = self.live_check(held.portal)
        for f in findings:
            emit = self.log.error if f.level == "error" else self.log.warning
            emit("live_check", portal=name, file=str(held.file), finding=f.level, field=f.field, message=f.message)
        return "; ".join(f"{f.field}: {f.message}" for f in findings if f.level == "error")

    def serve(self, poll_s: float = 0.5, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
            signal.signal(signal.SIGINT, lambda *_: self.stop.set())
            signal.signal(signal.SIGHUP, lambda *_: self.reload.set())
        # Announce this replica before the portal files load (which takes a while with many): replicas starting
        # together then count each other from their first lease job, and none takes every portal meanwhile.
        try:
            self.live = self.store.heartbeat(self.holder, self.lease_ttl_s)
        except Exception as exc:  # a store hiccup: the lease job heartbeats again soon
            self.log.warning("heartbeat_error", error=str(exc))
        self.load()
        self.scheduler.add_job(
            self.keep_leases,
            IntervalTrigger(seconds=max(0.5, self.lease_ttl_s / 3)),
            id="leases",
            max_instances=1,
            executor="leases",
        )
        self.scheduler.start()
        self.keep_leases()
        self.log.info("service_started", portals=sorted(self.portals))
        while not self.stop.wait(poll_s):
            if self.reload.is_set():
                self.reload.clear()
                self.log.info("reloading")
                self.load()
                self.keep_leases()
        self.log.info("service_stopping")
        for hook in self.stopping_hooks:
            hook()
        for held in self.portals.values():
            if held.running is not None:
                held.running.set()
        self.scheduler.shutdown(wait=True)  # running cycles stop after the batch in flight
        for held in self.portals.values():
            self._release(held)
        self.store.leave(self.holder)  # the others take this replica's share now, not once its heartbeat expires
        self.log.info("service_stopped")
        return 0

    def health(self) -> dict[str, Any]:
        now = self.clock.now().timestamp()
        with self.published:
            held_now, broken = dict(self.portals), list(self.broken.values())
        portals = {}
        for name, held in held_now.items():
            runs = self.store.last_runs(held.portal.id, 1)
            last = runs[0] if runs else None
            portals[name] = {
                "leased_here": held.leased,
                "paused": last.error if last is not None and last.status == "paused" else None,
                "last_run": None if last is None else {"status": last.status, "started_at": iso(last.started_at)},
            }
        # Degraded, not down: the other portals run, so a probe must not restart the service for one bad file.
        status = "stopping" if self.stop.is_set() else "degraded" if broken else "ok"
        return {
            "status": status,
            "holder": self.holder,
            "time": now,
            "replicas": {
                "live": len(self.live),
                "share": self.share,
                "held": sum(1 for h in held_now.values() if h.leased),
            },
            "portals": portals,
            "broken": [b.as_dict() for b in broken],
        }
