"""Operator tools in bounded memory: score, plan, backtest and report on JSON Lines snapshots of growing size.

For each size a synthetic portal (score_bench's contacts, ~20 events each, the example config's forms) is
written as a JSON Lines snapshot a batch at a time, never held whole; then each tool runs on it in a child
process (`python -m sync ... --snapshot FILE`, its output thrown away) and its peak RSS (the child's own
rusage) and contacts/s are printed. Flat memory means the peak does not grow with the contact count.
Prints one line per run, then one JSON object with the figures on its last line.

    python bench/stream_bench.py [--sizes 100000,300000,1000000] [--tools score,plan,backtest,report]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from score_bench import FORMS, NOW, make_batch

from sync.core.model import EmailEvent, FormSubmission
from sync.hubspot.shapes import contact_to_wire, email_event_to_wire, submission_to_wire
from sync.snapshot.lines import write_lines

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "portals" / "example.yaml"
PORTAL_ID = 12345678  # the example config's portal
BATCH = 2000
TOOLS = {
    "score": ["score", "--jsonl"],
    "plan": ["plan", "--json"],
    "backtest": ["backtest", "--json"],
    "report": ["report", "--json", "--out", "{tmp}/report.html", "--db", "sqlite:///{tmp}/none.db"],
}


def write_snapshot(out: IO[str], contacts: int, seed: int) -> int:
    """A synthetic portal of `contacts` as JSON Lines, generated and written a batch at a time; its events."""
    rng = random.Random(seed)
    total = 0

    def pairs() -> Any:
        nonlocal total
        for start in range(0, contacts, BATCH):
            for contact, events in make_batch(rng, start, min(BATCH, contacts - start)):
                total += len(events)
                subs = [("form_submission", submission_to_wire(e)) for e in events if isinstance(e, FormSubmission)]
                mails = [("email_event", email_event_to_wire(e)) for e in events if isinstance(e, EmailEvent)]
                yield contact_to_wire(contact), subs + mails

    forms = [{"id": form_id, "name": name} for form_id, name in FORMS]
    write_lines(out, PORTAL_ID, {"form": forms}, pairs())
    return total


def run_tool(tool: str, snapshot: Path, tmp: str) -> dict[str, Any]:
    """One tool on the snapshot in a child process: its peak RSS (MiB) and wall time."""
    args = [a.format(tmp=tmp) for a in TOOLS[tool]]
    command = [sys.executable, "-m", "sync", *args, "--config", str(CONFIG), "--snapshot", str(snapshot)]
    command += ["--now", NOW.isoformat()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{tool} failed ({child.returncode}): {err.decode(errors='replace')[-2000:]}")
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,300000,1000000", help="contact counts, comma-separated")
    parser.add_argument("--tools", default=",".join(TOOLS), help="tools to run, comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = [t for t in args.tools.split(",") if t]
    figures: dict[str, Any] = {"tools": {t: {} for t in tools}, "snapshots": {}}
    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        for size in sizes:
            path = Path(tmp) / f"portal-{size}.jsonl"
            started = time.perf_counter()
            with path.open("w", encoding="utf-8") as out:
                events = write_snapshot(out, size, args.seed)
            mib = path.stat().st_size / 2**20
            figures["snapshots"][size] = {"events": events, "file_mib": round(mib), "write_seconds": round(
                time.perf_counter() - started, 1)}  # fmt: skip
            print(f"{size:>9,} contacts: {events:,} events, {mib:,.0f} MiB snapshot", file=sys.stderr)
            for tool in tools:
                run = run_tool(tool, path, tmp)
                run["contacts_per_second"] = round(size / run["seconds"])
                figures["tools"][tool][size] = run
                print(
                    f"{size:>9,} contacts  {tool:<8}  peak rss {run['peak_rss_mib']:>7,.0f} MiB  "
                    f"{run['contacts_per_second']:>7,} contacts/s  ({run['seconds']:,.0f} s)",
                    file=sys.stderr,
                )
            path.unlink()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
