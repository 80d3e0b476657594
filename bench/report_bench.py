"""Operator tools on a large portal: load a snapshot, plan, backtest and render the HTML report.

A synthetic portal (the sandbox generator, planted signal on) is written as a
snapshot file, then each step is timed in this process with the example
config. Prints one line per step, then one JSON object with the figures.

    python bench/report_bench.py [--contacts 50000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.reports.backtest import DEFAULT_OUTCOME, parse_outcome, run_backtest
from sync.reports.dataset import from_snapshot
from sync.reports.plan import build_plan
from sync.reports.report import ReportInputs, render_report
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rules = compile_ruleset(load_portal(ROOT / "config" / "portals" / "example.yaml").rules)
    figures: dict[str, float | int] = {"contacts": args.contacts}
    with tempfile.TemporaryDirectory(prefix="leadsync-bench-") as tmp:
        snapshot = Path(tmp) / "portal.json"
        snapshot.write_text(json.dumps(generate_portal(args.contacts, args.seed).snapshot()), encoding="utf-8")
        figures["snapshot_mib"] = round(snapshot.stat().st_size / 2**20, 1)

        def step(name: str, work: Callable[[], T]) -> T:
            began = time.perf_counter()
            result = work()
            seconds = time.perf_counter() - began
            figures[f"{name}_s"] = round(seconds, 2)
            figures[f"{name}_contacts_per_s"] = round(args.contacts / seconds)
            print(f"{name}: {seconds:.2f} s ({args.contacts / seconds:,.0f} contacts/s), peak RSS {rss_mib():.0f} MiB")
            return result

        data = step("load", lambda: from_snapshot(snapshot))
        step("plan", lambda: build_plan(data.inputs(), rules, DEFAULT_NOW_MS, source="bench"))
        backtest = step(
            "backtest",
            lambda: run_backtest(data.inputs(), rules, DEFAULT_NOW_MS, parse_outcome(DEFAULT_OUTCOME)),
        )
        page = step("report", lambda: render_report(backtest, ReportInputs("bench", "snapshot", None)))
    figures["report_kib"] = round(len(page.encode()) / 1024)
    figures["peak_rss_mib"] = round(rss_mib())  # generating the portal included
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
