"""`leadsync demo`: sync a synthetic sandbox portal and show what was written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sync.cli.common import EXIT_FAILED, EXIT_OK, _add_log_options, _logging


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="sync a synthetic sandbox portal and show what was written",
        description="Start the local HubSpot sandbox with a synthetic portal, run a real full sync against it "
        "(SQLite state in a temporary folder) and show what leadsync wrote.",
    )
    demo.add_argument(
        "--config",
        default="config/portals/example.yaml",
        metavar="C",
        help="portal config to use (default: %(default)s)",
    )
    demo.add_argument("--contacts", type=int, default=2000, metavar="N", help="portal size (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=1, help="synthetic portal seed (default: %(default)s)")
    _add_log_options(demo, "show the sync's log events too")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.demo import run_demo

    if args.log_format is None:  # the demo shows its table; the sync's events only when asked for
        args.log_format, args.log_level = "console", args.log_level or "error"
    _logging(args)
    summary = run_demo(Path(args.config), args.contacts, args.seed, Console(width=None if sys.stdout.isatty() else 150))
    return EXIT_OK if summary.status == "ok" else EXIT_FAILED
