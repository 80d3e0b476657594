"""`leadsync explain`: one contact's score, rule by rule, and what a run would write."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from sync.config import LoadedPortal
    from sync.core.model import Contact, Event
    from sync.core.rules import RuleSet
    from sync.hubspot.portal import HubSpotPortal
    from sync.reports.accounts import Companies
    from sync.reports.dataset import Dataset


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    explain = commands.add_parser(
        "explain",
        help="one contact's (or company's) score, rule by rule, and what a run would write",
        description="Explain one contact: every rule, matched or not, with its points and detail (the events it "
        "counted and their ages, caps, decay), the exclusion and holdout verdict, the grade, the stage decision and "
        "why, what HubSpot holds now and what a run would write. Reads the live portal (the contact, then the "
        "portal's form submissions and email events: a large portal takes a while) or a snapshot. Writes nothing. "
        "With --company (and an accounts: section): the company's fit rules, its contacts one by one (interest, "
        "excluded or holdout, the contacts rules each matched), the roll-up, the total and the grade.",
        epilog="examples: leadsync explain --config C --contact 1234; "
        'leadsync explain --config C --contact jane@example.com --what-if "form:Demo request@+1d"',
    )
    _add_config_option(explain)
    who = explain.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", type=_contact_key, metavar="ID", help="contact id or email address")
    who.add_argument("--company", type=_company_key, metavar="ID", help="company id: its account score")
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
    if args.company:
        return _explain_company(args, loaded, rules, now)
    what = parse_what_if(args.what_if or [], now_ms)
    for name in sorted(set(what.properties) - rules.properties_read - {EMAIL, LIFECYCLE_STAGE}):
        print(f"leadsync explain: no rule reads {name}: setting it changes nothing", file=sys.stderr)
    contact, events, where = _load_contact(args, loaded, rules, now)
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


def _load_contact(
    args: argparse.Namespace, loaded: LoadedPortal, rules: RuleSet, now: datetime
) -> tuple[Contact | None, list[Event], str]:
    """The contact (with its primary company's properties), its events, and where it was looked for."""
    from rich.console import Console

    if args.snapshot:
        from sync.core.model import with_company
        from sync.reports.accounts import Companies

        data = _load_dataset(args, loaded, [rules], now)
        contact = data.contact(args.contact)
        if contact is None:
            return None, [], args.snapshot
        primary = Companies.of(data.companies, data.associations).primary(contact.id)
        return with_company(contact, primary), data.events_of(contact), args.snapshot
    from sync.reports.dataset import read_contact

    hub = _reader(loaded, rules, sorted(rules.company_properties_read))
    with Console(stderr=True).status(f"reading contact {args.contact} and its events from HubSpot ..."):
        contact, events, problems = read_contact(hub, args.contact, rules.list_ids, int(now.timestamp() * 1000))
        if contact is not None and rules.company_properties_read:
            contact = _with_live_company(hub, contact, problems)
    _report_problems(problems)
    return contact, events, f"portal {loaded.config.portal.name}"


def _reader(
    loaded: LoadedPortal, rules: RuleSet, company_properties: Sequence[str], contact_properties: Sequence[str] = ()
) -> HubSpotPortal:
    from sync.app import open_reader
    from sync.pipeline import read_properties

    contacts = sorted({*read_properties(rules), *contact_properties})
    return open_reader(loaded.config, contacts, company_properties)


def _with_live_company(hub: HubSpotPortal, contact: Contact, problems: list[str]) -> Contact:
    """The contact with its primary company's properties as HubSpot holds them now (two reads)."""
    from sync.core.model import with_company
    from sync.reports.accounts import Companies

    associations, bad = hub.company_associations([contact.id])
    problems.extend(bad)
    ids = sorted({a.company_id for a in associations})
    companies = Companies.of(hub.read_companies(ids) if ids else [], associations)
    problems.extend(companies.problems)
    return with_company(contact, companies.primary(contact.id))


def _explain_company(args: argparse.Namespace, loaded: LoadedPortal, rules: RuleSet, now: datetime) -> int:
    """`explain --company`: the company's account score, its contacts one by one."""
    from rich.console import Console

    from sync.core.accounts import compile_accounts, number_problems, numeric_company_reads
    from sync.core.model import with_company
    from sync.reports.accounts import Companies, company_order
    from sync.reports.explain import explain_company, print_company

    if loaded.accounts is None:
        print(f"leadsync explain: {args.config} has no accounts: section, so no company is scored", file=sys.stderr)
        return EXIT_FAILED
    if args.what_if:
        print("leadsync explain: --what-if applies to --contact only", file=sys.stderr)
        return EXIT_FAILED
    accounts = compile_accounts(loaded.accounts, rules)
    now_ms = int(now.timestamp() * 1000)
    if args.snapshot:
        data: Dataset | None = _load_dataset(args, loaded, [rules], now)
        where = args.snapshot
    else:
        from sync.reports.dataset import read_account

        outputs = loaded.accounts.properties
        wanted = {*rules.company_properties_read, *accounts.company_properties_read, "name"}
        wanted |= {outputs.score, outputs.fit, outputs.engagement, outputs.grade, outputs.reasons}
        hub = _reader(loaded, rules, sorted(wanted), sorted(accounts.contact_properties_read))
        with Console(stderr=True).status(f"reading company {args.company}, its contacts and their events ..."):
            data = read_account(hub, hub, args.company, rules.list_ids, now_ms)
        where = f"portal {loaded.config.portal.name}"
    companies = Companies.of(data.companies, data.associations) if data is not None else None
    company = companies.by_id.get(args.company) if companies is not None else None
    if data is None or companies is None or company is None:
        print(f"leadsync explain: no company {args.company} in {where}", file=sys.stderr)
        return EXIT_FAILED
    _report_problems(
        [
            *data.problems,
            *companies.problems,
            *number_problems([company], numeric_company_reads(rules, loaded.accounts)),
        ]
    )
    members = [
        (with_company(c, companies.primary(c.id)), data.events_of(c), _primary_id(companies, c.id))
        for c in sorted(data.contacts, key=lambda c: company_order(c.id))
        if args.company in companies.ids_of(c.id)
    ]
    ex = explain_company(company, members, rules, accounts, now_ms)
    if args.json:
        print(json.dumps(ex.json(), ensure_ascii=False, indent=2))
    else:
        print_company(ex, Console(width=None if sys.stdout.isatty() else 140))
    return EXIT_OK


def _primary_id(companies: Companies, contact_id: str) -> str | None:
    primary = companies.primary(contact_id)
    return primary.id if primary is not None else None


def _company_key(text: str) -> str:
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise argparse.ArgumentTypeError(f"a company id is a number, not {text!r}")
    return str(int(text.strip()))


def _contact_key(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a contact id or email address is needed")
    return text.strip()


def _what_if_help() -> str:
    from sync.reports.explain import WHAT_IF_HELP

    return WHAT_IF_HELP
