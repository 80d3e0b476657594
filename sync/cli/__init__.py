"""The `leadsync` command: parse arguments, build what the command needs, call one function, print.

One module per command group, each with `add_parser(commands)` and `run(args)`; what they share is in
`sync.cli.common`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from sync import __version__
from sync.buildcheck import stale_core_modules
from sync.cli import backtest, dead_letters, demo, explain, plan, run, score, snapshot, suggest, train, validate
from sync.cli import sync as sync_command
from sync.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    _now,
)
from sync.errors import ConfigError, PausedError, SyncError, WrongPortalError

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_PAUSED",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadsync",
        description="Explainable lead scoring for HubSpot: score contacts with versioned YAML rules "
        "and write score, grade, reasons and lifecycle stage back.",
        epilog="Run 'leadsync COMMAND --help' for a command's options. Without a command, leadsync prints this "
        "help on stderr and exits 2.",
    )
    parser.add_argument("--version", action="version", version=f"leadsync {__version__}")
    # Not required: bare `leadsync` prints the whole help (argparse would print one line of usage).
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    # The order of `leadsync --help`.
    commands_in_order = (validate, score, explain, plan, snapshot, sync_command, dead_letters, run, demo, backtest)
    for group in (*commands_in_order, train, suggest):
        group.add_parser(commands)

    from sync.sandbox.cli import add_sandbox_command

    add_sandbox_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    stale = stale_core_modules()
    if stale:
        print(
            f"leadsync: the compiled scoring core is older than {', '.join(stale)}; "
            "rebuild it (make venv, or pip install -e .) so it runs the code you see",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        if getattr(args, "now", None) is not None:
            _now(args.now)
        return _run(args)
    except argparse.ArgumentTypeError as exc:
        _command_parser(parser, args.command).error(str(exc))
    return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    """The command; the errors it cannot go around, printed and turned into its exit status."""
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except WrongPortalError as exc:  # the token is another portal's: fix the file or the token
        print(f"leadsync {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PausedError as exc:  # HubSpot refused the token: nothing more can be read
        print(f"leadsync {args.command}: {exc}; {_token_hint(args)}", file=sys.stderr)
        return EXIT_PAUSED
    except SyncError as exc:  # HubSpot or the store failed in a way the command cannot go around
        print(f"leadsync {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_OK


def _token_hint(args: argparse.Namespace) -> str:
    """What to do about a token HubSpot refused, naming the variable the portal file reads it from."""
    where = "the variable the portal file's portal.token_env names"
    config = getattr(args, "config", None)
    if config:
        from sync.config import load_portal

        # The file loaded once already; should it fail now, the generic advice will do.
        with contextlib.suppress(SyncError):
            where = load_portal(config).config.portal.token_env
    return f"HubSpot refused the token: put a valid private app token (or service key) in {where}"


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one command: its usage line is the one to show with an error in its options."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices.get(command, parser)
            return found
    return parser
