"""`leadsync plan`: a dry run, what a sync would change, written nowhere."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sync.cli.common import (
    EXIT_OK,
    _add_config_option,
    _add_from_store_option,
    _add_now_option,
    _add_owners_option,
    _int_at_least,
    _load_source,
    _now,
    _progress,
    _quiet_logging,
    _report_problems,
    _written_stages,
    account_contact_reads,
    inputs_with_written_stages,
    load_companies,
)
from sync.errors import WrongPortalError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sync.core.model import Contact, Event
    from sync.reports.dataset import Source


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plan = commands.add_parser(
        "plan",
        help="dry run: what a sync would change, written nowhere",
        description="Score every contact of the live portal (or a snapshot, or the state store) and show what a "
        "full sync would "
        "write: how many contacts change score, grade and stage, the stage transition matrix, threshold "
        "crossings, the API calls the run would make and the top changed contacts. Nothing is written. "
        "With --base-config or --against-version the comparison is between two configs on the same contacts: "
        "what a rule change does before it is merged. With an accounts: section, the companies' account scores "
        "follow the contacts: how many change, the batch updates and the top changed companies.",
    )
    _add_config_option(plan)
    base = plan.add_mutually_exclusive_group()
    base.add_argument("--base-config", metavar="OLD", help="compare with this config instead of HubSpot's values")
    base.add_argument(
        "--against-version",
        metavar="REV",
        help="compare with the config (and its bases) as committed at this git revision, e.g. main or HEAD~1",
    )
    source = plan.add_mutually_exclusive_group()
    source.add_argument("--snapshot", metavar="S", help="plan on a snapshot file instead of the live portal")
    _add_from_store_option(plan, source)
    _add_now_option(plan)
    plan.add_argument(
        "--top",
        type=_int_at_least(0),
        default=20,
        metavar="N",
        help="changed contacts (and companies) to list (default: 20)",
    )
    _add_owners_option(plan)
    plan.add_argument("--json", action="store_true", help="the whole plan as one JSON object (for CI)")
    plan.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.dataset import Dataset
    from sync.reports.plan import Acceptance, acceptance, build_plan, print_plan, properties_setup_calls
    from sync.reports.revision import load_at_revision

    _quiet_logging()
    now = _now(args.now)
    loaded = load_portal(args.config)
    rules = compile_ruleset(loaded.rules)
    accepts: Acceptance | None = None
    checks = 0  # the calls of the identity and property checks: reads too
    live = not args.snapshot and not args.from_store
    if live:
        from sync.app import open_reader

        # The same refusal as a sync: a plan of another portal's contacts would mislead.
        hub = open_reader(loaded.config, [])
        actual = hub.account_portal_id()
        if actual != loaded.config.portal.id:
            raise WrongPortalError(actual, loaded.config.portal.id)
        accepts = acceptance(rules, hub.property_definitions())
        checks = sum(hub.client.calls.values())
    base = base_label = base_accounts = None
    if args.base_config or args.against_version:
        old = load_portal(args.base_config) if args.base_config else load_at_revision(args.config, args.against_version)
        base, base_accounts = compile_ruleset(old.rules), old.accounts
        where = args.base_config or f"{args.config} at {args.against_version}"
        base_label = f"{where} (version {base.version})"
    data = _load_source(
        args, loaded, [rules] if base is None else [rules, base], now, account_contact_reads(loaded, rules)
    )
    companies = load_companies(args, loaded, rules, data, base_accounts)
    _report_problems(data.problems)
    shown = len(data.problems)
    inputs: Iterable[tuple[Contact, list[Event]]] | Source = data
    owners = None
    if isinstance(data, Dataset):
        owners = _written_stages(args, loaded.config.portal.id, [c.id for c in data.contacts])
    elif args.db or args.from_store:
        owners = {}  # filled a page of contacts at a time, as they are read
        inputs = inputs_with_written_stages(args, loaded.config.portal.id, data.inputs(), owners)
    with _progress("planning", args.json) as bar:
        task = bar.add_task("contacts", total=data.count)
        report = build_plan(
            inputs,
            rules,
            int(now.timestamp() * 1000),
            source=data.source,
            base=base,
            base_label=base_label or "",
            progress=lambda n: bar.update(task, completed=n),
            written_stages=owners,
            accepts=accepts,
            companies=companies,
        )
    _report_problems(data.problems[shown:])
    _report_problems(report.problems)
    report.calls = {
        "reads": data.api_calls + checks,
        "property_checks": properties_setup_calls(rules),
        **report.calls,
    }
    report.calls["total"] = sum(report.calls.values())
    if args.json:
        # Often kept as a CI artifact: emails only where the portal allows them in logs.
        report.write_json(sys.stdout, args.top, loaded.config.log_emails)
        print()
    else:
        print_plan(report, Console(width=None if sys.stdout.isatty() else 160), args.top, live=live)
    return EXIT_OK
