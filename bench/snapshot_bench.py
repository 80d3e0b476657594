"""`leadsync snapshot --out FILE.jsonl` in bounded memory: live portals of growing size saved as JSON Lines.

For each size the local HubSpot sandbox serves a synthetic portal of that many contacts in a child process
(`python -m sync sandbox --contacts N --seed 7 --rate-limit off --json`), and `python -m sync snapshot --out
FILE.jsonl` reads it, read-only, in another (example.yaml pointed at the sandbox, its output thrown away): the
portal's events spilled to a temporary file by email, the contacts read a page at a time, each written with
its events as it comes. Its peak RSS (the child's own rusage: the largest process), the peak of its whole
process tree (PSS) and its contacts/s are printed, with the contacts and events the file holds (its lines
counted by kind; every contact of the portal must be there). Flat memory means the peak does not grow with
the contact count. Prints one line per size, then the growth of the peak from the smallest size to the
largest, then one JSON object with the figures on its last line.

    python bench/snapshot_bench.py [--sizes 20000,50000,100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from stream_bench import CONFIG, flatness, measured

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "LEADSYNC_BENCH_TOKEN"
LINE_START = b'{"record": "'  # how every record line of a JSON Lines snapshot begins (sync.snapshot.lines)
EVENT_KINDS = ("form_submission", "email_event")


def start_sandbox(contacts: int, seed: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`leadsync sandbox` serving a synthetic portal of `contacts`, no rate limit, in a child process; what it
    printed once serving (its URL, token and portal id)."""
    command = [sys.executable, "-m", "sync", "sandbox", "--contacts", str(contacts), "--seed", str(seed)]
    command += ["--port", "0", "--rate-limit", "off", "--json"]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # its one line, once the portal is generated and the port open
    if not line:
        proc.wait()
        raise SystemExit(f"the sandbox of {contacts:,} contacts ended before serving ({proc.returncode})")
    info: dict[str, Any] = json.loads(line)
    return proc, info


def stop_sandbox(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def portal_config(folder: Path, sandbox: dict[str, Any]) -> Path:
    """example.yaml pointed at the sandbox, with rate limits that never slow the read."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    config["portal"].update(id=sandbox["portal_id"], base_url=sandbox["url"], token_env=TOKEN_ENV)
    config["portal"]["rate_limit"] = {"per_10s": 1_000_000, "daily": 100_000_000, "search_per_second": 100_000}
    path = folder / "portal.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_snapshot(config: Path, out: Path, token: str) -> dict[str, Any]:
    """`leadsync snapshot` in a child process: its peak RSS (MiB), the peak of its whole process tree (PSS
    summed: shared pages counted once), its wall time and the API calls it reports."""
    command = [sys.executable, "-m", "sync", "snapshot", "--config", str(config), "--out", str(out)]
    figures, err = measured("snapshot", command, {"PYTHONPATH": str(ROOT), TOKEN_ENV: token})
    calls = re.search(r"\((\d+) API calls\)", err)
    return {**figures, "api_calls": int(calls.group(1)) if calls else None}


def count_records(path: Path) -> Counter[str]:
    """The file's records by kind, read off the start of each line (no line is parsed)."""
    counts: Counter[str] = Counter()
    with path.open("rb") as file:
        for line in file:
            if line.startswith(LINE_START):
                end = line.find(b'"', len(LINE_START))
                counts[line[len(LINE_START) : end].decode()] += 1
    return counts


def measure(size: int, seed: int, tmp: Path) -> dict[str, Any]:
    """One size: its sandbox started, the snapshot taken and measured, its file counted; the sandbox stopped."""
    started = time.perf_counter()
    proc, sandbox = start_sandbox(size, seed)
    try:
        ready = time.perf_counter() - started
        out = tmp / "portal.jsonl"
        run = run_snapshot(portal_config(tmp, sandbox), out, sandbox["token"])
    finally:
        stop_sandbox(proc)
    kinds = count_records(out)
    mib = out.stat().st_size / 2**20
    out.unlink()
    if kinds["contact"] != size:
        raise SystemExit(f"the snapshot of a portal of {size:,} contacts holds {kinds['contact']:,} contacts")
    return {
        "contacts": kinds["contact"],
        "events": sum(kinds[k] for k in EVENT_KINDS),
        "records": dict(sorted(kinds.items())),
        "file_mib": round(mib, 1),
        **run,
        "contacts_per_second": round(size / run["seconds"]),
        "sandbox_start_seconds": round(ready, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="20000,50000,100000", help="contact counts, comma-separated")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic portal (default 7)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runs: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="snapshot-bench-") as tmp:
        for size in sizes:
            run = runs[size] = measure(size, args.seed, Path(tmp))
            print(
                f"{size:>9,} contacts: {run['contacts']:,} contacts and {run['events']:,} events written, "
                f"{run['file_mib']:,.1f} MiB  peak rss {run['peak_rss_mib']:>6,.0f} MiB  "
                f"(all processes {run['peak_tree_pss_mib']:>5,.0f} MiB)  "
                f"{run['contacts_per_second']:>7,} contacts/s  ({run['seconds']:,.1f} s, {run['api_calls']} API calls)",
                file=sys.stderr,
            )
    growth = flatness(runs, sizes)
    if growth is not None:
        print(
            f"peak rss from {sizes[0]:,} to {sizes[-1]:,} contacts: {growth['rss']:+.0%} "
            f"(all processes {growth['tree']:+.0%})",
            file=sys.stderr,
        )
    rounded = {k: round(v, 3) for k, v in growth.items()} if growth is not None else None
    print(json.dumps({"seed": args.seed, "sizes": runs, "growth": rounded}))


if __name__ == "__main__":
    main()
