"""`leadsync train` on a large portal: time, peak memory, and the held-out metrics of the model and the rules.

A synthetic portal with the planted signal (the sandbox generator: energy managers and procurement-checklist
downloads go on to become customers) is written as a JSON Lines snapshot; then `leadsync train` runs on it in
a child process (as of 180 days before the generator's "now", a 180-day horizon) and its wall time, peak RSS
(the child's own rusage) and the model's and the rule score's held-out ROC AUC, top-decile lift and
precision at the MQL threshold's volume are printed. Prints one line per figure, then one JSON object with
the figures on its last line.

    python bench/train_bench.py [--contacts 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sync.core.model import EmailEvent, FormSubmission
from sync.hubspot.shapes import contact_to_wire, email_event_to_wire, submission_to_wire
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.snapshot import parse_snapshot
from sync.snapshot.lines import write_lines

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "portals" / "example.yaml"
PORTAL_ID = 12345678  # the example config's portal
DAY_MS = 86_400_000
AS_OF_MS = DEFAULT_NOW_MS - 180 * DAY_MS


def write_snapshot(path: Path, contacts: int, seed: int) -> dict[str, Any]:
    """The generated portal as a JSON Lines snapshot; how long generating and writing took."""
    started = time.perf_counter()
    raw = generate_portal(contacts, seed, portal_id=PORTAL_ID).snapshot()
    snapshot = parse_snapshot(raw)
    generated = time.perf_counter() - started

    def pairs() -> Any:
        for contact, events in snapshot.scoring_inputs():
            subs = [("form_submission", submission_to_wire(e)) for e in events if isinstance(e, FormSubmission)]
            mails = [("email_event", email_event_to_wire(e)) for e in events if isinstance(e, EmailEvent)]
            yield contact_to_wire(contact), subs + mails

    with path.open("w", encoding="utf-8") as out:
        write_lines(out, PORTAL_ID, {"form": raw["forms"]}, pairs())
    return {
        "generate_seconds": round(generated, 1),
        "write_seconds": round(time.perf_counter() - started - generated, 1),
        "file_mib": round(path.stat().st_size / 2**20),
    }


def run_train(snapshot: Path, out: Path) -> dict[str, Any]:
    """`leadsync train` in a child process: its wall time, peak RSS (MiB) and the model file it printed."""
    as_of = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(AS_OF_MS / 1000))
    command = [sys.executable, "-m", "sync", "train", "--config", str(CONFIG), "--snapshot", str(snapshot)]
    command += ["--as-of", as_of, "--horizon-days", "180", "--out", str(out), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stdout is not None and child.stderr is not None
    printed = child.stdout.read()  # the child prints once, at its end; its stderr is a few lines at most
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"train failed ({child.returncode}): {err.decode(errors='replace')[-2000:]}")
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "model": json.loads(printed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        snapshot = Path(tmp) / "portal.jsonl"
        written = write_snapshot(snapshot, args.contacts, args.seed)
        print(f"{args.contacts:,} contacts: {written['file_mib']:,} MiB JSON Lines snapshot", file=sys.stderr)
        run = run_train(snapshot, Path(tmp) / "model.json")
    model = run.pop("model")
    metrics = model["metrics"]
    figures = {
        "contacts": args.contacts,
        "snapshot": written,
        "train": run,
        "rows": model["training"]["contacts"],
        "features": len(model["features"]),
        "strongest": [f["label"] for f in model["features"][:5]],
        "held_out": metrics["held_out"],
        "model": {k: v for k, v in metrics["model"].items() if k != "calibration"},
        "rule_score": {k: v for k, v in metrics["rule_score"].items() if k != "calibration"},
        "auc_gain": metrics["auc_gain"],
    }
    print(f"train: {run['seconds']:,} s, peak rss {run['peak_rss_mib']:,} MiB", file=sys.stderr)
    for name in ("roc_auc", "top_decile_lift", "precision_at_mql_volume"):
        print(f"{name:<24} model {figures['model'][name]}  rules {figures['rule_score'][name]}", file=sys.stderr)
    print(f"auc gain {metrics['auc_gain']:+}; strongest: {', '.join(figures['strongest'])}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
