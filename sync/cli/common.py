"""What the `leadsync` commands share: exit codes, common options, loading, progress, signals."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sync.errors import SyncError

if TYPE_CHECKING:
    from sync.config import LoadedPortal
    from sync.core.accounts import AccountSpec
    from sync.core.model import Contact, Event
    from sync.core.rules import RuleSet
    from sync.pipeline import RunSummary
    from sync.ports import Clock, CrmSource
    from sync.reports.accounts import CompanyInputs
    from sync.reports.dataset import Dataset, PortalStream, Source
    from sync.store.state import SqlStateStore

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PAUSED = 0, 1, 2, 3
EXIT_USAGE = 2  # a command line that does not parse (argparse's own status), bare `leadsync` among them
# `sync` stopped by a signal, after checkpointing: 128 + the signal's number, as a shell reports it.
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def _now(text: str | None, clock: Clock | None = None) -> datetime:
    """The time `--now` names; without it, the clock's (the system clock unless one is given)."""
    if text is None:
        if clock is None:
            from sync.ports import SystemClock

            clock = SystemClock()
        return clock.now()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--now: cannot read {text!r} as a time (use ISO 8601: 2026-11-29T02:34:00Z, 2026-11-29T03:34:00+01:00 "
            "or 2026-11-29; without a zone it is UTC)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _quiet_logging() -> None:
    """Operator tools print their own output; only the adapter's warnings (retries, refusals) reach stderr."""
    from sync.observability import configure_logging

    configure_logging(json=False, level="warning", stream=sys.stderr)


def _progress(description: str, quiet: bool) -> Any:
    """A progress bar on stderr: done of total and the time left (a pulse while the total is unknown). Only on a
    terminal and not with --json: in logs and pipes it stays quiet (its `disable` says which)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class TimeLeft(ProgressColumn):
        """`left 0:01:23` once the total is known; nothing while it is not (no time can be told)."""

        remaining = TimeRemainingColumn()

        def render(self, task: Task) -> Text:
            return Text("") if task.total is None else Text.assemble("left ", self.remaining.render(task))

    return Progress(
        TextColumn(f"[bold]{description}" + " {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeLeft(),
        console=Console(stderr=True),
        disable=quiet or not sys.stderr.isatty(),
    )


def _track(items: Iterable[T], total: int | None, description: str, quiet: bool) -> Iterator[T]:
    """`items`, with a progress bar of them (see `_progress`) while they are gone through (a pulse when their
    `total` is not known)."""
    with _progress(description, quiet) as bar:
        yield from bar.track(items, total=total, description="contacts")


def _count_contacts(source: CrmSource) -> int | None:
    """The portal's contact count for a progress bar's total; None when HubSpot would not say (the work goes
    on, with a bar that has no end)."""
    try:
        return source.count_contacts()
    except SyncError:
        return None


def _load_dataset(
    args: argparse.Namespace,
    loaded: LoadedPortal,
    rule_sets: Sequence[RuleSet],
    now: datetime,
    extra_properties: Sequence[str] = (),
) -> Dataset:
    """The snapshot named by --snapshot, else every contact and event of the live portal (read-only).

    Live contacts carry the properties the rules read and `extra_properties` (a backtest's outcome)."""
    from sync.app import open_reader
    from sync.pipeline import read_properties
    from sync.reports.dataset import from_portal, from_snapshot

    portal = loaded.config.portal
    if args.snapshot:
        data = from_snapshot(args.snapshot, loaded.config.forms.types)
        _check_portal(args.snapshot, data.portal_id, portal.id)
        return data
    wanted = {p for rules in rule_sets for p in read_properties(rules)} | set(extra_properties)
    hub = open_reader(loaded.config, sorted(wanted))
    list_ids = {i for rules in rule_sets for i in rules.list_ids}
    with _progress(f"reading portal {portal.name}:", getattr(args, "json", False)) as bar:
        # One search call for the contacts' total, made only when there is a bar to show it; events have no
        # count to ask for, their line has no total.
        totals = {"contacts": None if bar.disable else _count_contacts(hub)}
        lines: dict[str, Any] = {}

        def tick(what: str, n: int) -> None:
            if what not in lines:
                lines[what] = bar.add_task(what, total=totals.get(what))
            bar.update(lines[what], completed=n)

        data = from_portal(hub, portal.name, portal.id, list_ids, int(now.timestamp() * 1000), tick)
    data.api_calls = sum(hub.client.calls.values())
    return data


def _check_portal(file: str, snapshot_portal: int | None, portal_id: int) -> None:
    if snapshot_portal is not None and snapshot_portal != portal_id:
        print(
            f"{file}: warning: a snapshot of portal {snapshot_portal}, used with the config of portal {portal_id}",
            file=sys.stderr,
        )


def _load_source(
    args: argparse.Namespace,
    loaded: LoadedPortal,
    rule_sets: Sequence[RuleSet],
    now: datetime,
    extra_properties: Sequence[str] = (),
) -> Source:
    """The contacts to go through, in bounded memory where they can be: a JSON Lines snapshot read as it is
    gone through (a single-document one is loaded whole), the state store a page at a time (--from-store), or
    the live portal streamed a page at a time (its events kept on disk meanwhile)."""
    if getattr(args, "from_store", False):
        from sync.reports.dataset import StoreStream
        from sync.store.schema import database_url

        label = database_url(args.db).render_as_string(hide_password=True)
        return StoreStream(_open_store(args), loaded.config.portal.id, label)
    if args.snapshot:
        from sync.reports.dataset import source_of

        data = source_of(args.snapshot, loaded.config.forms.types)
        _check_portal(args.snapshot, data.portal_id, loaded.config.portal.id)
        return data
    return _stream_portal(args, loaded, rule_sets, now, extra_properties)


def _stream_portal(
    args: argparse.Namespace,
    loaded: LoadedPortal,
    rule_sets: Sequence[RuleSet],
    now: datetime,
    extra_properties: Sequence[str] = (),
) -> PortalStream:
    """The live portal, read-only: its events read now (to a file), its contacts as they are gone through."""
    from sync.app import open_reader
    from sync.pipeline import read_properties
    from sync.reports.dataset import PortalStream

    portal = loaded.config.portal
    wanted = {p for rules in rule_sets for p in read_properties(rules)} | set(extra_properties)
    hub = open_reader(loaded.config, sorted(wanted))
    list_ids = {i for rules in rule_sets for i in rules.list_ids}
    with _progress(f"reading portal {portal.name}:", getattr(args, "json", False)) as bar:
        lines: dict[str, Any] = {}

        def tick(what: str, n: int) -> None:
            if what in ("events", "companies"):  # the contacts have the command's own bar
                if what not in lines:
                    lines[what] = bar.add_task(what, total=None)
                bar.update(lines[what], completed=n)

        data = PortalStream(hub, portal.name, portal.id, list_ids, int(now.timestamp() * 1000), tick)
        data.count = None if bar.disable else _count_contacts(hub)
    data.calls.append(lambda: sum(hub.client.calls.values()))
    return data


def _open_store(args: argparse.Namespace) -> SqlStateStore:
    """The state store --db names (else $LEADSYNC_DB_URL, else leadsync.db), which must exist."""
    import sqlalchemy as sa

    from sync.store.schema import database_url
    from sync.store.state import SqlStateStore

    url = database_url(args.db)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        # Opening it would create an empty store, and every stage would look like someone else's.
        raise SyncError(f"--db: no state store at {url.database}")
    try:
        return SqlStateStore(args.db)
    except sa.exc.SQLAlchemyError as exc:
        raise SyncError(f"--db: cannot open the state store: {exc}") from None


STAGE_PAGE = 1000  # contacts whose written stages are read from the store in one query


def inputs_with_written_stages(
    args: argparse.Namespace,
    portal_id: int,
    inputs: Iterable[tuple[Contact, list[Event]]],
    stages: dict[str, str],
) -> Iterator[tuple[Contact, list[Event]]]:
    """`inputs`, with `stages` holding the stages leadsync wrote of each page of them before the page is
    yielded: the store read a page at a time, as the contacts stream by."""
    page: list[tuple[Contact, list[Event]]] = []
    for item in inputs:
        page.append(item)
        if len(page) == STAGE_PAGE:
            yield from _stage_page(args, portal_id, page, stages)
            page = []
    yield from _stage_page(args, portal_id, page, stages)


def _stage_page(
    args: argparse.Namespace, portal_id: int, page: list[tuple[Contact, list[Event]]], stages: dict[str, str]
) -> Iterator[tuple[Contact, list[Event]]]:
    if not page:
        return
    stages.clear()
    stages.update(_written_stages(args, portal_id, [c.id for c, _ in page]) or {})
    yield from page


def _report_problems(problems: Sequence[str], limit: int = 20) -> None:
    for problem in problems[:limit]:
        print(problem, file=sys.stderr)
    if len(problems) > limit:
        print(f"... and {len(problems) - limit} more records skipped", file=sys.stderr)


def _written_stages(args: argparse.Namespace, portal_id: int, ids: Sequence[str]) -> dict[str, str] | None:
    """The stages leadsync last wrote, from the state store named by --db; None without --db (ownership unknown)."""
    if not args.db and not getattr(args, "from_store", False):
        return None
    store = _open_store(args)
    try:
        return store.written_stages(portal_id, ids)
    finally:
        store.close()


def _logging(args: argparse.Namespace) -> None:
    from sync.observability import configure_logging

    console = args.log_format == "console" or (args.log_format is None and sys.stderr.isatty())
    level = args.log_level or ("warning" if console else "info")
    # With --json, stdout carries the one JSON document and nothing else: the logs go to stderr.
    to_stderr = console or getattr(args, "json", False)
    configure_logging(json=not console, level=level, stream=sys.stderr if to_stderr else sys.stdout)


def _run_exit(summary: RunSummary, caught: list[int]) -> int:
    """A run's exit status: 2 when the file or the token must change (nothing was written), 3 paused, 130/143
    stopped by SIGINT/SIGTERM (it checkpointed), else 0 ok or 1 failed."""
    if summary.cause in ("wrong_portal", "config"):
        return EXIT_CONFIG
    if summary.status == "paused":
        return EXIT_PAUSED
    if summary.status == "interrupted":
        return EXIT_SIGINT if caught == [signal.SIGINT] else EXIT_SIGTERM
    return EXIT_OK if summary.status == "ok" else EXIT_FAILED


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[list[int]]:
    """SIGTERM and SIGINT set the run's stop flag: it ends after the batch in flight (or at once from a retry
    wait) and checkpoints, as the service does. Yields the last signal caught (a list, empty if none)."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread may take signals
        yield caught
        return

    def on_signal(signum: int, _frame: object) -> None:
        caught[:] = [signum]
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="C", help="portal YAML file")


def _add_now_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", metavar="T", help="score as of this ISO 8601 time (default: now, UTC)")


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="state store URL (default: $LEADSYNC_DB_URL or sqlite leadsync.db)")


def _add_from_store_option(parser: argparse.ArgumentParser, group: Any = None) -> None:
    """--from-store: the contacts and events of the state store (--db) instead of HubSpot or a snapshot."""
    (group or parser).add_argument(
        "--from-store",
        action="store_true",
        help="read the contacts and events from the state store (--db) as the worker last read them (with the "
        "values it wrote since), a page at a time: no HubSpot call, no snapshot",
    )


def _add_owners_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        help="state store to read the stages leadsync wrote from (without it stage ownership is unknown and "
        "demotions are held back)",
    )


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, not {value}")
        return value

    return parse


def _add_log_options(parser: argparse.ArgumentParser, format_help: str) -> None:
    parser.add_argument("--log-format", choices=["json", "console"], help=format_help)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def account_contact_reads(loaded: LoadedPortal, rules: RuleSet) -> list[str]:
    """The contact properties the accounts section's `contacts:` rules read (besides the contact rules')."""
    from sync.core.accounts import compile_accounts

    if loaded.accounts is None:
        return []
    return sorted(compile_accounts(loaded.accounts, rules).contact_properties_read)


def load_companies(
    args: argparse.Namespace,
    loaded: LoadedPortal,
    rules: RuleSet,
    data: Source,
    base: AccountSpec | None = None,
) -> CompanyInputs | None:
    """The companies a plan, backtest or report needs (None when no rule reads a company and there is no
    accounts: section): a snapshot's own, or the live portal's, read in batches (their calls counted with the
    reads). Problems (an association to a missing company, a number that does not parse) go to `data`."""
    from sync.core.accounts import number_problems, numeric_company_reads
    from sync.reports.accounts import Companies, CompanyInputs, company_reads
    from sync.reports.dataset import PortalStream, StoreStream

    wanted = company_reads(rules, loaded.accounts)
    if not wanted:
        return None
    if isinstance(data, PortalStream | StoreStream):
        # The companies now; each page of contacts' associations just before the page is gone through.
        if isinstance(data, PortalStream):
            from sync.app import open_reader

            hub = open_reader(loaded.config, [], wanted)
            data.add_companies(hub)
            data.calls.append(lambda: sum(hub.client.calls.values()))
        else:
            data.add_companies()
        streamed = Companies.of(data.companies, [])
        data.on_associations = lambda page: data.problems.extend(streamed.extend(page))
        data.problems += number_problems(data.companies, numeric_company_reads(rules, loaded.accounts))
        return CompanyInputs(streamed, loaded.accounts, base)
    if not args.snapshot:
        from sync.app import open_reader
        from sync.reports.dataset import Dataset, add_companies

        assert isinstance(data, Dataset)  # a live portal is read whole
        hub = open_reader(loaded.config, [], wanted)
        add_companies(data, hub)
        data.api_calls += sum(hub.client.calls.values())
    companies = Companies.of(data.companies, data.associations)
    data.problems += companies.problems
    data.problems += number_problems(data.companies, numeric_company_reads(rules, loaded.accounts))
    return CompanyInputs(companies, loaded.accounts, base)
