"""Forms of every type and submissions without conversionId, through the real CLI: `leadsync sync --full`
against a sandbox portal with a pop-up (flow) demo form, a non-HubSpot (captured) form whose email field has
another name, blog comments and an archived form writes, for every contact, the score `leadsync score` computes
offline on the sandbox's snapshot; a pop-up demo request reaches MQL; a second sync, which reads the last
hour's submissions again, counts none of them twice (README "What counts")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.cli import main
from sync.config import load_portal
from sync.core.conditions import DAY_MS
from sync.core.rules import compile_ruleset
from sync.core.scoring import score
from sync.observability import LOG_KEY_ENV
from sync.sandbox import Portal, Sandbox
from sync.sandbox.records import FormRecord, Submission
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config, unclamped

TOKEN_ENV = "LEADSYNC_FORMS_TOKEN"
PORTAL_ID = 12345678
NEWS, POPUP, SITE, COMMENTS, OLD = "f-news", "f-popup", "f-site", "f-comments", "f-old"
MQL = "marketingqualifiedlead"


@dataclass
class World:
    sb: Sandbox
    config: Path
    db: str
    now_ms: int


def build_portal(now_ms: int) -> Portal:
    def ago(days: float) -> int:
        return now_ms - int(days * DAY_MS)

    portal = Portal(PORTAL_ID, created_ms=ago(2000))
    portal.add_form(FormRecord(NEWS, "Newsletter signup", ago(900)))
    portal.add_form(FormRecord(POPUP, "Pop-up: book a demo", ago(900), form_type="flow"))
    portal.add_form(FormRecord(SITE, "Energy ebook (site form)", ago(900), ("work_email",), form_type="captured"))
    # Both name a demo: were they read, the demo rule would count them.
    portal.add_form(FormRecord(COMMENTS, "Comments: our demo day", ago(900), form_type="blog_comment"))
    portal.add_form(FormRecord(OLD, "Old demo request", ago(900), archived=True))
    rows = [(cid, {"email": f"buyer{cid}@buyer-corp.com", "lifecyclestage": "lead"}, ago(30), ago(1))
            for cid in range(1, 9)]  # fmt: skip
    subs: list[Submission] = []

    def submit(form: str, cid: int, at: int, *, cid_sent: bool = True, field: str = "email") -> None:
        values = [(field, f"buyer{cid}@buyer-corp.com", "0-1"), ("firstname", f"Buyer {cid}", "0-1")]
        page = "https://acme.example/p"
        subs.append(Submission(form, f"conv-{len(subs)}", at, values, page, sends_conversion_id=cid_sent))

    submit(POPUP, 1, ago(2))  # a pop-up demo request with a conversionId
    submit(POPUP, 2, ago(0.01), cid_sent=False)  # ... and one without, within the hour the next sync reads again
    submit(SITE, 3, ago(3), cid_sent=False, field="work_email")
    for minutes in (5, 10, 20):  # three ebooks through the site form, no conversionId, the email another name
        submit(SITE, 4, now_ms - minutes * 60_000, cid_sent=False, field="work_email")
    submit(COMMENTS, 5, ago(1))
    submit(OLD, 6, ago(1))
    submit(NEWS, 7, ago(1))
    portal.bulk_load(rows, subs)
    return portal


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv(LOG_KEY_ENV, raising=False)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    with Sandbox(build_portal(now_ms), rate_limit="off") as sb:
        config = unclamped(sandbox_config(sb.url, TOKEN_ENV))
        del config["holdout"], config["exclusions"]
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        yield World(sb, file, f"sqlite:///{tmp_path / 'state.db'}", now_ms)


def sync(world: World) -> int:
    return main(["sync", "--config", str(world.config), "--full", "--db", world.db, "--log-format", "json"])


def offline_and_written(world: World) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """(contact id -> score as `leadsync score` computes it on the snapshot), (-> ls_score written),
    (-> lifecycle stage now)."""
    raw: dict[str, Any] = requests.get(f"{world.sb.url}/__sandbox/snapshot", timeout=30).json()
    rules = compile_ruleset(load_portal(world.config).rules)
    now = datetime.now(UTC)
    offline = {c.id: score(c, events, rules, now).score for c, events in parse_snapshot(raw).scoring_inputs()}
    written = {c["id"]: int(c["properties"]["ls_score"]) for c in raw["contacts"]}
    stages = {c["id"]: c["properties"]["lifecyclestage"] for c in raw["contacts"]}
    return offline, written, stages


def stored_submissions(world: World) -> list[str]:
    store = SqlStateStore(world.db)
    try:
        emails = [f"buyer{cid}@buyer-corp.com" for cid in range(1, 9)]
        events = store.events_for_emails(PORTAL_ID, emails)
    finally:
        store.close()
    return sorted(e.event_id for found in events.values() for e in found)


def test_pop_up_and_captured_forms_count_blog_comments_and_archived_forms_do_not(world: World) -> None:
    assert sync(world) == 0
    offline, written, stages = offline_and_written(world)
    assert written == offline and len(offline) == 8
    assert offline["1"] == offline["2"] == 70  # the pop-up demo request, with and without conversionId
    assert stages["1"] == stages["2"] == MQL
    assert offline["3"] == 5 and offline["4"] == 15  # ebooks through the captured form, email under work_email
    assert offline["5"] == offline["6"] == 0 and stages["5"] == stages["6"] == "lead"  # blog comment, archived
    assert offline["7"] == offline["8"] == 0  # a newsletter signup scores nothing; 8 submitted nothing
    stored = stored_submissions(world)
    assert len(stored) == 7 and sum(e.startswith("nocid:") for e in stored) == 5


def test_a_second_sync_reads_the_last_hour_again_and_counts_nothing_twice(world: World) -> None:
    assert sync(world) == 0
    first = stored_submissions(world)
    # A new pop-up demo request without conversionId arrives between the two syncs.
    added = {"formId": POPUP, "conversionId": None, "submittedAt": world.now_ms - 1000,
             "values": [{"name": "email", "value": "buyer8@buyer-corp.com", "objectTypeId": "0-1"}]}  # fmt: skip
    requests.post(f"{world.sb.url}/__sandbox/form_submissions", json={"form_submissions": [added]}, timeout=10)
    reads_before = _submission_reads(world)
    assert sync(world) == 0
    assert _submission_reads(world) > reads_before  # the forms' submissions were read again
    second = stored_submissions(world)
    assert len(second) == len(first) + 1 and set(first) < set(second)
    offline, written, stages = offline_and_written(world)
    assert written == offline
    assert offline["4"] == 15 and offline["2"] == 70  # the re-read submissions without conversionId count once
    assert offline["8"] == 70 and stages["8"] == MQL


def _submission_reads(world: World) -> int:
    stats = requests.get(f"{world.sb.url}/__sandbox/stats", timeout=10).json()["requests"]
    return sum(sum(by_status.values()) for name, by_status in stats.items() if "submissions" in name)
