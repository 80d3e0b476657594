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
from pathlib import Path

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


def main() -> None:  # noqa: PLR0915
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--per-10s", type=int, default=1000, help="the sandbox's ten-second limit (>= 950)")
    args = parser.parse_args()

    proc, url = start_sandbox(args.contacts, args.per_10s)
    try:
        limiter = RateLimiter(Budget(args.per_10s, 100_000_000, 0.0, 5))
        client = HubSpotClient(TOKEN, url, limiter, RetryPolicy(), timeout=(5.0, 60.0), portal="bench")
        Properties(client).ensure(
            "lead_scoring_sync",
            "Lead scoring (leadsync)",
            [PropertySpec("ls_score", "Lead score", "number"), PropertySpec("ls_reasons", "Score reasons", "string")],
        )
        requests.post(f"{url}/__sandbox/reset_stats", timeout=10)
        contacts = Contacts(client, ["ls_score"])
        sent: list[float] = []
        acquire = limiter.acquire

        def counted(search: bool = False) -> None:
            acquire(search)
            sent.append(time.monotonic())

        limiter.acquire = counted  # type: ignore[method-assign]
        pages: queue.Queue[list[PropertyUpdate] | None] = queue.Queue(maxsize=4)
        written = [0]
        failures: list[str] = []

        def writer() -> None:
            while (batch := pages.get()) is not None:
                outcome = contacts.update(batch)
                written[0] += len(outcome.applied)
                failures.extend(d.reason for d in outcome.dead)

        thread = threading.Thread(target=writer, daemon=True)
        started = time.monotonic()
        thread.start()
        pulled = 0
        rss_at_tenth: float | None = None
        for page in contacts.pages():
            updates = [
                PropertyUpdate(c.id, {"ls_score": str(len(c.properties) % 100), "ls_reasons": "+1 bench"})
                for c in page.contacts
            ]
            pages.put(updates)
            pulled += len(page.contacts)
            elapsed = time.monotonic() - started
            if rss_at_tenth is None and pulled >= args.contacts // 10:
                rss_at_tenth = rss_mb()
            if pulled % 10_000 < 100:
                rate = sum(client.calls.values()) / elapsed
                print(
                    f"{pulled:>8,} pulled  {written[0]:>8,} written  {rate:6.1f} requests/s  "
                    f"rss {current_rss_mb():.0f} MiB",
                    file=sys.stderr,
                )
        pages.put(None)
        thread.join()
        elapsed = time.monotonic() - started
        peak_rss = rss_mb()  # before fetching the sandbox's stats, which list every contact's write count
        total_calls = sum(client.calls.values())
        contact_calls = sum(n for (endpoint, _), n in client.calls.items() if endpoint in WRITE_ENDPOINTS)
        client_429 = sum(n for (_, status), n in client.calls.items() if status == 429)
        stats = requests.get(f"{url}/__sandbox/stats", timeout=10).json()
        # How full each complete 10-second window ran (windows starting every 0.5 s).
        fills = []
        t = sent[0] if sent else started
        while sent and t + 10 <= sent[-1]:
            fills.append(sum(1 for x in sent if t <= x < t + 10) / args.per_10s)
            t += 0.5
        figures = {
            "contacts": args.contacts,
            "pulled": pulled,
            "written": written[0],
            "dead_letters": len(failures),
            "seconds": round(elapsed, 2),
            "limit_per_10s": args.per_10s,
            "requests": total_calls,
            "requests_per_second": round(total_calls / elapsed, 1),
            "full_10s_windows": len(fills),
            "window_fill_min": round(min(fills), 3) if fills else None,
            "window_fill_mean": round(sum(fills) / len(fills), 3) if fills else None,
            "window_fill_max": round(max(fills), 3) if fills else None,
            "http_429": client_429,
            "sandbox_429": sum(stats["rate_limited"].values()),
            "contact_calls_per_contact": round(contact_calls / max(pulled, 1), 4),
            "peak_rss_mb_at_10pct": round(rss_at_tenth or rss_mb(), 1),
            "peak_rss_mb": round(peak_rss, 1),
        }
        print(json.dumps(figures))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
