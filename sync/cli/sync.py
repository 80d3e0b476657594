"""`leadsync sync`: one sync cycle for a portal now."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sync.cli.common import (
    EXIT_FAILED,
    _add_config_option,
    _add_db_option,
    _add_log_options,
    _count_contacts,
    _logging,
    _progress,
    _run_exit,
    _stop_on_signals,
)

if TYPE_CHECKING:
    from sync.pipeline import Kind, Lease, Portal
    from sync.ports import StateStore

LEASE_TTL_S = 60.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync_cmd = commands.add_parser(
        "sync",
        help="run one sync cycle for a portal now",
        description="Pull what changed in HubSpot, score the affected contacts and write what differs. "
        "The first run (or --full) backfills every contact and resumes where it stopped. "
        "SIGTERM or SIGINT (Ctrl-C) stops it after the batch in flight, or at once while a call waits to be "
        "retried; what was planned is kept and the next run finishes it, and the run is recorded as interrupted. "
        "The run holds the portal's lease, as a service replica does, so a service and a one-off sync never both "
        "write a portal: while a replica holds it, sync refuses (exit 1) and writes nothing. "
        "Exit status: 0 ok, 1 failed (or the portal is leased to a service replica, or the lease was lost), "
        "2 config error, 3 portal paused (HubSpot refused the token), "
        "130 interrupted by SIGINT, 143 interrupted by SIGTERM.",
    )
    _add_config_option(sync_cmd)
    mode = sync_cmd.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="backfill every contact (resumable)")
    mode.add_argument("--rescore", action="store_true", help="rescore every stored contact (decay, time windows)")
    _add_db_option(sync_cmd)
    sync_cmd.add_argument(
        "--lease-ttl",
        type=float,
        default=LEASE_TTL_S,
        metavar="S",
        help="the portal lease's lifetime in seconds, renewed while the run lasts (default: %(default)g)",
    )
    sync_cmd.add_argument("--json", action="store_true", help="print the run summary as JSON")
    _add_log_options(sync_cmd, "default: console on a terminal, else json")
    sync_cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sync.app import open_portal
    from sync.store.state import SqlStateStore

    _logging(args)
    store = SqlStateStore(args.db)
    portal = open_portal(args.config, store)
    kind: Kind = "full" if args.full else "rescore" if args.rescore else "incremental"
    stop = threading.Event()
    try:
        with _portal_lease(store, portal.id, args.lease_ttl, stop) as lease:
            if lease is None:
                return _leased_elsewhere(args, portal.config.portal.name, portal.id)
            return _sync(args, portal, kind, stop, lease)
    finally:
        store.close()


def _sync(args: argparse.Namespace, portal: Portal, kind: Kind, stop: threading.Event, lease: Lease) -> int:
    from sync.pipeline import Cycle

    with _progress(f"{portal.config.portal.name}: {kind} sync", args.json) as bar:
        task = bar.add_task("contacts", total=None)
        cycle = Cycle(
            portal,
            kind,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            # A backfill (--full, or a first run) asks HubSpot for the count, only when there is a bar to show it.
            backfill_total=None if bar.disable else lambda: _count_contacts(portal.source),
            stop=stop,
            lease=lease,
        )
        with _stop_on_signals(cycle.stop) as caught:
            summary = cycle.run()
    # The stage moves are always named, 0 when none: a reader need not know which counts a run may omit.
    counts = {"promotions": 0, "demotions": 0, "stages_held_back": 0, **summary.counts}
    name, pid, version = portal.config.portal.name, portal.config.portal.id, portal.rules.version
    if args.json:
        print(
            json.dumps(
                {
                    "portal": {"name": name, "id": pid},
                    "version": version,
                    "run_id": summary.run_id,
                    "kind": kind,
                    "status": summary.status,
                    "error": summary.error,
                    **counts,
                }
            )
        )
    else:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(
            f"{name} (portal {pid}): {kind} sync {summary.status} (run {summary.run_id}, rule-set version "
            f"{version}): {listed}"
        )
        if summary.error:
            print(f"  {summary.error}", file=sys.stderr)
    return _run_exit(summary, caught)


@contextlib.contextmanager
def _portal_lease(store: StateStore, portal_id: int, ttl_s: float, stop: threading.Event) -> Iterator[Lease | None]:
    """The portal's lease for this run (None while a service replica holds it), renewed on a thread until the run
    ends, then released. The holder is this host's `sync`: a new sync takes a new epoch, so the lease of one that
    crashed never blocks it, and an earlier one still running is fenced out. A renewal that finds the lease gone
    stops the run after the batch in flight (it ends as lease_lost)."""
    from sync.pipeline import Lease

    holder = f"sync@{socket.gethostname()}"
    asked = time.monotonic()
    fence = store.acquire_fence(portal_id, holder, ttl_s, new_epoch=True)
    if fence is None:
        yield None
        return
    lease = Lease.taken(fence, ttl_s, asked)
    done = threading.Event()

    def keep() -> None:
        while not done.wait(ttl_s / 3):
            asked = time.monotonic()
            try:
                again = store.acquire_fence(portal_id, holder, ttl_s)
            except Exception:  # a store hiccup: the lease's local bound runs out if it lasts
                continue
            if again is None or again.epoch != fence.epoch:
                stop.set()
                return
            lease.renewed(asked)

    keeper = threading.Thread(target=keep, name="sync-lease", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        done.set()
        keeper.join()
        with contextlib.suppress(Exception):  # unreleased, it expires within the ttl
            store.release_lease(portal_id, holder, epoch=fence.epoch)


def _leased_elsewhere(args: argparse.Namespace, name: str, pid: int) -> int:
    error = (
        f"portal {name} ({pid}) is leased to a leadsync service replica right now: nothing was synced; "
        "the service syncs it on its schedule (stop the service first to sync it by hand)"
    )
    if args.json:
        print(json.dumps({"portal": {"name": name, "id": pid}, "status": "leased", "error": error}))
    else:
        print(f"leadsync sync: {error}", file=sys.stderr)
    return EXIT_FAILED
