"""`leadsync snapshot`: save the live portal to a snapshot file (read-only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sync.cli.common import EXIT_OK, _add_config_option, _load_dataset, _now, _quiet_logging, _report_problems


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    snapshot = commands.add_parser(
        "snapshot",
        help="save the live portal to a snapshot file (read-only)",
        description="Read every contact (the properties the rules read), form submission, email event and list "
        "membership of the live portal (and its companies and their associations when the file reads companies), "
        "read-only, and save them as one snapshot file in HubSpot's shapes: what "
        "score, explain, plan, backtest and report take with --snapshot.",
    )
    _add_config_option(snapshot)
    snapshot.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="snapshot file to write: JSON Lines when it ends in .jsonl (read in bounded memory), else one JSON "
        "document",
    )
    snapshot.add_argument("--now", metavar="T", help="read email events up to this ISO 8601 time (default: now)")
    snapshot.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sync.cli.common import account_contact_reads, load_companies
    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.dataset import snapshot_json
    from sync.snapshot.lines import write_document

    _quiet_logging()
    now = _now(args.now)
    loaded = load_portal(args.config)
    args.snapshot = None  # this command reads the live portal
    rules = compile_ruleset(loaded.rules)
    data = _load_dataset(args, loaded, [rules], now, account_contact_reads(loaded, rules))
    load_companies(args, loaded, rules, data)  # when a rule reads a company, or the file scores accounts
    _report_problems(data.problems)
    raw = snapshot_json(data)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")  # a reader never sees half a file
    with tmp.open("w", encoding="utf-8") as stream:
        if out.suffix == ".jsonl":
            write_document(raw, stream)  # each contact with its events: read back in the memory of one
        else:
            json.dump(raw, stream, ensure_ascii=False)
    tmp.replace(out)
    print(
        f"{out}: {len(raw['contacts'])} contacts, {len(raw['form_submissions'])} form submissions, "
        f"{len(raw['email_events'])} email events, {len(raw['companies'])} companies of portal "
        f"{loaded.config.portal.name} "
        f"({data.api_calls} API calls)",
        file=sys.stderr,
    )
    return EXIT_OK
