"""Email events as HubSpot really sends them, through the real CLI: `leadsync sync --full` against a sandbox
portal with mixed unsubscribes, soft and hard bounces, obsoleted bounces and un-bounces writes, for every
contact, the score computed offline on the sandbox's snapshot (README "What counts")."""

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
from sync.core.model import ScoreResult
from sync.core.rules import compile_ruleset
from sync.core.scoring import score
from sync.hubspot.shapes import HARD_BOUNCE_CATEGORIES
from sync.sandbox import Portal, Sandbox
from sync.sandbox.generator import generate_portal
from sync.sandbox.records import EmailEventRecord
from sync.snapshot import parse_snapshot
from tests.factories import sandbox_config, unclamped

TOKEN_ENV = "LEADSYNC_EMAIL_EVENTS_TOKEN"
PORTAL_ID = 12345678

MODEL: dict[str, Any] = {
    "fit": {"rules": []},
    "engagement": {
        "rules": [
            {"id": "unsubscribed", "event": "email_unsubscribe", "points": -10},
            {"id": "hard-bounced", "event": "email_bounce", "points": -20},
            {"id": "soft-bounced", "event": "email_bounce", "bounce": "soft", "points": -1, "per": "occurrence"},
            {"id": "spam", "event": "email_spam_report", "points": -15},
            {"id": "opens", "event": "email_open", "points": 1, "per": "occurrence", "max": 10},
        ]
    },
}
MIXED = [{"id": 1, "status": "UNSUBSCRIBED"}, {"id": 2, "status": "SUBSCRIBED"}, {"id": 3, "status": "SUBSCRIBED"}]


def status(portal_status: str, subscriptions: list[dict[str, Any]], source: str) -> dict[str, Any]:
    return {"portalSubscriptionStatus": portal_status, "subscriptions": subscriptions, "source": source}


# Contact id -> (its email events as (days ago, HubSpot type, extra fields, id or None), the rules it must hit).
CASES: dict[int, tuple[list[tuple[float, str, dict[str, Any], str | None]], set[str]]] = {
    1: ([(5, "STATUSCHANGE", status("UNSUBSCRIBED", MIXED, "SOURCE_RECIPIENT"), None)], {"unsubscribed"}),
    2: ([(5, "STATUSCHANGE", status("UNSUBSCRIBED", [], "SOURCE_LIST_UNSUBSCRIBE"), None)], {"unsubscribed"}),
    3: ([(5, "STATUSCHANGE", status("SUBSCRIBED", MIXED[:1], "SOURCE_RECIPIENT"), None)], {"unsubscribed"}),
    4: (
        [
            (6, "BOUNCE", {"category": "UNKNOWN_USER"}, None),
            (6, "STATUSCHANGE", status("UNSUBSCRIBED", [], "SOURCE_NON_DELIVERY_REPORT"), None),
        ],
        {"hard-bounced"},
    ),
    5: ([(5, "STATUSCHANGE", status("UNSUBSCRIBED", MIXED, "SOURCE_IMPORT"), None)], set()),
    6: (
        [
            (4, "SPAMREPORT", {}, None),
            (4, "STATUSCHANGE", status("UNSUBSCRIBED", [], "SOURCE_SPAM_REPORT"), None),
        ],
        {"spam"},
    ),
    7: ([(5, "STATUSCHANGE", status("SUBSCRIBED", [{"id": 1, "status": "SUBSCRIBED"}], "SOURCE_RECIPIENT"), None)],
        set()),
    8: (
        [(9, "BOUNCE", {"category": "MAILBOX_FULL"}, None), (3, "BOUNCE", {"category": "THROTTLED"}, None)],
        {"soft-bounced"},
    ),
    9: ([(9, "BOUNCE", {"category": "UNKNOWN_USER", "obsoletedBy": {"id": "later", "created": 1}}, None)], set()),
    10: ([(9, "BOUNCE", {"category": "UNKNOWN_USER"}, None), (2, "UNBOUNCE", {}, None)], set()),
    11: (
        [
            (20, "BOUNCE", {"category": "MAILBOX_MISCONFIGURATION"}, None),
            (10, "UNBOUNCE", {}, None),
            (3, "BOUNCE", {"category": "UNKNOWN_USER"}, None),
        ],
        {"hard-bounced"},
    ),
    12: ([(5, "OPEN", {}, "same-id"), (4, "OPEN", {}, "same-id")], {"opens"}),
    13: ([(5, "DROPPED", {"dropReason": "PREVIOUSLY_BOUNCED"}, None)], set()),
    14: ([(5, "BOUNCE", {"category": "DNS_FAILURE"}, None)], {"soft-bounced"}),
}  # fmt: skip


