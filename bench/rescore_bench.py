"""The nightly rescore's local part on one core and on every core: stored contacts read and decided, no HTTP.

A SQLite state store is filled with synthetic contacts (score_bench's, ~20 events each), a batch at a time.
Then, in a child process each, the rescore's read-and-decide loop runs over every stored contact:
`Cycle.rescore_pages`, what `Cycle._rescore_stored` does before its writes (the contacts, their events, the
values and stages leadsync wrote, a page at a time; `decide` for each; the history rows of the writes): once
in one process (LEADSYNC_PROCESSES=1), once on every core (the first 20,000 contacts in the process, the rest
in forked workers that each read their own pages from the store, while this process only lists the ids and
takes the outcomes back in order). Prints the contacts/s and the peak memory of each (the largest process,
and the whole tree's PSS), a digest of the decisions (equal: the same writes either way) and the speed-up;
one JSON object with the figures last.

    python bench/rescore_bench.py [--contacts 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from score_bench import NOW_MS, make_batch
from stream_bench import CONFIG, PORTAL_ID, TreeMemory

from sync.config import load_portal
from sync.core.rules import compile_ruleset
from sync.pipeline import Portal, parallel
from sync.pipeline.cycle import Cycle
from sync.pipeline.parallel import cores
from sync.store import schema
from sync.store.contacts import contact_row
from sync.store.events import event_row
from sync.store.state import SqlStateStore

ROOT = Path(__file__).resolve().parent.parent
BATCH = 100  # the cycle's page of contacts (sync.pipeline.cursors.BATCH)
FILL = 2000


def fill(db: str, contacts: int, seed: int) -> int:
    """The store of `contacts` synthetic contacts and their events; returns the events stored.

    The rows are the store's own (`contact_row`, `event_row`), inserted in one transaction of plain INSERTs
    with the events' indexes built once at the end: the sync's upserts (one statement a page, each contact's
    remembered writes cleared, new events counted) are for pages of a portal, and fill a million contacts
    in about 26 minutes; this fills them in about 5."""
    rng = random.Random(seed)
    SqlStateStore(db).close()  # the schema
    engine = sa.create_engine(db)
    now = datetime.now(UTC)
    events = 0
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA synchronous = OFF")
            for index in schema.events.indexes:
                index.drop(conn)
            for start in range(0, contacts, FILL):
                batch = make_batch(rng, start, min(FILL, contacts - start))
                conn.execute(schema.contacts.insert(), [contact_row(PORTAL_ID, c, now) for c, _ in batch])
                rows = [event_row(PORTAL_ID, e) for _, es in batch for e in es]
                conn.execute(schema.events.insert(), rows)
                events += len(rows)
            for index in schema.events.indexes:
                index.create(conn)
    finally:
        engine.dispose()
    return events


class _NoCrm:
    """The source a rescore asks only for the forms and the members of the lists its exclusions name."""

    def forms(self) -> dict[str, str]:
        return {}

    def list_members(self, list_id: int) -> set[str]:
        return set()


def rescore(db: str, processes: int) -> dict[str, Any]:
    """The rescore's read-and-decide loop over every stored contact (in a child process): Cycle.rescore_pages,
    everything the nightly rescore does but send the writes."""
    os.environ[parallel.PROCESSES_ENV] = str(processes)
    loaded = load_portal(CONFIG)
    rules = compile_ruleset(loaded.rules)
    store = SqlStateStore(db)
    crm: Any = _NoCrm()
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=crm)
    digest = hashlib.blake2b(digest_size=16)
    done = writes = failed = 0
    started = time.perf_counter()
    for page in Cycle(portal, "rescore").rescore_pages(NOW_MS):
        for outcome in page.outcomes:
            done += 1
            failed += outcome.error is not None
            write = outcome.write
            if write is not None:
                writes += 1
                write = replace(write, history=write.history and replace(write.history, run_id=""))
            digest.update(repr(replace(outcome, write=write)).encode())
    seconds = time.perf_counter() - started
    store.close()
    return {
        "contacts": done,
        "writes": writes,
        "failed": failed,
        "seconds": round(seconds, 1),
        "digest": digest.hexdigest(),
    }


def run_child(db: str, processes: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", db, "--processes", str(processes)]
    command += ["--parallel-from", str(parallel.PARALLEL_FROM)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")])}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    tree = TreeMemory(child.pid)
    out, err = child.communicate()
    tree.stop()
    if child.returncode != 0:
        raise SystemExit(f"rescore on {processes} failed: {err.decode(errors='replace')[-2000:]}")
    figures: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    figures["peak_tree_pss_mib"] = round(tree.peak / 1024, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000, help="stored contacts (the claim: 1000000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--parallel-from",
        type=int,
        default=parallel.PARALLEL_FROM,
        metavar="N",
        help=f"contacts decided in the process before the workers start (default: {parallel.PARALLEL_FROM:,}, "
        "as the worker does; a small portal's run is dominated by them)",
    )
    parser.add_argument("--child", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    parallel.PARALLEL_FROM = args.parallel_from
    if args.child:
        import resource

        figures = rescore(args.child, args.processes)
        figures["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory(prefix="rescore-bench-") as tmp:
        db = f"sqlite:///{tmp}/state.db"
        started = time.perf_counter()
        events = fill(db, args.contacts, args.seed)
        mib = Path(tmp, "state.db").stat().st_size / 2**20
        print(
            f"{args.contacts:,} contacts, {events:,} events stored ({mib:,.0f} MiB) in "
            f"{time.perf_counter() - started:,.0f} s; this machine has {cores()} cores",
            file=sys.stderr,
        )
        runs = {}
        for processes in (1, cores()):
            run = run_child(db, processes)
            run["contacts_per_second"] = round(run["contacts"] / run["seconds"])
            runs[processes] = run
            print(
                f"rescore on {processes} core{'s' if processes > 1 else ''}: {run['contacts_per_second']:>7,} "
                f"contacts/s ({run['seconds']:,.0f} s), peak rss {run['peak_rss_mib']:,.0f} MiB (all processes "
                f"{run['peak_tree_pss_mib']:,.0f} MiB), {run['writes']:,} contacts to write, decisions {run['digest']}",
                file=sys.stderr,
            )
    one, every = runs[1], runs[max(runs)]
    same = one["digest"] == every["digest"]
    speedup = every["contacts_per_second"] / one["contacts_per_second"]
    print(f"speed-up on {max(runs)} cores: {speedup:.2f}x; the same decisions: {same}", file=sys.stderr)
    print(json.dumps({"contacts": args.contacts, "events": events, "runs": runs, "speedup": round(speedup, 2)}))


if __name__ == "__main__":
    main()
