"""An agency on one PostgreSQL store: many small sandbox portals shared by a few replicas.

Every portal is a sandbox in this process (a HubSpot-compatible API on loopback) with a portal file syncing it
every --every seconds; every replica is a real `leadsync run` process (scheduler, leases, heartbeats, fenced
cycles), read through its /healthz and /metrics. The figures:

- the start: how long until the replicas, started together, hold a fair share each (every portal held by
  exactly one replica), and the spread (most held - fewest held);
- the steady state: per replica, the portals held and the runs done over --steady seconds;
- a death: one replica is killed (SIGKILL: nothing released); the time until the survivors hold all the
  portals, and their spread;
- a birth: a new replica starts; the time until it holds its share.

Prints progress, then one JSON object with the figures on its last line.

    python bench/agency_bench.py [--portals 60] [--replicas 3] [--ttl 3] [--steady 15] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import yaml

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.schema import database_url

ROOT = Path(__file__).resolve().parent.parent
TOKEN_ENV = "LEADSYNC_AGENCY_TOKEN"
DEFAULT_PG = os.environ.get("LEADSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def portal_file(folder: Path, index: int, sandbox: Sandbox, every: float) -> None:
    config: dict[str, Any] = yaml.safe_load((ROOT / "config" / "portals" / "example.yaml").read_text())
    config["portal"].update(id=9000 + index, name=f"client-{index:03d}", base_url=sandbox.url, token_env=TOKEN_ENV)
    config["portal"]["rate_limit"] = {"per_10s": 100_000, "daily": 100_000_000, "search_per_second": 10_000}
    config["schedule"] = {"every": f"{every:g}s", "rescore": None, "timezone": "UTC"}
    (folder / f"client-{index:03d}.yaml").write_text(yaml.safe_dump(config))


class Replica:
    """A `leadsync run` process on the shared store, its /healthz and /metrics on a port of its own."""

    def __init__(self, folder: Path, url: str, name: str, ttl: float, token: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        command = [sys.executable, "-m", "sync", "run", "--config-dir", str(folder), "--db", url,
                   "--listen", f"127.0.0.1:{self.port}", "--lease-ttl", f"{ttl:g}", "--log-format", "json",
                   "--log-level", "warning"]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, TOKEN_ENV: token},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def health(self) -> dict[str, Any] | None:
        try:
            reply = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=5)
        except requests.RequestException:
            return None
        found: dict[str, Any] = reply.json()
        return found

    def held(self) -> set[str] | None:
        """The portals this replica holds, by its /healthz (None while it does not answer)."""
        health = self.health()
        if health is None:
            return None
        return {name for name, portal in health["portals"].items() if portal["leased_here"]}

    def loaded(self, portals: int) -> bool:
        health = self.health()
        return health is not None and len(health["portals"]) == portals

    def runs(self) -> int:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return int(
            sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("leadsync_runs_total{"))
        )

    def crash(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # nothing released: its leases and heartbeat run out
        self.proc.wait(30)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def balanced(replicas: list[Replica], portals: int, fair: Callable[[dict[str, int]], bool]) -> dict[str, int] | None:
    """Each replica's count, once every portal is held by exactly one of them and `fair` says the counts are."""
    found = {r.name: r.held() for r in replicas}
    held = {name: ids for name, ids in found.items() if ids is not None}
    if len(held) != len(found):
        return None
    owners = Counter(pid for ids in held.values() for pid in ids)
    if len(owners) != portals or set(owners.values()) != {1}:
        return None
    counts = {name: len(ids) for name, ids in held.items()}
    return counts if fair(counts) else None


def wait(check: Callable[[], dict[str, int] | None], timeout: float) -> tuple[float, dict[str, int] | None]:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        found = check()
        if found:
            return time.monotonic() - began, found
        time.sleep(0.1)
    return time.monotonic() - began, None


