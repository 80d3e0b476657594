"""`leadsync sync`: one sync cycle for a portal now."""

from __future__ import annotations

import argparse
import json
import sys

from sync.cli.common import (
    _add_config_option,
    _add_db_option,
    _add_log_options,
    _count_contacts,
    _logging,
    _progress,
    _run_exit,
    _stop_on_signals,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sync_cmd = commands.add_parser(
        "sync",
        help="run one sync cycle for a portal now",
        description="Pull what changed in HubSpot, score the affected contacts and write what differs. "
        "The first run (or --full) backfills every contact and resumes where it stopped. "
        "SIGTERM or SIGINT (Ctrl-C) stops it after the batch in flight, or at once while a call waits to be "
        "retried; what was planned is kept and the next run finishes it, and the run is recorded as interrupted. "
        "Exit status: 0 ok, 1 failed, 2 config error, 3 portal paused (HubSpot refused the token), "
        "130 interrupted by SIGINT, 143 interrupted by SIGTERM.",
    )
    _add_config_option(sync_cmd)
    mode = sync_cmd.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="backfill every contact (resumable)")
    mode.add_argument("--rescore", action="store_true", help="rescore every stored contact (decay, time windows)")
    _add_db_option(sync_cmd)
    sync_cmd.add_argument("--json", action="store_true", help="print the run summary as JSON")
    _add_log_options(sync_cmd, "default: console on a terminal, else json")
    sync_cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sync.app import open_portal
    from sync.pipeline import Cycle, Kind
    from sync.store.state import SqlStateStore

    _logging(args)
    store = SqlStateStore(args.db)
    portal = open_portal(args.config, store)
    kind: Kind = "full" if args.full else "rescore" if args.rescore else "incremental"
    with _progress(f"{portal.config.portal.name}: {kind} sync", args.json) as bar:
        task = bar.add_task("contacts", total=None)
        cycle = Cycle(
            portal,
            kind,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            # A backfill (--full, or a first run) asks HubSpot for the count, only when there is a bar to show it.
            backfill_total=None if bar.disable else lambda: _count_contacts(portal.source),
        )
        with _stop_on_signals(cycle.stop) as caught:
            summary = cycle.run()
    store.close()
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
