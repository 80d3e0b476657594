"""The `leadsync` command: parse arguments, build what the command needs, call one function, print."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync import __version__
from sync.buildcheck import stale_core_modules
from sync.errors import ConfigError, PausedError, SyncError, WrongPortalError

if TYPE_CHECKING:
    from sync.config import LoadedPortal
    from sync.core.rules import RuleSet
    from sync.live import Finding
    from sync.ports import DeadLetterRecord
    from sync.reports.backtest import Backtest
    from sync.reports.dataset import Dataset
    from sync.reports.report import RunActivity
    from sync.store.state import SqlStateStore

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PAUSED = 0, 1, 2, 3
# `sync` stopped by a signal, after checkpointing: 128 + the signal's number, as a shell reports it.
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def _now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--now: not an ISO 8601 time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_validate(args: argparse.Namespace) -> int:
    from sync.config import load_portal

    failed = 0
    for file in args.configs:
        try:
            loaded = load_portal(file)
        except ConfigError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        models = ", ".join(m.name for m in loaded.rules.models)
        portal = loaded.config.portal.name
        if args.live:
            findings = _live_findings(loaded)
            for finding in findings:
                print(finding.line(str(file)), file=sys.stderr)
            if any(f.level == "error" for f in findings):
                failed += 1
                continue
            warned = sum(f.level == "warning" for f in findings)
            portal += f", checked live with {warned} warning{'s' * (warned != 1)}"
        print(f"{file}: ok (portal {portal}, models: {models}, rule-set version {loaded.rules.version})")
    return EXIT_CONFIG if failed else EXIT_OK


def _live_findings(loaded: LoadedPortal) -> list[Finding]:
    """The live check of one loaded file; a portal that cannot be read is one error, not a traceback."""
    from sync.app import open_reader
    from sync.core.rules import compile_ruleset
    from sync.live import Finding, live_check
    from sync.pipeline import read_properties

    _quiet_logging()
    rules = compile_ruleset(loaded.rules)
    try:
        hub = open_reader(loaded.config, read_properties(rules))
        return live_check(loaded.config, rules, hub, int(datetime.now(UTC).timestamp() * 1000))
    except ConfigError as exc:
        return [Finding("error", p.path, p.message) for p in exc.problems]
    except SyncError as exc:
        return [Finding("error", "portal", f"could not read the portal: {exc}")]


def cmd_schema(args: argparse.Namespace) -> int:
    from sync.config import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import track

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
    results = (
        score(contact, events, rules, now)
        for contact, events in track(inputs, description="scoring", disable=quiet, console=Console(stderr=True))
    )
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


def _quiet_logging() -> None:
    """Operator tools print their own output; only the adapter's warnings (retries, refusals) reach stderr."""
    from sync.observability import configure_logging

    configure_logging(json=False, level="warning", stream=sys.stderr)


def _progress(description: str, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{description}" + " {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet or not sys.stderr.isatty(),
    )


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
        if data.portal_id is not None and data.portal_id != portal.id:
            print(
                f"{args.snapshot}: warning: a snapshot of portal {data.portal_id}, used with the config of portal "
                f"{portal.id}",
                file=sys.stderr,
            )
        return data
    wanted = {p for rules in rule_sets for p in read_properties(rules)} | set(extra_properties)
    hub = open_reader(loaded.config, sorted(wanted))
    list_ids = {i for rules in rule_sets for i in rules.list_ids}
    with _progress(f"reading portal {portal.name}:", getattr(args, "json", False)) as bar:
        task = bar.add_task("contacts", total=None)
        data = from_portal(
            hub,
            portal.name,
            portal.id,
            list_ids,
            int(now.timestamp() * 1000),
            lambda what, n: bar.update(task, description=what, completed=n),
        )
    data.api_calls = sum(hub.client.calls.values())
    return data


def cmd_snapshot(args: argparse.Namespace) -> int:
    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.dataset import snapshot_json

    _quiet_logging()
    now = _now(args.now)
    loaded = load_portal(args.config)
    args.snapshot = None  # this command reads the live portal
    data = _load_dataset(args, loaded, [compile_ruleset(loaded.rules)], now)
    _report_problems(data.problems)
    raw = snapshot_json(data)
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")  # a reader never sees half a file
    tmp.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out)
    print(
        f"{out}: {len(raw['contacts'])} contacts, {len(raw['form_submissions'])} form submissions, "
        f"{len(raw['email_events'])} email events of portal {loaded.config.portal.name} "
        f"({data.api_calls} API calls)",
        file=sys.stderr,
    )
    return EXIT_OK


