"""`leadsync dead-letters`: list, retry or drop the writes HubSpot refused."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sync.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_OK,
    _add_config_option,
    _add_db_option,
    _int_at_least,
    _quiet_logging,
    _run_exit,
    _stop_on_signals,
)
from sync.reports.text import iso

if TYPE_CHECKING:
    from sync.ports import DeadLetterRecord
    from sync.store.state import SqlStateStore


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    letters = commands.add_parser(
        "dead-letters",
        help="list, retry or drop the writes HubSpot refused",
        description="Writes HubSpot refused are kept as dead letters with the reason (and, for a known cause, "
        "what to fix). Every sync cycle retries the due ones from the contact's data at that time, 15 minutes "
        "after the refusal, then 30 min, 1 h ... at most a day apart, and gives a letter up after 8 refused "
        "retries. list: the open, retrying and given-up letters (--all: closed ones too). retry: make the letters "
        "due and run a sync cycle now (exit 1 unless every one is resolved). drop: never retry them (kept for "
        "the audit). Exit status 2 for a letter that is not there or is closed already.",
    )
    letters.add_argument("action", choices=["list", "retry", "drop"], help="what to do")
    _add_config_option(letters)
    _add_db_option(letters)
    letters.add_argument("--id", type=_int_at_least(1), nargs="+", metavar="N", help="only these letters")
    letters.add_argument("--all", action="store_true", help="every open letter (list: closed ones too)")
    letters.add_argument("--json", action="store_true", help="the letters as one JSON document")
    letters.set_defaults(func=run)


DEAD_LETTER_ACTIVE = ("open", "retrying", "given_up")


def run(args: argparse.Namespace) -> int:
    from sync.config import load_portal
    from sync.store.state import SqlStateStore

    loaded = load_portal(args.config)
    portal = loaded.config.portal
    store = SqlStateStore(args.db)
    try:
        if args.action == "list":
            states = None if args.all or args.id else DEAD_LETTER_ACTIVE
            letters = store.dead_letter_records(portal.id, ids=args.id, states=states)
            _print_dead_letters(portal.name, letters, args.json)
            return EXIT_OK
        if not args.id and not args.all:
            print(f"leadsync dead-letters {args.action}: name the letters (--id N ...) or pass --all", file=sys.stderr)
            return EXIT_CONFIG
        chosen = store.dead_letter_records(portal.id, ids=args.id, states=None if args.id else DEAD_LETTER_ACTIVE)
        missing = sorted(set(args.id or ()) - {d.id for d in chosen})
        closed = [d for d in chosen if d.state not in DEAD_LETTER_ACTIVE]
        if missing or closed:
            for letter_id in missing:
                print(f"leadsync dead-letters: portal {portal.name} has no dead letter {letter_id}", file=sys.stderr)
            for letter in closed:
                print(f"leadsync dead-letters: letter {letter.id} is {letter.state} already", file=sys.stderr)
            return EXIT_CONFIG
        ids = [d.id for d in chosen]
        if args.action == "drop":
            dropped = store.drop_dead_letters(portal.id, ids)
            _print_dead_letters(portal.name, store.dead_letter_records(portal.id, ids=dropped), args.json)
            return EXIT_OK
        return _retry_dead_letters(args, store, ids)
    finally:
        store.close()


def _retry_dead_letters(args: argparse.Namespace, store: SqlStateStore, ids: list[int]) -> int:
    """Make the letters due and run a sync cycle now: it retries them as every cycle retries due letters."""
    from sync.app import open_portal
    from sync.pipeline import Cycle

    _quiet_logging()
    portal = open_portal(args.config, store)
    store.make_dead_letters_due(portal.id, ids)
    cycle = Cycle(portal, "incremental")
    with _stop_on_signals(cycle.stop) as caught:
        summary = cycle.run()
    letters = store.dead_letter_records(portal.id, ids=ids)
    _print_dead_letters(portal.config.portal.name, letters, args.json, run=summary.run_id)
    if summary.status != "ok":
        print(f"leadsync dead-letters retry: the run {summary.run_id} {summary.status}", file=sys.stderr)
        if summary.error:
            print(f"  {summary.error}", file=sys.stderr)
    code = _run_exit(summary, caught)
    return EXIT_FAILED if code == EXIT_OK and not all(d.state == "resolved" for d in letters) else code


def _print_dead_letters(
    portal: str, letters: Sequence[DeadLetterRecord], as_json: bool, run: str | None = None
) -> None:
    def when(moment: datetime | None) -> str | None:
        return iso(moment) if moment is not None else None

    if as_json:
        rows = [
            {
                "id": d.id,
                "contact_id": d.contact_id,
                "properties": dict(d.properties),
                "reason": d.reason,
                "status_code": d.status,
                "state": d.state,
                "attempts": d.attempts,
                "recorded_at": when(d.recorded_at),
                "next_attempt_at": when(d.next_attempt_at) if d.state == "open" else None,
                "closed_at": when(d.closed_at),
                "note": d.note,
            }
            for d in letters
        ]
        print(json.dumps({"portal": portal, **({"run_id": run} if run else {}), "dead_letters": rows}))
        return
    if not letters:
        print(f"{portal}: no dead letters")
        return
    for d in letters:
        due = (
            f"next attempt {iso(d.next_attempt_at) if d.next_attempt_at else 'now'}"
            if d.state == "open"
            else d.note or ""
        )
        print(f"#{d.id} contact {d.contact_id}: {d.state}, {d.attempts} retries refused, {due}".rstrip(", "))
        props = ", ".join(f"{k}={v}" for k, v in sorted(d.properties.items()))
        print(f"    properties: {props or '-'}")
        print(f"    reason (HTTP {d.status or '-'}): {d.reason}")
