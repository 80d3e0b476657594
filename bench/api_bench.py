"""API throughput: a full pull and write of N sandbox contacts at the sandbox's 10-second limit.

The sandbox runs in its own process (so the RSS below is the client's alone)
with the given rate limit. One thread pulls contacts through the list
endpoint (100 a page), another writes them back in batches of 100 through a
small bounded queue, both paced by the portal's rate limiter. Prints
progress, then one JSON object with the figures on its last line.

    python bench/api_bench.py [--contacts 100000] [--per-10s 1000]
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from sync.core.model import PropertyUpdate
from sync.hubspot.client import HubSpotClient
from sync.hubspot.contacts import Contacts
from sync.hubspot.limits import Budget, RateLimiter
from sync.hubspot.properties import Properties
from sync.hubspot.retry import RetryPolicy
from sync.ports import PropertySpec

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
WRITE_ENDPOINTS = ("contacts.list", "contacts.batch_update")


def rss_mb() -> float:
    """Peak resident memory of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_sandbox(contacts: int, per_10s: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "sync",
        "sandbox",
        "--contacts",
        str(contacts),
        "--seed",
        "1",
        "--port",
        "0",
        "--token",
        TOKEN,
        "--rate-limit",
        f"per10s={per_10s},search=5,daily=100000000",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        found = re.search(r"https?://127\.0\.0\.1:\d+", line)
        if found:
            return proc, found.group(0)
    proc.kill()
    raise SystemExit("the sandbox did not start")


@dataclass
class Transfer:
    """What the pull and write-back did: counts, the send time of every request, memory along the way."""

    started: float
    pulled: int = 0
    written: int = 0
    failures: list[str] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # monotonic time each request was let through the limiter
    rss_at_tenth: float | None = None
    elapsed: float = 0.0
    peak_rss: float = 0.0


def open_client(url: str, per_10s: int) -> HubSpotClient:
    """A client of the sandbox paced at its ten-second limit, the score properties in place, stats from zero."""
    limiter = RateLimiter(Budget(per_10s, 100_000_000, 0.0, 5))
    client = HubSpotClient(TOKEN, url, limiter, RetryPolicy(), timeout=(5.0, 60.0), portal="bench")
    Properties(client).ensure(
        "lead_scoring_sync",
        "Lead scoring (leadsync)",
        [PropertySpec("ls_score", "Lead score", "number"), PropertySpec("ls_reasons", "Score reasons", "string")],
    )
    requests.post(f"{url}/__sandbox/reset_stats", timeout=10)
    return client


def record_sends(limiter: RateLimiter, sent: list[float]) -> None:
    """Note the time of every request the limiter lets through."""
    acquire = limiter.acquire

    def counted(search: bool = False) -> None:
        acquire(search)
        sent.append(time.monotonic())

    limiter.acquire = counted  # type: ignore[method-assign]


def write_back(contacts: Contacts, pages: queue.Queue[list[PropertyUpdate] | None], transfer: Transfer) -> None:
    """The writer thread: each queued batch written, until None."""
    while (batch := pages.get()) is not None:
        outcome = contacts.update(batch)
        transfer.written += len(outcome.applied)
        transfer.failures.extend(d.reason for d in outcome.dead)


def transfer_all(client: HubSpotClient, total: int) -> Transfer:
    """Pull every contact on this thread, write each page back on another through a small bounded queue."""
    contacts = Contacts(client, ["ls_score"])
    pages: queue.Queue[list[PropertyUpdate] | None] = queue.Queue(maxsize=4)
    transfer = Transfer(started=time.monotonic())
    record_sends(client.limiter, transfer.sent)
    thread = threading.Thread(target=write_back, args=(contacts, pages, transfer), daemon=True)
    thread.start()
    for page in contacts.pages():
        pages.put(
            [
                PropertyUpdate(c.id, {"ls_score": str(len(c.properties) % 100), "ls_reasons": "+1 bench"})
                for c in page.contacts
            ]
        )
        transfer.pulled += len(page.contacts)
        if transfer.rss_at_tenth is None and transfer.pulled >= total // 10:
            transfer.rss_at_tenth = rss_mb()
        if transfer.pulled % 10_000 < 100:
            rate = sum(client.calls.values()) / (time.monotonic() - transfer.started)
            print(
                f"{transfer.pulled:>8,} pulled  {transfer.written:>8,} written  {rate:6.1f} requests/s  "
                f"rss {current_rss_mb():.0f} MiB",
                file=sys.stderr,
            )
    pages.put(None)
    thread.join()
    transfer.elapsed = time.monotonic() - transfer.started
    transfer.peak_rss = rss_mb()  # before fetching the sandbox's stats, which list every contact's write count
    return transfer


def window_fills(sent: list[float], started: float, per_10s: int) -> list[float]:
    """How full each complete 10-second window ran (windows starting every 0.5 s)."""
    fills = []
    t = sent[0] if sent else started
    while sent and t + 10 <= sent[-1]:
        fills.append(sum(1 for x in sent if t <= x < t + 10) / per_10s)
        t += 0.5
    return fills


def figures(args: argparse.Namespace, client: HubSpotClient, transfer: Transfer, url: str) -> dict[str, Any]:
    total_calls = sum(client.calls.values())
    contact_calls = sum(n for (endpoint, _), n in client.calls.items() if endpoint in WRITE_ENDPOINTS)
    stats = requests.get(f"{url}/__sandbox/stats", timeout=10).json()
    fills = window_fills(transfer.sent, transfer.started, args.per_10s)
    return {
        "contacts": args.contacts,
        "pulled": transfer.pulled,
        "written": transfer.written,
        "dead_letters": len(transfer.failures),
        "seconds": round(transfer.elapsed, 2),
        "limit_per_10s": args.per_10s,
        "requests": total_calls,
        "requests_per_second": round(total_calls / transfer.elapsed, 1),
        "full_10s_windows": len(fills),
        "window_fill_min": round(min(fills), 3) if fills else None,
        "window_fill_mean": round(sum(fills) / len(fills), 3) if fills else None,
        "window_fill_max": round(max(fills), 3) if fills else None,
        "http_429": sum(n for (_, status), n in client.calls.items() if status == 429),
        "sandbox_429": sum(stats["rate_limited"].values()),
        "contact_calls_per_contact": round(contact_calls / max(transfer.pulled, 1), 4),
        "peak_rss_mb_at_10pct": round(transfer.rss_at_tenth or rss_mb(), 1),
        "peak_rss_mb": round(transfer.peak_rss, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--per-10s", type=int, default=1000, help="the sandbox's ten-second limit (>= 950)")
    args = parser.parse_args()

    proc, url = start_sandbox(args.contacts, args.per_10s)
    try:
        client = open_client(url, args.per_10s)
        transfer = transfer_all(client, args.contacts)
        print(json.dumps(figures(args, client, transfer, url)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