def _report_problems(problems: Sequence[str], limit: int = 20) -> None:
    for problem in problems[:limit]:
        print(problem, file=sys.stderr)
    if len(problems) > limit:
        print(f"... and {len(problems) - limit} more records skipped", file=sys.stderr)


def cmd_explain(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.explain import explain, parse_what_if, print_explanation, print_what_if, what_if_json

    _quiet_logging()
    now = _now(args.now)
    now_ms = int(now.timestamp() * 1000)
    loaded = load_portal(args.config)
    rules = compile_ruleset(loaded.rules)
    what = parse_what_if(args.what_if or [], now_ms)
    for name in sorted(set(what.properties) - rules.properties_read - {"email", "lifecyclestage"}):
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


def _written_stages(args: argparse.Namespace, portal_id: int, ids: Sequence[str]) -> dict[str, str] | None:
    """The stages leadsync last wrote, from the state store named by --db; None without --db (ownership unknown)."""
    if not args.db:
        return None
    import sqlalchemy as sa

    from sync.store.schema import database_url
    from sync.store.state import SqlStateStore

    url = database_url(args.db)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        # Opening it would create an empty store, and every stage would look like someone else's.
        raise SyncError(f"--db: no state store at {url.database}")
    try:
        store = SqlStateStore(args.db)
    except sa.exc.SQLAlchemyError as exc:
        raise SyncError(f"--db: cannot open the state store: {exc}") from None
    try:
        return store.written_stages(portal_id, ids)
    finally:
        store.close()


def cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.plan import Acceptance, acceptance, build_plan, print_plan, properties_setup_calls
    from sync.reports.revision import load_at_revision

    _quiet_logging()
    now = _now(args.now)
    loaded = load_portal(args.config)
    rules = compile_ruleset(loaded.rules)
    accepts: Acceptance | None = None
    checks = 0  # the calls of the identity and property checks: reads too
    if not args.snapshot:
        from sync.app import open_reader

        # The same refusal as a sync: a plan of another portal's contacts would mislead.
        hub = open_reader(loaded.config, [])
        actual = hub.account_portal_id()
        if actual != loaded.config.portal.id:
            raise WrongPortalError(actual, loaded.config.portal.id)
        accepts = acceptance(rules, hub.property_definitions())
        checks = sum(hub.client.calls.values())
    base = base_label = None
    if args.base_config or args.against_version:
        old = load_portal(args.base_config) if args.base_config else load_at_revision(args.config, args.against_version)
        base = compile_ruleset(old.rules)
        where = args.base_config or f"{args.config} at {args.against_version}"
        base_label = f"{where} (version {base.version})"
    data = _load_dataset(args, loaded, [rules] if base is None else [rules, base], now)
    _report_problems(data.problems)
    owners = _written_stages(args, loaded.config.portal.id, [c.id for c in data.contacts])
    with _progress("planning", args.json) as bar:
        task = bar.add_task("contacts", total=len(data.contacts))
        report = build_plan(
            data.inputs(),
            rules,
            int(now.timestamp() * 1000),
            source=data.source,
            base=base,
            base_label=base_label or "",
            progress=lambda n: bar.update(task, completed=n),
            written_stages=owners,
            accepts=accepts,
        )
    _report_problems(report.problems)
    report.calls = {
        "reads": data.api_calls + checks,
        "property_checks": properties_setup_calls(rules),
        **report.calls,
    }
    report.calls["total"] = sum(report.calls.values())
    if args.json:
        # Often kept as a CI artifact: emails only where the portal allows them in logs.
        print(json.dumps(report.json(args.top, loaded.config.log_emails), ensure_ascii=False, indent=2))
    else:
        print_plan(report, Console(width=None if sys.stdout.isatty() else 160), args.top, live=not args.snapshot)
    return EXIT_OK


def _logging(args: argparse.Namespace) -> None:
    from sync.observability import configure_logging

    console = args.log_format == "console" or (args.log_format is None and sys.stderr.isatty())
    level = args.log_level or ("warning" if console else "info")
    # With --json, stdout carries the one JSON document and nothing else: the logs go to stderr.
    to_stderr = console or getattr(args, "json", False)
    configure_logging(json=not console, level=level, stream=sys.stderr if to_stderr else sys.stdout)


def cmd_sync(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sync.app import open_portal
    from sync.pipeline import Cycle, Kind
    from sync.store.state import SqlStateStore

    _logging(args)
    store = SqlStateStore(args.db)
    portal = open_portal(args.config, store)
    kind: Kind = "full" if args.full else "rescore" if args.rescore else "incremental"
    show = sys.stderr.isatty() and not args.json
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not show,
    ) as bar:
        task = bar.add_task(f"{portal.config.portal.name}: {kind} sync", total=None)
        cycle = Cycle(portal, kind, progress=lambda done, total: bar.update(task, completed=done, total=total))
        with _stop_on_signals(cycle.stop) as caught:
            summary = cycle.run()
    store.close()
    # The stage moves are always named, 0 when none: a reader need not know which counts a run may omit.
    counts = {"promotions": 0, "demotions": 0, "stages_held_back": 0, **summary.counts}
    name, pid, version = portal.config.portal.name, portal.config.portal.id, portal.rules.version
    if args.json:
        print(
            json.dumps(
                {
                    "portal": {"name": name, "id": pid},
                    "version": version,
                    "run_id": summary.run_id,
                    "kind": kind,
                    "status": summary.status,
                    "error": summary.error,
                    **counts,
                }
            )
        )
    else:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(
            f"{name} (portal {pid}): {kind} sync {summary.status} (run {summary.run_id}, rule-set version "
            f"{version}): {listed}"
        )
        if summary.error:
            print(f"  {summary.error}", file=sys.stderr)
    if summary.cause in ("wrong_portal", "config"):  # the file or the token must change; nothing was written
        return EXIT_CONFIG
    if summary.status == "paused":
        return EXIT_PAUSED
    if summary.status == "interrupted":
        return EXIT_SIGINT if caught == [signal.SIGINT] else EXIT_SIGTERM
    return EXIT_OK if summary.status == "ok" else EXIT_FAILED


DEAD_LETTER_ACTIVE = ("open", "retrying", "given_up")


def cmd_dead_letters(args: argparse.Namespace) -> int:
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
    if summary.status == "paused":
        return EXIT_PAUSED
    if summary.status == "interrupted":
        return EXIT_SIGINT if caught == [signal.SIGINT] else EXIT_SIGTERM
    return EXIT_OK if summary.status == "ok" and all(d.state == "resolved" for d in letters) else EXIT_FAILED


def _print_dead_letters(
    portal: str, letters: Sequence[DeadLetterRecord], as_json: bool, run: str | None = None
) -> None:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment is not None else None

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
        due = f"next attempt {when(d.next_attempt_at) or 'now'}" if d.state == "open" else d.note or ""
        print(f"#{d.id} contact {d.contact_id}: {d.state}, {d.attempts} retries refused, {due}".rstrip(", "))
        props = ", ".join(f"{k}={v}" for k, v in sorted(d.properties.items()))
        print(f"    properties: {props or '-'}")
        print(f"    reason (HTTP {d.status or '-'}): {d.reason}")


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


def cmd_run(args: argparse.Namespace) -> int:
    from sync.app import check_live, open_portal
    from sync.observability import Metrics, serve_http
    from sync.scheduler import Service
    from sync.store.state import SqlStateStore

    _logging(args)
    config_dir = Path(args.config_dir)
    if not config_dir.is_dir():
        print(f"leadsync run: no such folder: {config_dir}", file=sys.stderr)
        return EXIT_CONFIG
    store = SqlStateStore(args.db)
    metrics = Metrics()
    service = Service(
        config_dir, store, open_portal, metrics=metrics, lease_ttl_s=args.lease_ttl, live_check=check_live
    )
    host, _, port = args.listen.rpartition(":")
    server = serve_http(host or "127.0.0.1", int(port), service.health, metrics) if args.listen != "off" else None
    try:
        return service.serve()
    finally:
        if server is not None:
            server.shutdown()
        store.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.demo import run_demo

    if args.log_format is None:  # the demo shows its table; the sync's events only when asked for
        args.log_format, args.log_level = "console", args.log_level or "error"
    _logging(args)
    summary = run_demo(Path(args.config), args.contacts, args.seed, Console(width=None if sys.stdout.isatty() else 150))
    return EXIT_OK if summary.status == "ok" else EXIT_FAILED


def _backtest(args: argparse.Namespace, what: str) -> tuple[LoadedPortal, Dataset, Backtest]:
    """Load the config and the contacts, and back-test them: the shared first half of backtest and report."""
    from sync.config import load_portal
    from sync.core.rules import compile_ruleset
    from sync.reports.backtest import DEFAULT_OUTCOME, parse_outcome, run_backtest

    now = _now(args.now)
    outcome = parse_outcome(args.outcome or DEFAULT_OUTCOME)  # a typo fails before any contact is read
    loaded = load_portal(args.config)
    rules = compile_ruleset(loaded.rules)
    data = _load_dataset(args, loaded, [rules], now, [outcome.property])
    _report_problems(data.problems)
    with _progress(what, args.json) as bar:
        task = bar.add_task("contacts", total=len(data.contacts))
        result = run_backtest(
            data.inputs(),
            rules,
            int(now.timestamp() * 1000),
            outcome,
            band_width=args.band_width,
            min_support=args.min_support,
            progress=lambda n: bar.update(task, completed=n),
        )
    _report_problems(result.problems)
    return loaded, data, result


def cmd_backtest(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sync.reports.backtest import print_backtest

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


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="C", help="portal YAML file")


def _add_now_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", metavar="T", help="score as of this ISO 8601 time (default: now, UTC)")


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="state store URL (default: $LEADSYNC_DB_URL or sqlite leadsync.db)")


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


