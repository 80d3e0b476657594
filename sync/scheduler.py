"""The service (`leadsync run`): every portal file in a folder, synced on its schedule.

- One interval job per portal (its `schedule.every`, with jitter) and one nightly rescore
  (its cron, in its time zone); max_instances=1 and coalescing, so a slow run is never doubled.
- Replicas share portals through expiring leases in the state store: a lease job renews the
  leases this replica holds and takes free or expired ones, so a dead replica's portals are
  taken over within a lease's lifetime. A portal runs only on the replica holding its lease.
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
import os
import signal
import socket
import threading
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
from sync.pipeline import Cycle, Kind
from sync.ports import Clock, StateStore, SystemClock
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
                held.lock = old.lock
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
        """Renew what we hold, take what is free; a newly taken portal syncs at once."""
        for name, held in list(self.portals.items()):
            had = held.leased
            try:
                held.leased = self.store.acquire_lease(held.portal.id, self.holder, self.lease_ttl_s)
            except Exception as exc:  # a store hiccup must not kill the lease job
                self.log.warning("lease_error", portal=name, error=str(exc))
                continue
            if held.leased and not had:
                self.log.info("lease_acquired", portal=name)
                self.metrics.leased.labels(portal=name).set(1)
                self.scheduler.add_job(
                    self.run_portal, args=[name, "incremental"], id=f"{name}:takeover", replace_existing=True
                )
            elif had and not held.leased:
                self.log.warning("lease_lost", portal=name)
                self.metrics.leased.labels(portal=name).set(0)
                if held.running is not None:
                    held.running.set()  # another replica owns it now: stop after the batch in flight

    def _release(self, held: Held) -> None:
        if held.leased:
            self.store.release_lease(held.portal.id, self.holder)
            held.leased = False
            name = held.portal.config.portal.name
            self.metrics.leased.labels(portal=name).set(0)
            self.log.info("lease_released", portal=name)

    # -- running --

    def run_portal(self, name: str, kind: Kind) -> None:
        """One cycle of one portal: the job boundary, where any failure is recorded and contained."""
        held = self.portals.get(name)
        if held is None or not held.leased or self.stop.is_set():
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
            if not held.leased:
                return
            summary = Cycle(portal, kind, stop=stop).run()
            self.metrics.record(name, kind, summary.status, summary.counts, portal.api_calls, portal.headroom())
        except Exception as exc:  # the job boundary: a failing portal never stops the others
            self.metrics.record(name, kind, "failed", {}, portal.api_calls)
            self.log.exception("run_crashed", portal=name, kind=kind, error=f"{type(exc).__name__}: {exc}")
        finally:
            held.running = None
            held.lock.release()

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
        self.load()
        self.scheduler.add_job(
            self.keep_leases,
            IntervalTrigger(seconds=max(1.0, self.lease_ttl_s / 3)),
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
            "portals": portals,
            "broken": [b.as_dict() for b in broken],
        }