def even(portals: int, replicas: int) -> Callable[[dict[str, int]], bool]:
    top = -(-portals // replicas)
    return lambda counts: max(counts.values()) <= top and min(counts.values()) >= portals // replicas


def schema_url(base: str) -> tuple[str, Callable[[], None]]:
    """A schema of its own on the server (dropped at the end), so the bench never meets other data."""
    name = f"leadsync_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(database_url(base))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    url = database_url(base).update_query_dict({"options": f"-csearch_path={name}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def spread_of(counts: dict[str, int] | None) -> int | None:
    return None if counts is None else max(counts.values()) - min(counts.values())


def start_phase(replicas: list[Replica], portals: int, ttl: float) -> dict[str, Any]:
    loaded, _ = wait(lambda: {"": 1} if all(r.loaded(portals) for r in replicas) else None, 120)
    took, counts = wait(lambda: balanced(replicas, portals, even(portals, len(replicas))), 20 * ttl)
    print(f"start: files loaded after {loaded:.2f}s, balanced {took:.2f}s later: {counts}", file=sys.stderr)
    return {"portal_files_loaded_after_s": round(loaded, 2), "balanced_after_s": round(took, 2), "held": counts}


def steady_phase(replicas: list[Replica], seconds: float) -> dict[str, Any]:
    before = {r.name: r.runs() for r in replicas}
    time.sleep(seconds)
    steady = {r.name: {"held": len(r.held() or ()), "runs": r.runs() - before[r.name]} for r in replicas}
    held = [v["held"] for v in steady.values()]
    print(f"steady {seconds:g}s: {steady}, spread {max(held) - min(held)}", file=sys.stderr)
    return {"seconds": seconds, "per_replica": steady, "spread": max(held) - min(held)}


def death_phase(victim: Replica, survivors: list[Replica], portals: int, ttl: float) -> dict[str, Any]:
    orphaned = len(victim.held() or ())
    victim.crash()
    took, counts = wait(lambda: balanced(survivors, portals, even(portals, len(survivors))), 10 * ttl)
    print(f"death of {victim.name} ({orphaned} portals): taken over after {took:.2f}s: {counts}", file=sys.stderr)
    return {"orphaned": orphaned, "taken_over_after_s": round(took, 2), "held": counts, "spread": spread_of(counts)}


def birth_phase(newcomer: Replica, others: list[Replica], portals: int, ttl: float) -> dict[str, Any]:
    live = [*others, newcomer]
    loaded, _ = wait(lambda: {"": 1} if newcomer.loaded(portals) else None, 120)
    took, counts = wait(lambda: balanced(live, portals, even(portals, len(live))), 10 * ttl)
    print(
        f"birth of {newcomer.name}: files loaded after {loaded:.2f}s, its share {took:.2f}s later: {counts}",
        file=sys.stderr,
    )
    return {
        "portal_files_loaded_after_s": round(loaded, 2),
        "share_after_s": round(took, 2),  # from its files loaded: it joins the sharing then
        "held": counts,
        "spread": spread_of(counts),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portals", type=int, default=60)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=30, help="contacts per portal")
    parser.add_argument("--ttl", type=float, default=3.0, help="lease lifetime, seconds")
    parser.add_argument("--every", type=float, default=10.0, help="each portal's sync interval, seconds")
    parser.add_argument("--steady", type=float, default=15.0, help="seconds of steady state to count runs over")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server URL (a schema is made and dropped)")
    args = parser.parse_args()

    url, drop = schema_url(args.pg)
    figures: dict[str, Any] = {"portals": args.portals, "replicas": args.replicas, "lease_ttl_s": args.ttl}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        stack.callback(drop)
        folder, logs = Path(tmp) / "portals", Path(tmp) / "logs"
        folder.mkdir()
        logs.mkdir()
        boxes = [
            stack.enter_context(Sandbox(generate_portal(args.contacts, i, portal_id=9000 + i), rate_limit="off"))
            for i in range(args.portals)
        ]
        for i, box in enumerate(boxes):
            portal_file(folder, i, box, args.every)
        print(f"{args.portals} sandbox portals of {args.contacts} contacts up", file=sys.stderr)
        replicas: list[Replica] = []

        @stack.callback
        def stop_replicas() -> None:
            for r in replicas:
                r.close()

        def replica(name: str) -> Replica:
            started = Replica(folder, url, name, args.ttl, boxes[0].token, logs / f"{name}.log")
            replicas.append(started)
            return started

        first = [replica(f"replica-{i}") for i in range(args.replicas)]
        figures["start"] = start_phase(first, args.portals, args.ttl)
        figures["steady"] = steady_phase(first, args.steady)
        figures["death"] = death_phase(first[-1], first[:-1], args.portals, args.ttl)
        figures["birth"] = birth_phase(replica("replica-new"), first[:-1], args.portals, args.ttl)
        figures["load_average_1m"] = round(os.getloadavg()[0], 1)  # the machine's, for reading the times above
        print("stopping", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
