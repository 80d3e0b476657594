"""`leadsync suggest`: point values from a trained model, as a YAML patch to review, back-tested."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sync.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    _add_config_option,
    _add_now_option,
    _int_at_least,
    _load_dataset,
    _now,
    _quiet_logging,
    _report_problems,
)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    suggest = commands.add_parser(
        "suggest",
        help="point values from a trained model, as a YAML patch to review, back-tested",
        description="Turn a model's coefficients (leadsync train) into point values for the rule language: the "
        "features the rules do not have yet become rules (learned-...) in a YAML patch a person reviews; the "
        "rules the file has are listed with the points the model would give them. The patch is then back-tested "
        "against the current rules on the same contacts (as leadsync backtest computes it): the score's ROC AUC "
        "and each threshold's precision, recall and lift, side by side. Reads the live portal (read-only) unless "
        "--snapshot is given.",
    )
    _add_config_option(suggest)
    suggest.add_argument("--model", required=True, metavar="M", help="the model file leadsync train wrote")
    suggest.add_argument("--snapshot", metavar="S", help="back-test on a snapshot file instead of the live portal")
    suggest.add_argument("--out", metavar="FILE", help="also write the YAML patch to this file")
    suggest.add_argument(
        "--outcome",
        metavar="PROPERTY=V1|V2",
        help="the backtest's outcome (default: lifecyclestage=opportunity|customer)",
    )
    _add_now_option(suggest)
    suggest.add_argument(
        "--points-per-logit",
        type=float,
        metavar="K",
        help="points per unit of log-odds (default: the model's strongest rule hit is worth what it gives now)",
    )
    suggest.add_argument(
        "--min-points",
        type=_int_at_least(1),
        default=3,
        metavar="N",
        help="suggest no rule worth fewer points (default: 3)",
    )
    suggest.add_argument(
        "--limit", type=_int_at_least(1), default=12, metavar="N", help="suggest at most N rules (default: 12)"
    )
    suggest.add_argument("--json", action="store_true", help="the patch and the backtests as one JSON object")
    suggest.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sync.config import build_portal
    from sync.config.model_file import read_model
    from sync.core.rules import compile_ruleset
    from sync.learn.config import load_rules_only
    from sync.learn.suggest import comparison, patch_text, patched, suggest
    from sync.reports.backtest import DEFAULT_OUTCOME, parse_outcome, run_backtest
    from sync.yamlsource import load_with_extends

    _quiet_logging()
    now = _now(args.now)
    outcome = parse_outcome(args.outcome or DEFAULT_OUTCOME)
    _, model_file = read_model(args.model, "--model")
    loaded, _ = load_rules_only(args.config)
    rules = compile_ruleset(loaded.rules)
    if model_file.ruleset_version != rules.version:
        print(
            f"{args.model}: note: trained with rule set {model_file.ruleset_version}, the file now has {rules.version}",
            file=sys.stderr,
        )
    suggestion = suggest(
        model_file, loaded.rules, points_per_logit=args.points_per_logit, min_points=args.min_points, limit=args.limit
    )
    text = patch_text(suggestion, model_file, args.config)
    data, lines = load_with_extends(Path(args.config))
    data.pop("predictive", None)
    candidate = compile_ruleset(build_portal(patched(data, suggestion), Path(args.config), lines).rules)
    dataset = _load_dataset(args, loaded, [rules, candidate], now, [outcome.property])
    _report_problems(dataset.problems)
    now_ms = int(now.timestamp() * 1000)
    current = run_backtest(dataset.inputs(), rules, now_ms, outcome)
    suggested = run_backtest(dataset.inputs(), candidate, now_ms, outcome)
    compared = comparison(current, suggested)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"leadsync suggest: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(json.dumps({"model": model_file.version, "patch": text, "backtest": compared}, indent=2))
    else:
        print(text)
        print_comparison(compared, outcome_text=str(outcome))
    return EXIT_OK


def print_comparison(compared: dict[str, Any], outcome_text: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    table = Table(
        title=f"backtest on {compared['contacts']} contacts ({outcome_text}, base rate "
        f"{_pct(compared['base_rate'])}): current rules and with the patch",
        header_style="bold",
    )
    for name in ("", "current", "with the patch"):
        table.add_column(name, justify="right")
    now, new = compared["current"], compared["suggested"]
    table.add_row("score ROC AUC", _num(now["score_auc"]), _num(new["score_auc"]))
    for a, b in zip(now["thresholds"], new["thresholds"], strict=True):
        where = f"{a['stage']} (score >= {a['min_score']:g})"
        table.add_row(f"{where}: qualified", str(a["qualified"]), str(b["qualified"]))
        table.add_row("  precision", _pct(a["precision"]), _pct(b["precision"]))
        table.add_row("  recall", _pct(a["recall"]), _pct(b["recall"]))
        table.add_row("  lift", _num(a["lift"]), _num(b["lift"]))
    console.print(table)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
