"""API calls of the account pass: a full backfill of a sandbox portal with companies, with and without accounts.

Two `sync --full` cycles over loopback HTTP, each on a fresh SQLite store: example.yaml's contact rules alone,
then accounts-example.yaml (the same rules plus an `accounts:` section, which pulls the companies and the
contacts' associations and writes every company's score). Prints the calls by endpoint of each, then one JSON
object with the figures on its last line. The target: the account pass adds at most 0.03 calls per contact.

    python bench/accounts_bench.py [--contacts 20000] [--companies-per 8]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import structlog
import yaml

from sync.app import open_portal
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.state import SqlStateStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "LEADSYNC_BENCH_TOKEN"
PORTAL_ID = 12345679  # accounts-example.yaml's


def write_configs(work: Path, sb: Sandbox) -> None:
    """example.yaml pointed at the sandbox, and accounts-example.yaml beside it (it extends example.yaml)."""
    os.environ[TOKEN_ENV] = sb.token
    base = yaml.safe_load((ROOT / "config" / "portals" / "example.yaml").read_text())
    base["portal"].update(id=PORTAL_ID, base_url=sb.url, token_env=TOKEN_ENV)
    base["portal"]["rate_limit"] = {"per_10s": 1_000_000, "daily": 100_000_000, "search_per_second": 100_000}
    (work / "example.yaml").write_text(yaml.safe_dump(base))
    (work / "accounts.yaml").write_text((ROOT / "config" / "portals" / "accounts-example.yaml").read_text())


def full_sync(config: Path, workdir: Path) -> tuple[Counter[str], dict[str, int], float]:
    """Calls by endpoint, the run's counts and its seconds for one full cycle on a fresh store."""
    store = SqlStateStore(f"sqlite:///{workdir / (config.stem + '.db')}")
    try:
        portal = open_portal(config, store, RetryPolicy(attempts=3, base_wait=0.01))
        began = time.monotonic()
        summary = Cycle(portal, "full").run()
        seconds = time.monotonic() - began
        if summary.status != "ok":
            raise SystemExit(f"{config.name}: the cycle ended {summary.status}: {summary.error}")
        calls: Counter[str] = Counter()
        for (endpoint, _status), n in portal.api_calls().items():
            calls[endpoint] += n
        return calls, summary.counts, seconds
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--companies-per", type=int, default=8, help="contacts per company (default 8)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    companies = max(1, args.contacts // args.companies_per)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    figures: dict[str, object] = {"contacts": args.contacts, "companies": companies}
    runs = {}
    for name in ("example", "accounts"):
        # The same portal afresh for each (the generator is deterministic): both backfills start from nothing.
        print(f"generating {args.contacts} contacts and {companies} companies ...", flush=True)
        hubspot = generate_portal(args.contacts, args.seed, portal_id=PORTAL_ID, companies=companies)
        with tempfile.TemporaryDirectory() as tmp, Sandbox(hubspot, rate_limit="off") as sb:
            work = Path(tmp)
            write_configs(work, sb)
            calls, counts, seconds = full_sync(work / f"{name}.yaml", work)
            total = sum(calls.values())
        print(f"\n{name}.yaml: {total} calls in {seconds:.1f} s ({total / args.contacts:.4f} per contact)")
        for endpoint, n in sorted(calls.items()):
            print(f"  {endpoint:40} {n:7}")
        runs[name] = {"calls": dict(calls), "total": total, "per_contact": total / args.contacts, "counts": counts}
    extra = runs["accounts"]["total"] - runs["example"]["total"]
    per_contact = extra / args.contacts
    print(f"\nthe account pass adds {extra} calls: {per_contact:.4f} per contact (target <= 0.03)")
    figures.update(
        calls_per_contact_without_accounts=runs["example"]["per_contact"],
        calls_per_contact_with_accounts=runs["accounts"]["per_contact"],
        extra_calls=extra,
        extra_calls_per_contact=per_contact,
        calls_without_accounts=runs["example"]["calls"],
        calls_with_accounts=runs["accounts"]["calls"],
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
