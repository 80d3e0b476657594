"""Speed to lead: from a demo request submitted in HubSpot to its score and stage written, with webhooks and with
polling only.

For each mode a sandbox portal (in this process, HubSpot's Professional limits) is served to a real `leadsync run`
(a subprocess, SQLite state): with webhooks (the sandbox pushes signed v3 deliveries to the service's --listen
address; the poll, every 15m, is only the safety net) and polling only (`every: 1m`). Twenty demo requests are
submitted for twenty leads, a second or two apart; each is timed from its submission until the sandbox takes the
write of its new score (the stage moves in the same write when the score crosses a threshold). Then the API calls
of an idle hour are worked out: the calls of an idle incremental cycle (measured) times the cycles of an hour, plus
what webhooks cost when nothing happens (nothing: HubSpot calls us). Prints a table, then one JSON object with the
figures on its last line.

    python bench/speed_bench.py [--submissions 20] [--every 1m] [--safety-net 15m]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from sync.config import parse_duration
from sync.sandbox import Portal, Sandbox
from sync.sandbox.generator import generate_portal
from sync.sandbox.webhooks import WebhookPusher

ROOT = Path(__file__).resolve().parent.parent
PORTAL_ID = 7400
SECRET = "bench-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def wait_for(check: Any, timeout: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"not within {timeout}s")


def leads(portal: Portal, n: int) -> list[tuple[str, str]]:
    """`n` leads leadsync scored low (id, email): a demo request moves each past the stage thresholds."""
    found = []
    for cid in sorted(portal.write_counts(), key=int):
        props = portal.contact_properties(cid) or {}
        if props.get("ls_score") and int(props["ls_score"]) < 10 and props.get("lifecyclestage") == "lead":
            found.append((cid, props["email"]))
    if len(found) < n:
        raise SystemExit(f"only {len(found)} low-scored leads in the portal: give more contacts")
    return found[:n]


def run_mode(mode: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    port = free_port()
    pusher = (
        WebhookPusher(f"http://127.0.0.1:{port}/webhooks/hubspot", SECRET, lambda: PORTAL_ID, flush_s=0.2)
        if mode == "webhooks"
        else None
    )
    portal = generate_portal(args.contacts, 5, portal_id=PORTAL_ID)
    with Sandbox(portal, rate_limit="professional", webhooks=pusher) as sandbox:
        every = args.safety_net if mode == "webhooks" else args.every
        config = yaml.safe_load((ROOT / "config" / "portals" / "example.yaml").read_text())
        config["portal"].update(id=PORTAL_ID, name=f"speed-{mode}", base_url=sandbox.url, token_env="BENCH_TOKEN")
        config["portal"]["rate_limit"] = {"per_10s": 190, "daily": 625_000}
        config["schedule"] = {"every": every, "rescore": None, "timezone": "UTC"}
        if mode == "webhooks":
            config["webhooks"] = {"secret_env": "BENCH_WEBHOOK_SECRET"}
        portals = folder / mode
        portals.mkdir()
        (portals / "portal.yaml").write_text(yaml.safe_dump(config))
        log = folder / f"{mode}.log"
        env = {**os.environ, "BENCH_TOKEN": sandbox.token, "BENCH_WEBHOOK_SECRET": SECRET}
        db = f"sqlite:///{folder / mode}.db"
        command = [sys.executable, "-m", "sync", "run", "--config-dir", str(portals), "--db", db,
                   "--listen", f"127.0.0.1:{port}", "--log-format", "json"]  # fmt: skip
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for(lambda: any(e.get("event") == "run_finished" for e in log_events(log)), 120, 0.2)
            time.sleep(1.0)
            latencies, staged = submit_and_time(portal, sandbox, args)
            idle_cycle = idle_cycle_calls(log, portal, args, mode)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    cycles_per_hour = 3600 / (parse_duration(every) or 900)
    return {
        "mode": mode,
        "every": every,
        "median_s": round(statistics.median(latencies), 2),
        "worst_s": round(max(latencies), 2),
        "stage_moved": staged,
        "idle_calls_per_cycle": idle_cycle,
        "idle_calls_per_hour": round(idle_cycle * cycles_per_hour) if idle_cycle is not None else None,
        "webhook_runs": sum(
            1 for e in log_events(log) if e.get("event") == "run_finished" and e.get("kind") == "webhook"
        ),
    }


def submit_and_time(portal: Portal, sandbox: Sandbox, args: argparse.Namespace) -> tuple[list[float], int]:
    """Latencies (s) from submission to the score written, and how many of those writes moved the stage too."""
    rng = random.Random(args.seed)
    form_id = next(f["id"] for f in portal.forms(100, None)["results"] if f["name"] == "Demo request")
    waiting: dict[str, float] = {}
    watch = Watch(portal)
    for i, (cid, email) in enumerate(leads(portal, args.submissions)):
        item = {"formId": form_id, "values": [{"name": "email", "value": email}]}
        portal.add_submissions([item], sandbox.now_ms(), functools.partial(str, f"bench-demo-{i}"))
        waiting[cid] = time.monotonic()
        deadline = time.monotonic() + rng.uniform(0.5, args.spacing * 2 - 0.5)
        while time.monotonic() < deadline:
            watch.look(waiting)
            time.sleep(0.02)
    limit = time.monotonic() + 300
    while waiting and time.monotonic() < limit:
        watch.look(waiting)
        time.sleep(0.02)
    if waiting:
        raise SystemExit(f"{len(waiting)} submissions were not scored within 5 minutes")
    return watch.latencies, watch.staged


class Watch:
    """The sandbox's write log, read as it grows: the first score write to a waiting contact ends its wait."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.seen = len(portal.write_log())
        self.latencies: list[float] = []
        self.staged = 0

    def look(self, waiting: dict[str, float]) -> None:
        now = time.monotonic()
        new = self.portal.write_log(self.seen)
        self.seen += len(new)
        for write in new:
            since = waiting.get(write.contact_id)
            if since is not None and "ls_score" in write.properties:
                self.latencies.append(now - since)
                self.staged += "lifecyclestage" in write.properties
                del waiting[write.contact_id]


