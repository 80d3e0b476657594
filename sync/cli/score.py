"""`leadsync score`: score a portal snapshot offline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sync.cli.common import (
    EXIT_OK,
    _add_config_option,
    _add_db_option,
    _add_from_store_option,
    _add_now_option,
    _now,
    _track,
)
from sync.reports.text import count as plural
from sync.reports.text import iso

if TYPE_CHECKING:
    from sync.config import LoadedPortal
    from sync.core.model import AccountResult, Company, CompanyAssociation, Contact, Event, ScoreResult
    from sync.core.rules import RuleSet
    from sync.reports.dataset import StoreStream
    from sync.snapshot import Snapshot
    from sync.snapshot.lines import SnapshotStream


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    score = commands.add_parser(
        "score",
        help="score a portal snapshot offline",
        description="Score every contact of a portal snapshot (one JSON file in HubSpot's shapes), or of the "
        "state store (--from-store), offline and print one result per contact; with an accounts: section, then "
        "one per company. Bad records are reported on stderr and skipped.",
    )
    _add_config_option(score)
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--snapshot", metavar="S", help="a snapshot file (JSON, or JSON Lines read as a stream)")
    _add_from_store_option(score, source)
    _add_db_option(score)
    _add_now_option(score)
    score.add_argument("--contact", action="append", metavar="ID", help="only this contact (repeatable)")
    score_out = score.add_mutually_exclusive_group()
    score_out.add_argument(
        "--json",
        action="store_true",
        help="one JSON document: portal, rule-set version, time, every result (and companies with accounts:)",
    )
    score_out.add_argument(
        "--jsonl",
        action="store_true",
        help="one JSON object per contact per line, as scored (then one per company with accounts:)",
    )
    score.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sync.config import load_portal
    from sync.core.rules import compile_ruleset

    now = _now(args.now)
    portal = load_portal(args.config)
    rules = compile_ruleset(portal.rules)
    from sync.reports.dataset import StoreStream

    snapshot = _open(args, portal, rules)
    where = snapshot.source if isinstance(snapshot, StoreStream) else args.snapshot
    if snapshot.portal_id is not None and snapshot.portal_id != portal.config.portal.id:
        print(
            f"{args.snapshot}: warning: a snapshot of portal {snapshot.portal_id}, scored with the config "
            f"of portal {portal.config.portal.id}",
            file=sys.stderr,
        )
    scoring = _Scoring(portal, rules, snapshot.companies, snapshot.associations, now)
    if isinstance(snapshot, StoreStream):  # each page's associations, before its contacts are scored
        snapshot.on_associations = lambda page: snapshot.problems.extend(scoring.companies.extend(page))
    for problem in [*snapshot.problems, *scoring.problems]:
        print(f"{where}: {problem}", file=sys.stderr)
    if scoring.accounts is not None and not snapshot.companies:
        # Otherwise the accounts part is an empty table and "0 companies scored", with nothing saying why.
        print(
            f"{args.snapshot}: no companies, so no account is scored: `leadsync snapshot` saves a portal's "
            "companies and their associations when the portal file has an accounts: section "
            "(`leadsync sandbox --companies N` serves a synthetic portal with companies)",
            file=sys.stderr,
        )
    reported = len(snapshot.problems)
    quiet = args.json or args.jsonl or not sys.stderr.isatty()
    seen = _Seen(set(args.contact) if args.contact else None)
    results = _results(snapshot, scoring, seen, quiet)
    if args.json:
        _print_json(portal, rules.version, now, results, scoring)
    elif args.jsonl:
        _print_jsonl(results, scoring)
    else:
        _print_tables(rules.version, now, results, scoring)
    _report_after(where, snapshot, reported, scoring, seen)
    return EXIT_OK


def _report_after(
    where: str, snapshot: Snapshot | SnapshotStream | StoreStream, reported: int, scoring: _Scoring, seen: _Seen
) -> None:
    """What was found as the contacts were read and scored, on stderr."""
    for problem in snapshot.problems[reported:]:  # a streamed file's, found as it was read
        print(f"{where}: {problem}", file=sys.stderr)
    for failure in scoring.failures:
        print(f"{where}: {failure}", file=sys.stderr)
    for missing in sorted((seen.wanted or set()) - seen.ids):
        print(f"{where}: no contact {missing}", file=sys.stderr)
    if snapshot.problems or snapshot.unattached_events or scoring.failures:
        print(
            f"{len(snapshot.problems)} records skipped, {snapshot.unattached_events} events matched no contact, "
            f"{plural(len(scoring.failures), 'contact')} could not be scored",
            file=sys.stderr,
        )


def _results(
    snapshot: Snapshot | SnapshotStream | StoreStream, scoring: _Scoring, seen: _Seen, quiet: bool
) -> Iterator[ScoreResult]:
    """The results to show, in order, scored as the contacts are read."""
    from sync.snapshot.lines import SnapshotStream

    if isinstance(snapshot, SnapshotStream) and scoring.accounts is None:
        # On every core for a large file: the workers score what they read, and send back only the results.
        scored = _track(snapshot.results(scoring.scorer(seen.wanted)), snapshot.count, "scoring", quiet)
        return (result for contact_id, out in scored if (result := scoring.taken(contact_id, out, seen)) is not None)
    inputs = seen.inputs(snapshot.inputs(), only=scoring.accounts is None)
    return scoring.results(_track(inputs, snapshot.count, "scoring", quiet), seen.wanted)


def _open(args: argparse.Namespace, portal: LoadedPortal, rules: RuleSet) -> Snapshot | SnapshotStream | StoreStream:
    """The snapshot (streamed when it is JSON Lines, else read whole), or the state store's contacts (a page at
    a time, with the stored companies when a rule reads them)."""
    from sync.reports.dataset import StoreStream
    from sync.snapshot import read_snapshot
    from sync.snapshot.lines import SnapshotStream, is_lines

    if args.from_store:
        from sync.cli.common import _open_store
        from sync.reports.accounts import company_reads
        from sync.store.schema import database_url

        label = database_url(args.db).render_as_string(hide_password=True)
        stream = StoreStream(_open_store(args), portal.config.portal.id, label)
        if company_reads(rules, portal.accounts):
            stream.add_companies()
        return stream
    form_types = portal.config.forms.types
    file = args.snapshot
    return SnapshotStream(file, form_types) if is_lines(file) else read_snapshot(file, form_types)


class _Seen:
    """Which of the `wanted` contacts (`--contact`) went by; None wants them all."""

    def __init__(self, wanted: set[str] | None) -> None:
        self.wanted = wanted
        self.ids: set[str] = set()

    def shows(self, contact_id: str) -> bool:
        """Whether the contact is one to show (and it is noted as seen)."""
        if self.wanted is None:
            return True
        if contact_id in self.wanted:
            self.ids.add(contact_id)
            return True
        return False

    def inputs(
        self, inputs: Iterable[tuple[Contact, list[Event]]], *, only: bool
    ) -> Iterator[tuple[Contact, list[Event]]]:
        """The contacts, noting the wanted ones; with `only`, just those (when no roll-up needs the others)."""
        for contact, events in inputs:
            if self.shows(contact.id) or not only:
                yield contact, events


class _Scoring:
    """Each contact given its primary company's properties and scored, and (with `accounts:`) counted in the
    roll-up of each of its companies, in the same pass."""

    def __init__(
        self,
        portal: LoadedPortal,
        rules: RuleSet,
        companies: Sequence[Company],
        associations: Sequence[CompanyAssociation],
        now: datetime,
    ) -> None:
        from sync.core.accounts import number_problems, numeric_company_reads
        from sync.reports.accounts import AccountPass, Companies

        self.rules, self.now = rules, now
        self.now_ms = int(now.timestamp() * 1000)
        self.companies = Companies.of(companies, associations)
        self.problems = [
            *self.companies.problems,
            *number_problems(companies, numeric_company_reads(rules, portal.accounts)),
        ]
        self.accounts = (
            AccountPass.build(portal.accounts, rules, self.companies) if portal.accounts is not None else None
        )
        self.shown_companies: set[str] | None = None
        self.failures: list[str] = []  # the contacts whose scoring raised, as "contact ID: Type: message"

    def scorer(self, wanted: set[str] | None) -> Callable[[Contact, list[Event]], ScoreResult | str | None]:
        """What is done with each contact (pure: a worker may do it): its result, given its primary company's
        properties; None for one not `wanted` (None wants all); a failure's text, reported, the rest scored."""

        def work(contact: Contact, events: list[Event]) -> ScoreResult | str | None:
            if wanted is not None and contact.id not in wanted:
                return None
            return self._score(self._attached(contact), events)

        return work

    def taken(self, contact_id: str, out: ScoreResult | str | None, seen: _Seen) -> ScoreResult | None:
        """A contact's result to show, if it has one (a failure noted, a contact not wanted left out)."""
        if out is None or not seen.shows(contact_id):
            return None
        if isinstance(out, str):
            self.failures.append(out)
            return None
        return out

    def _attached(self, contact: Contact) -> Contact:
        """The contact given its primary company's properties."""
        from sync.core.model import with_company

        return with_company(contact, self.companies.primary(contact.id))

    def _score(self, contact: Contact, events: list[Event]) -> ScoreResult | str:
        from sync.core.scoring import score_at

        try:
            return score_at(contact, events, self.rules, self.now_ms)
        except Exception as exc:  # a broken contact is reported, never stops the others
            return f"contact {contact.id}: {type(exc).__name__}: {exc}"

    def results(self, inputs: Iterable[tuple[Contact, list[Event]]], shown: set[str] | None) -> Iterator[ScoreResult]:
        """Every contact's result, in order, each counted in the roll-up; with `shown`, only those contacts'
        results are given (the roll-up still counts all)."""
        if shown is not None:
            self.shown_companies = {k for cid in shown for k in self.companies.ids_of(cid)}
        for bare, events in inputs:
            contact = self._attached(bare)
            result = self._score(contact, events)
            if isinstance(result, str):
                self.failures.append(result)
                continue
            if self.accounts is not None:
                self.accounts.add(contact, result, events, self.now_ms)
            if shown is None or contact.id in shown:
                yield result

    def company_results(self) -> list[AccountResult]:
        """Every company's result, once every contact was scored."""
        if self.accounts is None:
            return []
        return list(self.accounts.results(self.now_ms, self.shown_companies))


