"""`leadsync score`: score a portal snapshot offline."""

from __future__ import annotations

import argparse
import json
import sys

from sync.cli.common import EXIT_OK, _add_config_option, _add_now_option, _now, _track


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    score = commands.add_parser(
        "score",
        help="score a portal snapshot offline",
        description="Score every contact of a portal snapshot (one JSON file in HubSpot's shapes) offline "
        "and print one result per contact. Bad records are reported on stderr and skipped.",
    )
    _add_config_option(score)
    score.add_argument("--snapshot", required=True, metavar="S", help="snapshot JSON file")
    _add_now_option(score)
    score.add_argument("--contact", action="append", metavar="ID", help="only this contact (repeatable)")
    score_out = score.add_mutually_exclusive_group()
    score_out.add_argument(
        "--json", action="store_true", help="one JSON document: portal, rule-set version, time and every result"
    )
    score_out.add_argument("--jsonl", action="store_true", help="one JSON object per contact per line, as scored")
    score.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.core.scoring import score
    from sync.reports.scores import print_table, result_json
    from sync.snapshot import read_snapshot

    now = _now(args.now)
    portal = load_portal(args.config)
    rules = compile_ruleset(portal.rules)
    snapshot = read_snapshot(args.snapshot, portal.config.forms.types)
    if snapshot.portal_id is not None and snapshot.portal_id != portal.config.portal.id:
        print(
            f"{args.snapshot}: warning: a snapshot of portal {snapshot.portal_id}, scored with the config "
            f"of portal {portal.config.portal.id}",
            file=sys.stderr,
        )
    for problem in snapshot.problems:
        print(f"{args.snapshot}: {problem}", file=sys.stderr)
    inputs = list(snapshot.scoring_inputs())
    if args.contact:
        wanted = set(args.contact)
        inputs = [(c, e) for c, e in inputs if c.id in wanted]
        for missing in wanted - {c.id for c, _ in inputs}:
            print(f"{args.snapshot}: no contact {missing}", file=sys.stderr)
    quiet = args.json or args.jsonl or not sys.stderr.isatty()
    results = (score(contact, events, rules, now) for contact, events in _track(inputs, "scoring", quiet))
    if args.json:
        document = {
            "portal": {"name": portal.config.portal.name, "id": portal.config.portal.id},
            "version": rules.version,
            "now": now.isoformat(),
            "results": [result_json(result) for result in results],
        }
        print(json.dumps(document, ensure_ascii=False))
    elif args.jsonl:
        for result in results:
            print(json.dumps(result_json(result), ensure_ascii=False))
    else:
        console = Console(width=max(Console().width, 160) if not sys.stdout.isatty() else None)
        count = print_table(results, console)
        console.print(f"{count} contacts scored with rule-set version {rules.version} as of {now.isoformat()}")
    if snapshot.problems or snapshot.unattached_events:
        print(
            f"{len(snapshot.problems)} records skipped, {snapshot.unattached_events} events matched no contact",
            file=sys.stderr,
        )
    return EXIT_OK
