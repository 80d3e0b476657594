"""`leadsync validate` and `leadsync schema`: check portal config files, print their JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sync.cli.common import EXIT_CONFIG, EXIT_OK, _quiet_logging
from sync.errors import ConfigError, SyncError

if TYPE_CHECKING:
    from sync.config import LoadedPortal
    from sync.live import Finding
    from sync.ports import Clock


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser(
        "validate",
        help="check portal config files",
        description="Check portal config files. Every problem names the file, the line and the field; "
        "exit status 2 when any file has a problem. A folder is checked as `leadsync run --config-dir` loads it: "
        "its *.yaml and *.yml files, except shared bases named _*.yaml, and no portal named by two files.",
    )
    validate.add_argument(
        "configs", nargs="+", metavar="CONFIG", help="portal YAML file(s), or a folder of them (as run loads it)"
    )
    validate.add_argument(
        "--live",
        action="store_true",
        help="also check each file against its portal, read-only: the token's portal, the properties, "
        "options, stages, lists and forms the rules name (company properties too, and the accounts section's "
        "output properties), and that each segment matches some contact (exit 2 on an error; warnings alone "
        "exit 0)",
    )
    validate.set_defaults(func=run)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of portal config files",
        description="Print the JSON Schema of portal config files.",
    )
    schema.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.command == "schema":
        return cmd_schema(args)
    return cmd_validate(args)


def cmd_validate(args: argparse.Namespace) -> int:
    from sync.config import portal_files

    failed = 0
    for arg in args.configs:
        target = Path(arg)
        if not target.is_dir():
            failed += _validate_files([arg], args.live)  # named as given
            continue
        files: list[str | Path] = list(portal_files(target))
        if not files:
            print(f"{target}: no portal files here (*.yaml, *.yml; _*.yaml are shared bases)", file=sys.stderr)
            failed += 1
            continue
        failed += _validate_files(files, args.live)
    return EXIT_CONFIG if failed else EXIT_OK


def _validate_files(files: list[str | Path], live: bool) -> int:
    """Check files that run together (one argument, or one folder's portal files); the number that failed."""
    from sync.config import duplicate_portals, load_portal

    loaded: dict[str, LoadedPortal] = {}
    failed = 0
    for file in files:
        try:
            loaded[str(file)] = load_portal(file)
        except ConfigError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
    twins = duplicate_portals(list(loaded.values()))
    for file, one in loaded.items():
        if one.path in twins:
            print(twins[one.path], file=sys.stderr)
            failed += 1
        elif not _report_loaded(file, one, live):
            failed += 1
    return failed


def _report_loaded(file: str, loaded: LoadedPortal, live: bool) -> bool:
    """Print a loaded file's live findings and its ok line; False when the live check found an error."""
    models = ", ".join(m.name for m in loaded.rules.models)
    portal = loaded.config.portal.name
    if live:
        findings = _live_findings(loaded)
        for finding in findings:
            print(finding.line(str(file)), file=sys.stderr)
        if any(f.level == "error" for f in findings):
            return False
        warned = sum(f.level == "warning" for f in findings)
        portal += f", checked live with {warned} warning{'s' * (warned != 1)}"
    print(f"{file}: ok (portal {portal}, models: {models}, rule-set version {loaded.rules.version}{_learned(loaded)})")
    return True


def _learned(loaded: LoadedPortal) -> str:
    """The likelihood model a `predictive:` section applies, and the rule set it was trained with if not this."""
    predictive = loaded.rules.predictive
    if predictive is None:
        return ""
    model = predictive.model
    trained = model.ruleset_version
    other = f", trained with rule set {trained}" if trained and trained != loaded.rules.version else ""
    return f", likelihood model {model.version}{other}"


def _live_findings(loaded: LoadedPortal, clock: Clock | None = None) -> list[Finding]:
    """The live check of one loaded file as of the clock's now (the system clock unless one is given); a portal
    that cannot be read is one error, not a traceback."""
    from sync.app import open_reader
    from sync.core.rules import compile_ruleset
    from sync.live import Finding, live_check
    from sync.pipeline import read_properties
    from sync.ports import SystemClock

    _quiet_logging()
    rules = compile_ruleset(loaded.rules)
    try:
        hub = open_reader(loaded.config, read_properties(rules))
        now_ms = int((clock or SystemClock()).now().timestamp() * 1000)
        return live_check(loaded.config, rules, hub, now_ms, accounts=loaded.accounts)
    except ConfigError as exc:
        return [Finding("error", p.path, p.message) for p in exc.problems]
    except SyncError as exc:
        return [Finding("error", "portal", f"could not read the portal: {exc}")]


def cmd_schema(args: argparse.Namespace) -> int:
    from sync.config import json_schema

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return EXIT_OK