@dataclass
class World:
    sb: Sandbox
    config: Path
    db: str


def hand_built(now_ms: int) -> Portal:
    portal = Portal(PORTAL_ID, created_ms=now_ms - 2000 * DAY_MS)
    rows: list[tuple[int, dict[str, str], int, int]] = []
    events: list[EmailEventRecord] = []
    for cid, (items, _) in CASES.items():
        email = f"person{cid}@buyer-corp.com"
        rows.append((cid, {"email": email}, now_ms - 400 * DAY_MS, now_ms - DAY_MS))
        for days, wire_type, extra, eid in items:
            at = now_ms - int(days * DAY_MS)
            event_id = eid or f"ev-{cid}-{len(events)}"
            events.append(EmailEventRecord(event_id, at, wire_type, email, 5001, PORTAL_ID, False, extra))
    portal.bulk_load(rows, (), events)
    return portal


def open_world(portal: Portal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with Sandbox(portal, rate_limit="off") as sb:
        config = unclamped(sandbox_config(sb.url, TOKEN_ENV))
        del config["holdout"], config["exclusions"]
        config["model"].update(MODEL)
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        yield World(sb, file, f"sqlite:///{tmp_path / 'state.db'}")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from open_world(hand_built(int(datetime.now(UTC).timestamp() * 1000)), tmp_path, monkeypatch)


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    portal = generate_portal(300, seed=21, now_ms=now_ms, portal_id=PORTAL_ID, email_sends_per_contact=4)
    yield from open_world(portal, tmp_path, monkeypatch)


def sync(world: World) -> int:
    return main(["sync", "--config", str(world.config), "--full", "--db", world.db, "--log-format", "json"])


def offline_and_written(world: World) -> tuple[dict[str, ScoreResult], dict[str, dict[str, str]]]:
    raw = requests.get(f"{world.sb.url}/__sandbox/snapshot", timeout=30).json()
    rules = compile_ruleset(load_portal(world.config).rules)
    now = datetime.now(UTC)
    offline = {c.id: score(c, events, rules, now) for c, events in parse_snapshot(raw).scoring_inputs()}
    return offline, {item["id"]: item["properties"] for item in raw["contacts"]}


def assert_written_equals_offline(world: World) -> dict[str, ScoreResult]:
    offline, written = offline_and_written(world)
    assert {cid: (r.score, r.fit, r.engagement) for cid, r in offline.items()} == {
        cid: (int(p["ls_score"]), int(p["ls_fit"]), int(p["ls_engagement"])) for cid, p in written.items()
    }
    return offline


def test_every_written_score_equals_the_offline_score_and_each_email_event_counts_as_readme_says(
    world: World,
) -> None:
    assert sync(world) == 0
    offline = assert_written_equals_offline(world)
    hits = {cid: {h.rule for h in r.breakdown if h.kind == "event" and h.cents} for cid, r in offline.items()}
    assert hits == {str(cid): rules for cid, (_, rules) in CASES.items()}
    assert offline["8"].engagement == -2  # two soft bounces, one point each
    assert offline["12"].engagement == 2  # one id at two times: two opens


def test_a_generated_portal_with_every_shape_is_scored_as_offline(generated: World) -> None:
    assert sync(generated) == 0
    offline = assert_written_equals_offline(generated)
    raw = requests.get(f"{generated.sb.url}/__sandbox/snapshot", timeout=30).json()
    # The portal holds what this is about, and the rules see it.
    bounces = [e for e in raw["email_events"] if e["type"] == "BOUNCE"]
    categories = {e["category"] for e in bounces}
    assert categories & HARD_BOUNCE_CATEGORIES and categories - HARD_BOUNCE_CATEGORIES  # hard and soft ones
    assert any(e.get("obsoletedBy") for e in bounces)
    assert any(e["type"] == "UNBOUNCE" for e in raw["email_events"])
    fired = {h.rule for r in offline.values() for h in r.breakdown if h.kind == "event" and h.cents}
    assert {"unsubscribed", "hard-bounced", "soft-bounced", "opens"} <= fired
