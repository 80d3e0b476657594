"""`leadsync backtest` and `leadsync report`: how well the scores pick out the contacts who converted."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sync.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    _add_config_option,
    _add_db_option,
    _add_from_store_option,
    _add_now_option,
    _int_at_least,
    _load_source,
    _now,
    _progress,
    _quiet_logging,
    _report_problems,
)

if TYPE_CHECKING:
    from sync.config import LoadedPortal
    from sync.reports.backtest import Backtest
    from sync.reports.dataset import Source
    from sync.reports.report import RunActivity


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backtest = commands.add_parser(
        "backtest",
        help="how well the scores pick out the contacts who converted",
        description="Score every contact of a snapshot as of --now and compare with an outcome read from its "
        "properties: conversion by score band and grade; precision, recall and lift at each lifecycle threshold; "
        "each rule's close rate; the holdout against the written contacts; warnings about thresholds set too low "
        "or too high. Excluded contacts are counted apart and left out of the metrics. A --now in the past "
        "ignores the events after it: the backtest as of that date. With an accounts: section, conversion by "
        "account band and grade too (a company converted when any of its counted contacts did).",
    )
    _add_config_option(backtest)
    source = backtest.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", metavar="S", help="a snapshot file (JSON, or JSON Lines read as a stream)")
    _add_from_store_option(backtest, source)
    _add_db_option(backtest)
    _add_backtest_options(backtest)
    backtest.add_argument("--json", action="store_true", help="the backtest as one JSON object")
    backtest.set_defaults(func=run)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report with charts",
        description="Write one HTML file (charts, styles and all: it opens offline) with headline numbers, the "
        "score distribution, the fit x engagement grade matrix, conversion by score band and the backtest's "
        "warnings, the stage transitions of the portal's last runs (from the state store) and the rules' "
        "contributions; with an accounts: section, conversion by account band and the account grade matrix. Reads "
        "the live portal (read-only) unless --snapshot or --from-store is given.",
    )
    _add_config_option(report)
    source = report.add_mutually_exclusive_group()
    source.add_argument("--snapshot", metavar="S", help="report on a snapshot file instead of the live portal")
    _add_from_store_option(report, source)
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write, e.g. report.html")
    _add_db_option(report)
    report.add_argument(
        "--runs", type=_int_at_least(1), default=10, metavar="N", help="recent runs to show (default: 10)"
    )
    _add_backtest_options(report)
    report.add_argument("--json", action="store_true", help="print the backtest and the file written as JSON")
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.command == "report":
        return cmd_report(args)
    return cmd_backtest(args)


def _backtest(args: argparse.Namespace, what: str) -> tuple[LoadedPortal, Source, Backtest]:
    """Load the config and the contacts, and back-test them: the shared first half of backtest and report."""
    from sync.cli.common import account_contact_reads, load_companies
    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.backtest import DEFAULT_OUTCOME, parse_outcome, run_backtest

    now = _now(args.now)
    outcome = parse_outcome(args.outcome or DEFAULT_OUTCOME)  # a typo fails before any contact is read
    loaded = load_portal(args.config)
    rules = compile_ruleset(loaded.rules)
    data = _load_source(args, loaded, [rules], now, [outcome.property, *account_contact_reads(loaded, rules)])
    companies = load_companies(args, loaded, rules, data)
    _report_problems(data.problems)
    shown = len(data.problems)
    with _progress(what, args.json) as bar:
        task = bar.add_task("contacts", total=data.count)
        result = run_backtest(
            data,
            rules,
            int(now.timestamp() * 1000),
            outcome,
            band_width=args.band_width,
            min_support=args.min_support,
            progress=lambda n: bar.update(task, completed=n),
            companies=companies,
        )
    _report_problems(data.problems[shown:])  # a streamed file's, found as it was read
    _report_problems(result.problems)
    return loaded, data, result


def cmd_backtest(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.reports.backtest_render import print_backtest

    _, data, result = _backtest(args, "backtest")
    if args.json:
        print(json.dumps({"source": data.source, **result.json()}, ensure_ascii=False, indent=2))
    else:
        print_backtest(result, Console(width=None if sys.stdout.isatty() else 140), data.source)
    return EXIT_OK


def _recent_runs(args: argparse.Namespace, portal_id: int, name: str) -> tuple[list[RunActivity] | None, str]:
    """The portal's last runs from the state store, or None and why there are none to show."""
    import sqlalchemy as sa

    from sync.reports.report import run_activity
    from sync.store.schema import database_url
    from sync.store.state import SqlStateStore

    url = database_url(args.db)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        # Opening it would create an empty store: say where we looked instead.
        return None, f"No state store at {url.database}, so there are no runs to show (pass --db URL)."
    try:
        store = SqlStateStore(args.db)
    except sa.exc.SQLAlchemyError as exc:
        print(f"leadsync report: cannot open the state store: {exc}", file=sys.stderr)
        return None, "The state store could not be read, so there are no runs to show."
    try:
        runs = run_activity(store, portal_id, args.runs)
    finally:
        store.close()
    return runs, "" if runs else f"The state store has no runs for portal {name} ({portal_id}) yet."


def cmd_report(args: argparse.Namespace) -> int:
    from sync.reports.report import ReportInputs, render_report

    _quiet_logging()
    loaded, data, result = _backtest(args, "report")
    portal = loaded.config.portal
    runs, note = _recent_runs(args, portal.id, portal.name)
    page = render_report(result, ReportInputs(portal.name, data.source, runs, note, data.problems))
    out = Path(args.out)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"leadsync report: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"out": str(out), "bytes": len(page.encode()), "source": data.source, **result.json()}))
    else:
        print(f"{out}: report of {result.contacts} contacts ({len(result.warnings)} warnings), {len(page) // 1024} KB")
    return EXIT_OK


def _add_backtest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outcome",
        metavar="PROPERTY=V1|V2",
        help="a contact converted when this property holds one of these values "
        "(default: lifecyclestage=opportunity|customer)",
    )
    _add_now_option(parser)
    parser.add_argument(
        "--band-width", type=_int_at_least(1), default=10, metavar="N", help="score band width (default: 10)"
    )
    parser.add_argument(
        "--min-support",
        type=_int_at_least(1),
        default=30,
        metavar="N",
        help="rules matched by fewer contacts are listed but not ranked (default: 30)",
    )