def _print_json(
    portal: LoadedPortal, version: str, now: datetime, results: Iterable[ScoreResult], scoring: _Scoring
) -> None:
    from sync.reports.accounts import account_json
    from sync.reports.scores import result_json
    from sync.reports.spill import Lazy, write_json

    document: dict[str, object] = {
        "portal": {"name": portal.config.portal.name, "id": portal.config.portal.id},
        "version": version,
        "now": iso(now),
        "results": Lazy(result_json(result) for result in results),  # written as they are scored
    }
    if scoring.accounts is not None:
        # Lazy too: the roll-up is complete only once every contact above was scored.
        document["companies"] = Lazy(account_json(r) for r in _after(scoring.company_results))
    write_json(document, sys.stdout)
    print()


def _after(results: Callable[[], list[AccountResult]]) -> Iterator[AccountResult]:
    yield from results()


def _print_jsonl(results: Iterable[ScoreResult], scoring: _Scoring) -> None:
    from sync.reports.accounts import account_json
    from sync.reports.scores import result_json

    for result in results:
        print(json.dumps(result_json(result), ensure_ascii=False))
    for company in scoring.company_results():
        print(json.dumps(account_json(company), ensure_ascii=False))


def _print_tables(version: str, now: datetime, results: Iterable[ScoreResult], scoring: _Scoring) -> None:
    from rich.console import Console

    from sync.reports.scores import print_company_table, print_table

    console = Console(width=max(Console().width, 160) if not sys.stdout.isatty() else None)
    count = print_table(results, console)
    console.print(f"{plural(count, 'contact')} scored with rule-set version {version} as of {iso(now)}")
    if scoring.accounts is not None:
        companies = print_company_table(scoring.company_results(), console)
        console.print(f"{plural(companies, 'company', 'companies')} scored")
