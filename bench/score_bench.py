"""Scoring throughput: synthetic contacts with ~20 events each, scored with the example config.

Contacts are generated and scored in batches and then dropped, so memory does
not grow with the contact count; the process is pinned to one core. Prints
progress, then one JSON object with the figures on its last line.

    python bench/score_bench.py [--contacts 1000000] [--seed 7] [--batch 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sync.config import load_portal
from sync.core.conditions import DAY_MS
from sync.core.model import (
    EMAIL_BOUNCE,
    EMAIL_CLICK,
    EMAIL_DELIVERED,
    EMAIL_OPEN,
    EMAIL_SENT,
    EMAIL_UNSUBSCRIBE,
    Contact,
    EmailEvent,
    Event,
    FormSubmission,
)
from sync.core.rules import compile_ruleset
from sync.core.scoring import score

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)

ROLES = ["owner", "limited", "none", "", "unknown"]
INDUSTRIES = ["ENERGY", "OIL_GAS", "FINANCE", "RETAIL", "HEALTHCARE", ""]
NEEDS = ["core", "nice", "none", ""]
TIMELINES = ["days", "months", "none", ""]
BUDGETS = ["fits", "moderate", "short", ""]
TITLES = ["CEO", "CTO", "Founder", "Marketing Manager", "Engineer", "Student", "Sales Intern", "Head of Ops", ""]
SOURCES = ["DIRECT_TRAFFIC", "ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "REFERRALS"]
DOMAINS = ["voltgrid.ro", "finbank.eu", "gmail.com", "yahoo.com", "oilco.com", "rival.com", "acme.com", "example.org"]
STAGES = ["", "subscriber", "lead", "lead", "marketingqualifiedlead", "salesqualifiedlead", "customer"]
FORMS = [
    ("f-demo", "Demo request"),
    ("f-ebook", "Energy ebook"),
    ("f-check", "Buyer checklist"),
    ("f-web", "Webinar: grid analytics"),
    ("f-news", "Newsletter"),
    ("f-sales", "Contact sales"),
]
PAGES = ["https://acme.example/pricing", "https://acme.example/blog/x", "https://acme.example/"]
# Engagement mix: mostly sends, deliveries and opens, some clicks and forms, a few bounces and unsubscribes.
KINDS = [EMAIL_SENT] * 5 + [EMAIL_DELIVERED] * 5 + [EMAIL_OPEN] * 6 + [EMAIL_CLICK] * 2 + ["form"] * 1
RARE = [EMAIL_BOUNCE, EMAIL_UNSUBSCRIBE]


def make_batch(rng: random.Random, start: int, size: int) -> list[tuple[Contact, list[Event]]]:
    batch: list[tuple[Contact, list[Event]]] = []
    for n in range(start, start + size):
        cid = str(n)
        email = f"user{n}@{rng.choice(DOMAINS)}"
        props = {
            "email": email,
            "decision_role": rng.choice(ROLES),
            "industry": rng.choice(INDUSTRIES),
            "need_level": rng.choice(NEEDS),
            "numberofemployees": str(rng.randint(1, 5000)),
            "purchase_timeline": rng.choice(TIMELINES),
            "budget_fit": rng.choice(BUDGETS),
            "jobtitle": rng.choice(TITLES),
            "hs_analytics_source": rng.choice(SOURCES),
            "hs_analytics_num_visits": str(rng.randint(0, 12)),
        }
        contact = Contact(
            id=cid,
            properties=props,
            email=email,
            created_at_ms=NOW_MS - rng.randint(1, 900) * DAY_MS,
            lifecycle_stage=rng.choice(STAGES),
        )
        events: list[Event] = []
        for i in range(rng.randint(0, 40)):  # 20 on average
            at = NOW_MS - int(rng.random() * 200 * DAY_MS)
            kind = rng.choice(RARE) if rng.random() < 0.01 else rng.choice(KINDS)
            if kind == "form":
                form_id, form_name = rng.choice(FORMS)
                events.append(FormSubmission(f"c{n}-{i}", at, email, form_id, form_name, rng.choice(PAGES)))
            else:
                url = rng.choice(PAGES) if kind == EMAIL_CLICK else ""
                events.append(EmailEvent(f"e{n}-{i}", kind, at, email, "501", url, rng.random() < 0.05))
        batch.append((contact, events))
    return batch


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    rules = compile_ruleset(load_portal(ROOT / "config" / "portals" / "example.yaml").rules)
    rng = random.Random(args.seed)
    scored = events_total = written_stage = 0
    score_seconds = 0.0
    rss_at_tenth = None
    started = time.perf_counter()
    report_every = max(args.contacts // 10, 1)
    while scored < args.contacts:
        size = min(args.batch, args.contacts - scored)
        batch = make_batch(rng, scored, size)
        t0 = time.perf_counter()
        for contact, events in batch:
            result = score(contact, events, rules, NOW)
            written_stage += result.stage_write != "none"
        score_seconds += time.perf_counter() - t0
        events_total += sum(len(e) for _, e in batch)
        before, scored = scored, scored + size
        if scored // report_every != before // report_every:
            if rss_at_tenth is None:
                rss_at_tenth = rss_mb()
            print(
                f"{scored:>9,} contacts  {scored / score_seconds:>9,.0f} contacts/s scoring  rss {rss_mb():.0f} MiB",
                file=sys.stderr,
            )
    wall = time.perf_counter() - started
    figures = {
        "contacts": scored,
        "events": events_total,
        "events_per_contact": round(events_total / scored, 2),
        "score_seconds": round(score_seconds, 2),
        "contacts_per_second": round(scored / score_seconds),
        "wall_seconds_with_generation": round(wall, 2),
        "stage_writes_planned": written_stage,
        "peak_rss_mb_at_10pct": round(rss_at_tenth or rss_mb(), 1),
        "peak_rss_mb": round(rss_mb(), 1),
        "cores": 1,
        "target_contacts_per_second": 30000,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
