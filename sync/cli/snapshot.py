"""`leadsync snapshot`: save the live portal to a snapshot file (read-only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sync.cli.common import (
    EXIT_OK,
    _add_config_option,
    _load_dataset,
    _now,
    _quiet_logging,
    _report_problems,
    _stream_portal,
)


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
    from sync.reports.dataset import snapshot_json, write_portal_lines
    from sync.snapshot.lines import SECTIONS

    _quiet_logging()
    now = _now(args.now)
    loaded = load_portal(args.config)
    args.snapshot = None  # this command reads the live portal
    rules = compile_ruleset(loaded.rules)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")  # a reader never sees half a file
    reads = account_contact_reads(loaded, rules)
    if out.suffix == ".jsonl":
        # Written as the contacts are read, each with its events (kept on disk meanwhile): bounded memory, and
        # read back in the memory of one contact.
        stream = _stream_portal(args, loaded, [rules], now, reads)
        load_companies(args, loaded, rules, stream)  # when a rule reads a company, or the file scores accounts
        _report_problems(stream.problems)
        shown = len(stream.problems)
        try:
            with tmp.open("w", encoding="utf-8") as file:
                counts = write_portal_lines(stream, file)
        finally:
            stream.close()
        _report_problems(stream.problems[shown:])
        calls = stream.api_calls
    else:
        data = _load_dataset(args, loaded, [rules], now, reads)
        load_companies(args, loaded, rules, data)
        _report_problems(data.problems)
        raw = snapshot_json(data)
        with tmp.open("w", encoding="utf-8") as file:
            json.dump(raw, file, ensure_ascii=False)
        counts = {kind: len(raw[section]) for kind, section in SECTIONS.items()}
        calls = data.api_calls
    tmp.replace(out)
    print(
        f"{out}: {counts['contact']} contacts, {counts['form_submission']} form submissions, "
        f"{counts['email_event']} email events, {counts['company']} companies of portal "
        f"{loaded.config.portal.name} "
        f"({calls} API calls)",
        file=sys.stderr,
    )
    return EXIT_OK
