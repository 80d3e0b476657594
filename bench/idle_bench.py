"""What an idle portal costs: the API calls of one incremental cycle with nothing new, and per hour at `every: 1m`.

A sandbox portal of N forms (in this process, over loopback with the real SDK, its clock moved by hand) is synced
in full, then incrementally until the full run's own writes are behind the lookback. Then one idle incremental
cycle is measured twice: as it runs now (the form poll: one contacts search for new conversions) and with the
poll's cursor hidden, so that it sweeps every form the way every incremental cycle used to (the form list, then one
submissions read per form; the code before the poll also read each exclusion list every cycle, one call more).
Then one new form submission: what the poll spends to find it. Prints one JSON object on its last line.

    python bench/idle_bench.py [--forms 25] [--contacts 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import structlog
import yaml

from sync.app import open_portal
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import CONVERSIONS_CURSOR, Cycle, Kind, Portal
from sync.sandbox import Portal as SandboxPortal
from sync.sandbox import Sandbox
from sync.sandbox.records import FormRecord
from sync.store.state import SqlStateStore
from sync.yamlsource import load_yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "portals" / "example.yaml"
TOKEN_ENV = "LEADSYNC_IDLE_BENCH_TOKEN"
PORTAL_ID = 12345678
T0_MS = 1_790_000_000_000
DAY_MS = 86_400_000
CYCLES_PER_HOUR = 60  # schedule.every: 1m


class Clock:
    """The bench's clock: it moves only when told (the sandbox's and the cycle's)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)

    def seconds(self) -> float:
        return self.ms / 1000

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


class WithoutPoll(SqlStateStore):
    """The store, with the poll's cursor hidden: every incremental cycle sweeps every form, as before the poll."""

    def get_cursor(self, portal_id: int, stream: str) -> str | None:
        return None if stream == CONVERSIONS_CURSOR else super().get_cursor(portal_id, stream)


def build_portal(forms: int, contacts: int) -> SandboxPortal:
    created = T0_MS - 400 * DAY_MS
    portal = SandboxPortal(PORTAL_ID, created_ms=created)
    portal.add_form(FormRecord("f-000", "Demo request", created))
    for i in range(1, forms):
        portal.add_form(FormRecord(f"f-{i:03}", f"Newsletter {i}", created))
    portal.set_list(42, "Employees", {})
    rows = [
        (cid, {"email": f"buyer{cid}@buyer-corp.com", "lifecyclestage": "lead"}, created, created)
        for cid in range(1, contacts + 1)
    ]
    portal.bulk_load(rows)
    return portal


def config_file(folder: Path, url: str) -> Path:
    config: dict[str, Any] = load_yaml(EXAMPLE)[0]
    config["portal"].update(base_url=url, token_env=TOKEN_ENV)
    config["portal"]["rate_limit"] = {"per_10s": 100_000, "daily": 100_000_000, "search_per_second": 10_000}
    file = folder / "portal.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def requests_by_route(sb: Sandbox) -> dict[str, int]:
    stats = requests.get(f"{sb.url}/__sandbox/stats", timeout=30).json()["requests"]
    return {route: sum(by_status.values()) for route, by_status in stats.items()}


def cycle(sb: Sandbox, portal: Portal, kind: Kind = "incremental") -> tuple[int, dict[str, int]]:
    """One cycle: its API calls (as the portal counts them) and the sandbox's requests by route."""
    before = requests_by_route(sb)
    summary = Cycle(portal, kind).run()
    if summary.status != "ok":
        raise SystemExit(f"the {kind} cycle failed: {summary.error}")
    after = requests_by_route(sb)
    by_route = {route: n - before.get(route, 0) for route, n in sorted(after.items()) if n - before.get(route, 0)}
    return summary.counts["api_calls"], by_route


def measure(forms: int, contacts: int, folder: Path) -> dict[str, Any]:
    clock = Clock(T0_MS)
    policy = RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None)
    with Sandbox(build_portal(forms, contacts), rate_limit="off", clock=clock.seconds) as sb:
        os.environ[TOKEN_ENV] = sb.token
        file = config_file(folder, sb.url)
        store = SqlStateStore(f"sqlite:///{folder / 'state.db'}")
        portal = open_portal(file, store, policy)
        portal.clock = clock
        cycle(sb, portal, "full")
        for _ in range(2):  # until the full run's own writes are behind the lookback
            clock.advance(600)
            cycle(sb, portal)
        clock.advance(60)
        idle_calls, idle_routes = cycle(sb, portal)
        print(f"idle cycle, form poll: {idle_calls} calls {idle_routes}", file=sys.stderr)

        sweeping = open_portal(file, WithoutPoll(f"sqlite:///{folder / 'state.db'}"), policy)
        sweeping.clock = clock
        cycle(sb, sweeping)  # its first cycle checks the token's portal and the properties: not idle cost
        clock.advance(60)
        sweep_calls, sweep_routes = cycle(sb, sweeping)
        print(f"idle cycle, every form swept: {sweep_calls} calls {sweep_routes}", file=sys.stderr)

        clock.advance(60)
        cycle(sb, portal)  # the poll again past the sweeping cycles: idle
        submission = {
            "formId": "f-000",
            "submittedAt": clock.ms,
            "values": [{"name": "email", "value": "buyer3@buyer-corp.com"}],
        }
        requests.post(f"{sb.url}/__sandbox/form_submissions", json=[submission], timeout=30).raise_for_status()
        clock.advance(60)
        new_calls, new_routes = cycle(sb, portal)
        print(f"a cycle with one new demo request: {new_calls} calls {new_routes}", file=sys.stderr)
        store.close()
    return {
        "forms": forms,
        "contacts": contacts,
        "idle_cycle_calls": idle_calls,
        "idle_calls_per_hour_every_1m": idle_calls * CYCLES_PER_HOUR,
        "idle_cycle_calls_sweeping_every_form": sweep_calls,
        "idle_calls_per_hour_every_1m_sweeping_every_form": sweep_calls * CYCLES_PER_HOUR,
        "one_new_submission_cycle_calls": new_calls,
        "one_new_submission_calls_by_route": new_routes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forms", type=int, default=25, help="forms in the portal (default 25)")
    parser.add_argument("--contacts", type=int, default=200, help="contacts in the portal (default 200)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # the figures only
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(args.forms, args.contacts, Path(folder))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