def idle_cycle_calls(log: Path, portal: Portal, args: argparse.Namespace, mode: str) -> int | None:
    """The API calls of an incremental cycle that found nothing new (the poll mode's next cycle; in webhook mode
    none runs within the bench, and the poll mode's figure holds for its safety net)."""
    if mode == "webhooks":
        return None

    def idle() -> int | None:
        for e in reversed(log_events(log)):
            if e.get("event") == "run_finished" and e.get("kind") == "incremental":
                # Idle: nothing new, and nothing pulled back either (the cycle after a write reads the contacts
                # the write changed, HubSpot's write-back churn, and finds them unchanged).
                if not e.get("events_new") and not e.get("written") and not e.get("pulled"):
                    return int(e.get("api_calls", 0)) or None
                return None
        return None

    seconds = 5 * (parse_duration(args.every) or 60) + 30  # past the 2-minute look-back over its own writes
    try:
        return int(wait_for(idle, seconds, 0.5))
    except TimeoutError:
        runs = [e for e in log_events(log) if e.get("event") == "run_finished" and e.get("kind") == "incremental"]
        seen = [{k: e.get(k) for k in ("pulled", "events_new", "written", "api_calls")} for e in runs[-4:]]
        print(f"  no idle cycle within {seconds:g} s; the last cycles: {seen}", flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=20, help="demo requests per mode (default 20)")
    parser.add_argument("--contacts", type=int, default=400, help="contacts in the sandbox portal (default 400)")
    parser.add_argument("--every", default="1m", help="the poll interval of the polling-only mode (default 1m)")
    parser.add_argument("--safety-net", default="15m", help="the poll interval beside webhooks (default 15m)")
    parser.add_argument("--spacing", type=float, default=1.5, help="mean seconds between submissions (default 1.5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default="webhooks,polling", help="which modes to run (default webhooks,polling)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            print(f"{mode}: {args.submissions} demo requests ...", flush=True)
            results.append(run_mode(mode, args, Path(tmp)))
    by_mode = {r["mode"]: r for r in results}
    per_cycle = by_mode.get("polling", {}).get("idle_calls_per_cycle")
    if "webhooks" in by_mode and per_cycle is not None:
        # Idle, webhooks cost no call (HubSpot calls us); the safety-net poll costs what an idle cycle does.
        net = 3600 / (parse_duration(args.safety_net) or 900)
        by_mode["webhooks"]["idle_calls_per_cycle"] = per_cycle
        by_mode["webhooks"]["idle_calls_per_hour"] = round(per_cycle * net)
    print(f"{'mode':<10} {'poll every':>10} {'median s':>9} {'worst s':>8} {'idle calls/h':>13}")
    for r in results:
        print(
            f"{r['mode']:<10} {r['every']:>10} {r['median_s']:>9.2f} {r['worst_s']:>8.2f} "
            f"{r['idle_calls_per_hour'] if r['idle_calls_per_hour'] is not None else '-':>13}"
        )
    print(json.dumps({"submissions": args.submissions, "results": results}))


if __name__ == "__main__":
    main()