def _add_backtest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outcome",
        metavar="PROPERTY=V1|V2",
        help="a contact converted when this property holds one of these values "
        "(default: lifecyclestage=opportunity|customer)",
    )
    _add_now_option(parser)
    parser.add_argument("--band-width", type=_int_at_least(1), default=10, metavar="N", help="score band width (10)")
    parser.add_argument(
        "--min-support",
        type=_int_at_least(1),
        default=30,
        metavar="N",
        help="rules matched by fewer contacts are listed but not ranked (default: 30)",
    )


def _add_log_options(parser: argparse.ArgumentParser, format_help: str) -> None:
    parser.add_argument("--log-format", choices=["json", "console"], help=format_help)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def _contact_key(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a contact id or email address is needed")
    return text.strip()


def _what_if_help() -> str:
    from sync.reports.explain import WHAT_IF_HELP

    return WHAT_IF_HELP


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadsync",
        description="Explainable lead scoring for HubSpot: score contacts with versioned YAML rules "
        "and write score, grade, reasons and lifecycle stage back.",
        epilog="Run 'leadsync COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"leadsync {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check portal config files",
        description="Check portal config files. Every problem names the file, the line and the field; "
        "exit status 2 when any file has a problem.",
    )
    validate.add_argument("configs", nargs="+", metavar="CONFIG", help="portal YAML file(s)")
    validate.add_argument(
        "--live",
        action="store_true",
        help="also check each file against its portal, read-only: the token's portal, the properties, "
        "options, stages, lists and forms the rules name, and that each segment matches some contact "
        "(exit 2 on an error; warnings alone exit 0)",
    )
    validate.set_defaults(func=cmd_validate)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of portal config files",
        description="Print the JSON Schema of portal config files.",
    )
    schema.set_defaults(func=cmd_schema)

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
    score.set_defaults(func=cmd_score)

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
    explain.set_defaults(func=cmd_explain)

    plan = commands.add_parser(
        "plan",
        help="dry run: what a sync would change, written nowhere",
        description="Score every contact of the live portal (or a snapshot) and show what a full sync would "
        "write: how many contacts change score, grade and stage, the stage transition matrix, threshold "
        "crossings, the API calls the run would make and the top changed contacts. Nothing is written. "
        "With --base-config or --against-version the comparison is between two configs on the same contacts: "
        "what a rule change does before it is merged.",
    )
    _add_config_option(plan)
    base = plan.add_mutually_exclusive_group()
    base.add_argument("--base-config", metavar="OLD", help="compare with this config instead of HubSpot's values")
    base.add_argument(
        "--against-version",
        metavar="REV",
        help="compare with the config (and its bases) as committed at this git revision, e.g. main or HEAD~1",
    )
    plan.add_argument("--snapshot", metavar="S", help="plan on a snapshot file instead of the live portal")
    _add_now_option(plan)
    plan.add_argument(
        "--top", type=_int_at_least(0), default=20, metavar="N", help="changed contacts to list (default: 20)"
    )
    _add_owners_option(plan)
    plan.add_argument("--json", action="store_true", help="the whole plan as one JSON object (for CI)")
    plan.set_defaults(func=cmd_plan)

    snapshot = commands.add_parser(
        "snapshot",
        help="save the live portal to a snapshot file (read-only)",
        description="Read every contact (the properties the rules read), form submission, email event and list "
        "membership of the live portal, read-only, and save them as one snapshot file in HubSpot's shapes: what "
        "score, explain, plan, backtest and report take with --snapshot.",
    )
    _add_config_option(snapshot)
    snapshot.add_argument("--out", required=True, metavar="FILE", help="snapshot JSON file to write")
    snapshot.add_argument("--now", metavar="T", help="read email events up to this ISO 8601 time (default: now)")
    snapshot.set_defaults(func=cmd_snapshot)

    sync_cmd = commands.add_parser(
        "sync",
        help="run one sync cycle for a portal now",
        description="Pull what changed in HubSpot, score the affected contacts and write what differs. "
        "The first run (or --full) backfills every contact and resumes where it stopped. "
        "SIGTERM or SIGINT (Ctrl-C) stops it after the batch in flight, or at once while a call waits to be "
        "retried; what was planned is kept and the next run finishes it, and the run is recorded as interrupted. "
        "Exit status: 0 ok, 1 failed, 2 config error, 3 portal paused (HubSpot refused the token), "
        "130 interrupted by SIGINT, 143 interrupted by SIGTERM.",
    )
    _add_config_option(sync_cmd)
    mode = sync_cmd.add_mutually_exclusive_group()
    mode.add_argument("--full", action="store_true", help="backfill every contact (resumable)")
    mode.add_argument("--rescore", action="store_true", help="rescore every stored contact (decay, time windows)")
    _add_db_option(sync_cmd)
    sync_cmd.add_argument("--json", action="store_true", help="print the run summary as JSON")
    _add_log_options(sync_cmd, "default: console on a terminal, else json")
    sync_cmd.set_defaults(func=cmd_sync)

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
    letters.set_defaults(func=cmd_dead_letters)

    run = commands.add_parser(
        "run",
        help="run the service: every portal on its schedule",
        description="Run the sync service for every portal file in a folder: an incremental sync on each portal's "
        "schedule.every, a nightly rescore on its schedule.rescore, health and metrics over HTTP. Replicas sharing a "
        "PostgreSQL store split the portals through leases. SIGTERM finishes the batch in flight (a call waiting to be "
        "retried stops waiting; the run is recorded as interrupted) and exits 0; "
        "SIGHUP re-reads the portal files.",
    )
    run.add_argument(
        "--config-dir", default="config/portals", metavar="DIR", help="portal YAML files (default: %(default)s)"
    )
    _add_db_option(run)
    run.add_argument("--listen", default="127.0.0.1:9108", metavar="HOST:PORT", help="/healthz and /metrics (or off)")
    run.add_argument("--lease-ttl", type=float, default=45.0, metavar="S", help="portal lease lifetime in seconds")
    _add_log_options(run, "default: console on a terminal, else json")
    run.set_defaults(func=cmd_run)

    demo = commands.add_parser(
        "demo",
        help="sync a synthetic sandbox portal and show what was written",
        description="Start the local HubSpot sandbox with a synthetic portal, run a real full sync against it "
        "(SQLite state in a temporary folder) and show what leadsync wrote.",
    )
    demo.add_argument("--config", default="config/portals/example.yaml", metavar="C", help="portal config to use")
    demo.add_argument("--contacts", type=int, default=2000, metavar="N", help="portal size (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=1, help="synthetic portal seed")
    _add_log_options(demo, "show the sync's log events too")
    demo.set_defaults(func=cmd_demo)

    backtest = commands.add_parser(
        "backtest",
        help="how well the scores pick out the contacts who converted",
        description="Score every contact of a snapshot as of --now and compare with an outcome read from its "
        "properties: conversion by score band and grade; precision, recall and lift at each lifecycle threshold; "
        "each rule's close rate; the holdout against the written contacts; warnings about thresholds set too low "
        "or too high. Excluded contacts are counted apart and left out of the metrics. A --now in the past "
        "ignores the events after it: the backtest as of that date.",
    )
    _add_config_option(backtest)
    backtest.add_argument("--snapshot", required=True, metavar="S", help="snapshot JSON file")
    _add_backtest_options(backtest)
    backtest.add_argument("--json", action="store_true", help="the backtest as one JSON object")
    backtest.set_defaults(func=cmd_backtest)

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML report with charts",
        description="Write one HTML file (charts, styles and all: it opens offline) with headline numbers, the "
        "score distribution, the fit x engagement grade matrix, conversion by score band and the backtest's "
        "warnings, the stage transitions of the portal's last runs (from the state store) and the rules' "
        "contributions. Reads the live portal (read-only) unless --snapshot is given.",
    )
    _add_config_option(report)
    report.add_argument("--snapshot", metavar="S", help="report on a snapshot file instead of the live portal")
    report.add_argument("--out", required=True, metavar="FILE", help="the HTML file to write, e.g. report.html")
    _add_db_option(report)
    report.add_argument(
        "--runs", type=_int_at_least(1), default=10, metavar="N", help="recent runs to show (default: 10)"
    )
    _add_backtest_options(report)
    report.add_argument("--json", action="store_true", help="print the backtest and the file written as JSON")
    report.set_defaults(func=cmd_report)

    from sync.sandbox.cli import add_sandbox_command

    add_sandbox_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stale = stale_core_modules()
    if stale:
        print(
            f"leadsync: the compiled scoring core is older than {', '.join(stale)}; "
            "rebuild it (make venv, or pip install -e .) so it runs the code you see",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        if getattr(args, "now", None) is not None:
            _now(args.now)
        code: int = args.func(args)
        return code
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except WrongPortalError as exc:  # the token is another portal's: fix the file or the token
        print(f"leadsync {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except PausedError as exc:  # HubSpot refused the token: nothing more can be read
        print(f"leadsync {args.command}: {exc}", file=sys.stderr)
        return EXIT_PAUSED
    except SyncError as exc:  # HubSpot or the store failed in a way the command cannot go around
        print(f"leadsync {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_FAILED
