"""`leadsync train`: learn the likelihood model from a snapshot (or the live portal, read-only)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sync.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    _add_config_option,
    _int_at_least,
    _load_source,
    _progress,
    _quiet_logging,
    _report_problems,
)

if TYPE_CHECKING:
    from sync.learn.train import Trained

# Read from a live portal besides what the rules read: the properties most portals fill in.
LIVE_PROPERTIES = (
    "jobtitle", "industry", "numberofemployees", "annualrevenue", "country", "hs_analytics_source",
    "hs_analytics_first_referrer", "hs_analytics_num_visits", "hs_email_optout",
)  # fmt: skip


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = commands.add_parser(
        "train",
        help="learn the likelihood model: who converts, from the rules' hits, properties and events",
        description="Learn a likelihood to convert (docs/SCORING.md section 7). Every contact that existed at "
        "--as-of and had not converted by then is a row: its features as of that date (the rules' own hits, "
        "property values, event counts in 30/90/365-day windows; never leadsync's outputs, the lifecycle stage "
        "or a stage's dates), labelled by whether it reached the outcome within --horizon-days after. A "
        "regularised logistic regression (classes balanced) is fitted on three quarters of them and measured on "
        "the rest, side by side with the rule score: ROC AUC, lift in the top decile, precision at the MQL "
        "threshold's volume, a calibration table. Refused, with no model written, for under 30 converters, a "
        "single class, or a feature that separates the classes perfectly (a leak). Reads the live portal "
        "(read-only) unless --snapshot is given.",
    )
    _add_config_option(train)
    train.add_argument("--snapshot", metavar="S", help="a snapshot file (JSON, or JSON Lines read as a stream)")
    train.add_argument("--as-of", required=True, metavar="T", help="the date features are read at (ISO 8601)")
    train.add_argument(
        "--horizon-days",
        type=_int_at_least(1),
        default=90,
        metavar="N",
        help="a contact converted when it reached the outcome within N days after --as-of (default: 90)",
    )
    train.add_argument(
        "--outcome",
        metavar="PROPERTY",
        help="the date property that says when a contact converted (default: hs_lifecyclestage_customer_date)",
    )
    train.add_argument("--out", required=True, metavar="MODEL", help="the model file to write (JSON)")
    train.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PROPERTY",
        help="a property never to learn from (repeatable), e.g. one the leak check named",
    )
    train.add_argument(
        "--min-contacts",
        type=_int_at_least(1),
        default=20,
        metavar="N",
        help="a feature fewer training contacts have is left out (default: 20)",
    )
    train.add_argument("--seed", type=int, default=7, metavar="N", help="the held-out split's seed (default: 7)")
    train.add_argument("--json", action="store_true", help="the training summary as one JSON object")
    train.set_defaults(func=run)


def parse_time(option: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{option}: cannot read {text!r} as a time (use ISO 8601: 2026-05-01 or 2026-05-01T00:00:00Z)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from sync.config.model_file import write_model
    from sync.core.rules import compile_ruleset
    from sync.learn.config import load_rules_only
    from sync.learn.features import DEFAULT_OUTCOME, gather, parse_outcome_property
    from sync.learn.train import TrainingRefusedError, fit, model_content

    _quiet_logging()
    as_of = parse_time("--as-of", args.as_of)
    as_of_ms = int(as_of.timestamp() * 1000)
    outcome = parse_outcome_property(args.outcome or DEFAULT_OUTCOME)
    loaded, own = load_rules_only(args.config)
    rules = compile_ruleset(loaded.rules)
    data = _load_source(args, loaded, [rules], datetime.now(UTC), [outcome, *LIVE_PROPERTIES, *args.exclude])
    _report_problems(data.problems)
    shown = len(data.problems)
    with _progress("train", args.json) as bar:
        task = bar.add_task("contacts", total=data.count)
        rows = gather(
            data.inputs(),
            rules,
            as_of_ms,
            args.horizon_days,
            outcome,
            own,
            seed=args.seed,
            excluded_properties=frozenset(args.exclude),
            progress=lambda n: bar.update(task, completed=n),
        )
    _report_problems(data.problems[shown:])
    _report_problems(rows.counts.failed)
    try:
        trained = fit(rows, rules, min_rows=args.min_contacts)
    except TrainingRefusedError as exc:
        print(f"leadsync train: refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    content = model_content(
        trained,
        rules,
        rows,
        as_of_ms=as_of_ms,
        horizon_days=args.horizon_days,
        outcome=outcome,
        seed=args.seed,
        source=data.source,
    )
    try:
        sealed = write_model(args.out, content)
    except OSError as exc:
        print(f"leadsync train: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"out": args.out, **sealed}, ensure_ascii=False, indent=2))
    else:
        print_summary(args.out, sealed, trained)
    return EXIT_OK


def print_summary(out: str, sealed: dict[str, Any], trained: Trained, top: int = 10) -> None:
    """What a person reads after training: the counts, the two rankings side by side, the strongest features."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    training = sealed["training"]
    counts = training["contacts"]
    console.print(
        f"[bold]{out}[/bold]: model {sealed['version']} (rule set {sealed['ruleset_version']}), as of "
        f"{training['as_of']}, outcome {training['outcome']} within {training['horizon_days']} days"
    )
    console.print(
        f"{counts['rows']} contacts ({counts['positives']} converted) of {counts['read']} read: "
        f"{counts['converted_before_as_of']} converted before, {counts['created_after_as_of']} created after, "
        f"{counts['excluded']} excluded; held out {trained.test_rows} ({trained.test_positives} converted)"
    )
    side = Table(title="held-out contacts: the model and the rule score", header_style="bold")
    for name in ("", "model", "rule score"):
        side.add_column(name, justify="right")
    m, r = trained.model, trained.rule
    side.add_row("ROC AUC", f"{m.auc:.3f}", f"{r.auc:.3f}")
    side.add_row("top-decile lift", f"{m.top_decile_lift:.2f}", f"{r.top_decile_lift:.2f}")
    if trained.mql_volume is not None:
        label = f"precision at MQL volume ({trained.mql_volume}, score >= {trained.mql_threshold:g})"
        side.add_row(label, _pct(m.precision_at_volume), _pct(r.precision_at_volume))
    console.print(side)
    calibration = Table(title="calibration by decile (1 = highest)", header_style="bold")
    for name in ("decile", "contacts", "mean probability", "converted", "mean rule score", "converted (rules)"):
        calibration.add_column(name, justify="right")
    for a, b in zip(m.calibration, r.calibration, strict=True):
        calibration.add_row(
            str(a["decile"]),
            str(a["contacts"]),
            _pct(a["mean_probability"]),
            _pct(a["observed_rate"]),
            f"{b['mean_score']:.1f}",
            _pct(b["observed_rate"]),
        )
    console.print(calibration)
    strongest = Table(title=f"strongest features (of {len(trained.features)})", header_style="bold")
    for name in ("feature", "coefficient", "weight"):
        strongest.add_column(name, justify="left" if name == "feature" else "right")
    for feature, coefficient, weight in trained.weights()[:top]:
        strongest.add_row(feature.label, f"{coefficient:+.2f}", f"{weight:+.2f}")
    console.print(strongest)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
