"""`leadsync run`: the service, every portal on its schedule."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sync.cli.common import EXIT_CONFIG, _add_db_option, _add_log_options, _logging


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run the service: every portal on its schedule",
        description="Run the sync service for every portal file in a folder: an incremental sync on each portal's "
        "schedule.every, a nightly rescore on its schedule.rescore, health and metrics over HTTP. Replicas sharing a "
        "PostgreSQL store split the portals through leases, each its fair share (the portals over the live replicas); "
        "every lease has a fencing epoch, so a replica paused past its lease sends nothing when it wakes. "
        "SIGTERM finishes the batch in flight (a call waiting to be "
        "retried stops waiting; the run is recorded as interrupted) and exits 0; "
        "SIGHUP re-reads the portal files.",
    )
    parser.add_argument(
        "--config-dir", default="config/portals", metavar="DIR", help="portal YAML files (default: %(default)s)"
    )
    _add_db_option(parser)
    parser.add_argument(
        "--listen",
        default="127.0.0.1:9108",
        metavar="HOST:PORT",
        help="where to serve /healthz, /metrics and POST /webhooks/hubspot (for portal files with a webhooks: "
        "section), or off (default: %(default)s)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=45.0,
        metavar="S",
        help="portal lease lifetime in seconds (default: %(default)g)",
    )
    _add_log_options(parser, "default: console on a terminal, else json")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sync.store.replica import single_replica

    _logging(args)
    config_dir = Path(args.config_dir)
    if not config_dir.is_dir():
        print(f"leadsync run: no such folder: {config_dir}", file=sys.stderr)
        return EXIT_CONFIG
    with single_replica(args.db):
        return _serve(args, config_dir)


def _serve(args: argparse.Namespace, config_dir: Path) -> int:
    from sync.app import check_live, open_portal
    from sync.observability import Metrics, serve_http
    from sync.scheduler import Service
    from sync.store.state import SqlStateStore
    from sync.webhooks import PATH, Intake, settings_of

    store = SqlStateStore(args.db)
    metrics = Metrics()
    service = Service(
        config_dir, store, open_portal, metrics=metrics, lease_ttl_s=args.lease_ttl, live_check=check_live
    )
    # Webhooks come in on the --listen address, for the portals whose file has a `webhooks:` section.
    intake = Intake(
        lambda: {held.portal.id: held for held in service.portals.values()},
        lambda target: settings_of(target.portal.config),
        metrics=metrics,
    )
    service.stopping_hooks.append(intake.stop)
    host, _, port = args.listen.rpartition(":")
    server = (
        serve_http(host or "127.0.0.1", int(port), service.health, metrics, post={PATH: intake.handle})
        if args.listen != "off"
        else None
    )
    intake.start()
    try:
        return service.serve()
    finally:
        intake.stop()
        if server is not None:
            server.shutdown()
        store.close()
