"""Operator tools in bounded memory: score, plan, backtest and report on JSON Lines snapshots of growing size.

For each size a synthetic portal (score_bench's contacts, ~20 events each, the example config's forms) is
written as a JSON Lines snapshot a batch at a time, never held whole; then each tool runs on it in a child
process (`python -m sync ... --snapshot FILE`, its output thrown away), once in one process
(LEADSYNC_PROCESSES=1) and once on every core (a large file is read, and worked through, by forked workers: see
sync/snapshot/pieces.py), and its peak RSS (the child's own rusage: the largest process), the peak of the
whole process tree and its contacts/s are printed. Flat memory means the peak does not grow with the contact
count. Prints one line per run, then one JSON object with the figures on its last line.

    python bench/stream_bench.py [--sizes 100000,300000,1000000] [--tools score,plan,backtest,report]
                                 [--processes 1,2]

The default sizes (20k, 50k, 100k) keep `make bench` short; the flat curve is claimed at 100k, 300k and 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from score_bench import FORMS, NOW, make_batch

from sync.core.model import EmailEvent, FormSubmission
from sync.hubspot.shapes import contact_to_wire, email_event_to_wire, submission_to_wire
from sync.pipeline.parallel import PROCESSES_ENV, cores
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


def run_tool(tool: str, snapshot: Path, tmp: str, processes: int) -> dict[str, Any]:
    """One tool on the snapshot in a child process on `processes`: its peak RSS (MiB), the peak of its whole
    process tree (the tool and the workers it forks, their proportional set sizes summed: shared pages counted
    once) and its wall time."""
    args = [a.format(tmp=tmp) for a in TOOLS[tool]]
    command = [sys.executable, "-m", "sync", *args, "--config", str(CONFIG), "--snapshot", str(snapshot)]
    command += ["--now", NOW.isoformat()]
    figures, _ = measured(tool, command, {"PYTHONPATH": str(ROOT), PROCESSES_ENV: str(processes)})
    return figures


def measured(what: str, command: list[str], env: dict[str, str]) -> tuple[dict[str, Any], str]:
    """`command` in a child process (its output thrown away, `env` added to this one's): its peak RSS (MiB),
    the peak of its whole process tree (the child and the workers it forks, their proportional set sizes
    summed: shared pages counted once), its wall time, and what it said on stderr. A failure ends the run."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **env}, cwd=ROOT
    )
    tree = TreeMemory(child.pid)
    assert child.stderr is not None
    err = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    tree.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{what} failed ({child.returncode}): {err[-2000:]}")
    figures = {
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # the largest single process of the tree
        "peak_tree_pss_mib": round(tree.peak / 1024, 1),
        "seconds": round(seconds, 1),
    }
    return figures, err


class TreeMemory:
    """Samples a process and its children's summed PSS (Linux /proc) every 0.2 s; `peak` in KiB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            self.peak = max(self.peak, sum(_pss_kib(p) for p in _tree(self.pid)))


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return pids


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        default="20000,50000,100000",
        help="contact counts, comma-separated (the flat curve is claimed at 100000,300000,1000000)",
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help="tools to run, comma-separated")
    parser.add_argument(
        "--processes", default=f"1,{cores()}", help=f"process counts to run each tool on (default: 1,{cores()})"
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = [t for t in args.tools.split(",") if t]
    counts = sorted({int(p) for p in args.processes.split(",")})
    figures: dict[str, Any] = {"tools": {t: {} for t in tools}, "snapshots": {}, "cores": cores()}
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
                for processes in counts:
                    run = run_tool(tool, path, tmp, processes)
                    run["contacts_per_second"] = round(size / run["seconds"])
                    figures["tools"][tool].setdefault(processes, {})[size] = run
                    print(
                        f"{size:>9,} contacts  {tool:<8} on {processes}  peak rss {run['peak_rss_mib']:>6,.0f} MiB  "
                        f"(all processes {run['peak_tree_pss_mib']:>5,.0f} MiB)  "
                        f"{run['contacts_per_second']:>7,} contacts/s  ({run['seconds']:,.0f} s)",
                        file=sys.stderr,
                    )
            path.unlink()
    tool_runs = figures["tools"].items()
    figures["growth"] = {tool: {p: flatness(runs, sizes) for p, runs in by.items()} for tool, by in tool_runs}
    for tool, by in figures["growth"].items():
        for processes, growth in by.items():
            if growth is not None:
                print(
                    f"{tool:<8} on {processes}: peak rss from {sizes[0]:,} to {sizes[-1]:,} contacts: "
                    f"{growth['rss']:+.0%} (all processes {growth['tree']:+.0%})",
                    file=sys.stderr,
                )
    if len(counts) > 1:
        one, every = counts[0], counts[-1]
        for tool, by in figures["tools"].items():
            rates = [by[every][n]["contacts_per_second"] / by[one][n]["contacts_per_second"] for n in sizes]
            figures.setdefault("speedup", {})[tool] = [round(r, 2) for r in rates]
            shown = ", ".join(f"{r:.2f}x at {n:,}" for r, n in zip(rates, sizes, strict=True))
            print(f"{tool:<8} on {every} against {one}: {shown}", file=sys.stderr)
    print(json.dumps(figures))


def flatness(runs: dict[int, dict[str, Any]], sizes: list[int]) -> dict[str, float] | None:
    """The peak RSS growth (the largest process, and the whole tree) from the smallest size to the largest
    (0.1 is 10%): flat memory is near 0."""
    if len(sizes) < 2:
        return None
    first, last = runs[sizes[0]], runs[sizes[-1]]
    return {
        "rss": last["peak_rss_mib"] / first["peak_rss_mib"] - 1,
        "tree": last["peak_tree_pss_mib"] / first["peak_tree_pss_mib"] - 1,
    }


if __name__ == "__main__":
    main()
