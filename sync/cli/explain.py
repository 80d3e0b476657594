"""`leadsync explain`: one contact's score, rule by rule, and what a run would write."""

from __future__ import annotations

import argparse
import json
import sys

from sync.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    _add_config_option,
    _add_now_option,
    _add_owners_option,
    _load_dataset,
    _now,
    _quiet_logging,
    _report_problems,
    _written_stages,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser(
        "explain",
        help="one contact's score, rule by rule, and what a run would write",
        description="Explain one contact: every rule, matched or not, with its points and detail (the events it "
        "counted and their ages, caps, decay), the exclusion and holdout verdict, the grade, the stage decision and "
        "why, what HubSpot holds now and what a run would write. Reads the live portal (the contact, then the "
        "portal's form submissions and email events: a large portal takes a while) or a snapshot. Writes nothing.",
        epilog="examples: leadsync explain --config C --contact 1234; "
        'leadsync explain --config C --contact jane@example.com --what-if "form:Demo request@+1d"',
    )
    _add_config_option(explain)
    explain.add_argument(
        "--contact", required=True, type=_contact_key, metavar="ID", help="contact id or email address"
    )
    explain.add_argument("--snapshot", metavar="S", help="explain from a snapshot file instead of the live portal")
    _add_now_option(explain)
    explain.add_argument("--what-if", action="append", metavar="SPEC", help=_what_if_help())
    _add_owners_option(explain)
    explain.add_argument("--json", action="store_true", help="the explanation as one JSON object")
    explain.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.core.wire import EMAIL, LIFECYCLE_STAGE
    from sync.reports.explain import explain, parse_what_if, print_explanation, print_what_if, what_if_json

    _quiet_logging()
    now = _now(args.now)
    now_ms = int(now.timestamp() * 1000)
    loaded = load_portal(args.config)
    rules = compile_ruleset(loaded.rules)
    what = parse_what_if(args.what_if or [], now_ms)
    for name in sorted(set(what.properties) - rules.properties_read - {EMAIL, LIFECYCLE_STAGE}):
        print(f"leadsync explain: no rule reads {name}: setting it changes nothing", file=sys.stderr)
    if args.snapshot:
        data = _load_dataset(args, loaded, [rules], now)
        contact = data.contact(args.contact)
        events = data.events_of(contact) if contact is not None else []
        where = args.snapshot
    else:
        from sync.app import open_reader
        from sync.pipeline import read_properties
        from sync.reports.dataset import read_contact

        hub = open_reader(loaded.config, read_properties(rules))
        with Console(stderr=True).status(f"reading contact {args.contact} and its events from HubSpot ..."):
            contact, events, problems = read_contact(hub, args.contact, rules.list_ids, now_ms)
        _report_problems(problems)
        where = f"portal {loaded.config.portal.name}"
    if contact is None:
        print(f"leadsync explain: no contact {args.contact} in {where}", file=sys.stderr)
        return EXIT_FAILED
    owners = _written_stages(args, loaded.config.portal.id, [contact.id])
    written, known = (owners or {}).get(contact.id), owners is not None
    real = explain(contact, events, rules, now_ms, written_stage=written, ownership_known=known)
    hypo = None
    if what.labels:
        changed, more, at_ms = what.apply(contact, events, now_ms)
        if what.events and not changed.email:
            print(
                f"leadsync explain: contact {contact.id} has no email address; events reach contacts by email, "
                "so the hypothetical events are left out",
                file=sys.stderr,
            )
        hypo = explain(changed, more, rules, at_ms, written_stage=written, ownership_known=known)
    if args.json:
        out = real.json() if hypo is None else what_if_json(real, hypo, what.labels)
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return EXIT_OK
    console = Console(width=None if sys.stdout.isatty() else 140)
    print_explanation(real, console)
    if hypo is not None:
        print_what_if(real, hypo, what.labels, console)
    return EXIT_OK


def _contact_key(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a contact id or email address is needed")
    return text.strip()


def _what_if_help() -> str:
    from sync.reports.explain import WHAT_IF_HELP

    return WHAT_IF_HELP
