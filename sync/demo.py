"""`leadsync demo`: a real sync against the local sandbox, then what it wrote.

Starts the sandbox with a synthetic portal, points the example config at it
(SQLite state in a temporary folder), runs a full sync and shows the contacts
as HubSpot now holds them.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import yaml
from rich.console import Console
from rich.table import Table

from sync.app import open_portal
from sync.core.wire import EMAIL, LIFECYCLE_STAGE
from sync.pipeline import Cycle, RunSummary
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.state import SqlStateStore

TOKEN_ENV = "LEADSYNC_DEMO_TOKEN"


def run_demo(example: Path, contacts: int, seed: int, console: Console) -> RunSummary:
    config = yaml.safe_load(example.read_text())
    portal_id = int(config["portal"]["id"])  # the sandbox answers as the file's portal: the sync checks it
    with (
        tempfile.TemporaryDirectory(prefix="leadsync-demo-") as tmp,
        Sandbox(generate_portal(contacts, seed, portal_id=portal_id)) as sandbox,
    ):
        console.print(f"sandbox portal of {contacts} synthetic contacts at {sandbox.url}")
        config["portal"].update(base_url=sandbox.url, token_env=TOKEN_ENV)
        portal_file = Path(tmp) / "demo-portal.yaml"
        portal_file.write_text(yaml.safe_dump(config))
        os.environ[TOKEN_ENV] = sandbox.token
        store = SqlStateStore(f"sqlite:///{Path(tmp) / 'demo.db'}")
        try:
            portal = open_portal(portal_file, store)
            with console.status("full sync (pull, score, write) ..."):
                summary = Cycle(portal, "full").run()
            snapshot = requests.get(f"{sandbox.url}/__sandbox/snapshot", timeout=120).json()
        finally:
            store.close()
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
    console.print(f"sync {summary.status} (run {summary.run_id}): {counts}")
    show(snapshot["contacts"], config["properties"], console)
    return summary


def show(contacts: list[dict[str, Any]], props: dict[str, str], console: Console) -> None:
    written = [c for c in contacts if c["properties"].get(props["score"]) not in (None, "")]
    console.print(f"\n{len(written)} of {len(contacts)} contacts now carry a leadsync score in HubSpot.")
    grades = Counter(c["properties"].get(props["grade"]) or "-" for c in written)
    stages = Counter(c["properties"].get(LIFECYCLE_STAGE) or "-" for c in contacts)
    console.print("grades: " + ", ".join(f"{g} {n}" for g, n in sorted(grades.items())))
    console.print("stages: " + ", ".join(f"{s} {n}" for s, n in stages.most_common()))
    table = Table(title="Top contacts by score, as written to HubSpot", header_style="bold")
    for name in ("contact", EMAIL, props["score"], props["grade"], LIFECYCLE_STAGE):
        table.add_column(name, no_wrap=True, min_width=len(name))  # a header is never cut; the reasons give way
    table.add_column(props["reasons"], no_wrap=True, overflow="ellipsis", ratio=1)
    top = sorted(written, key=lambda c: -float(c["properties"][props["score"]]))[:15]
    for c in top:
        p = c["properties"]
        table.add_row(
            c["id"], p.get(EMAIL, ""), p[props["score"]], p.get(props["grade"], ""), p.get(LIFECYCLE_STAGE, ""),
            (p.get(props["reasons"]) or "")[:70],
        )  # fmt: skip
    console.print(table)
