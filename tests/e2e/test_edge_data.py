"""Edge data through the real CLI: `leadsync sync --full` against a sandbox portal holding every edge
(README "Edge data") writes, for every contact, the score `leadsync score` computes offline on the
sandbox's snapshot; and emails in those logs are HMAC-hashed with the installation's key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.cli import main
from sync.core.conditions import DAY_MS
from sync.core.rules import compile_ruleset
from sync.core.scoring import score
from sync.observability import LOG_KEY_ENV
from sync.sandbox import Portal, Sandbox
from sync.sandbox.properties import PropertyDef
from sync.sandbox.records import EmailEventRecord, FormRecord, Submission
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config, unclamped

TOKEN_ENV = "LEADSYNC_EDGE_TOKEN"
PORTAL_ID = 12345678
DEMO, OLD = "f-demo", "f-old"  # the old form is deleted between the two syncs

MODEL: dict[str, Any] = {
    "fit": {
        "rules": [
            {
                "id": "size",
                "property": "size_text",
                "bands": [{"lt": 100, "points": 1}, {"gte": 100, "lt": 1000, "points": 5}, {"gte": 1000, "points": 20}],
            }
        ]
    },
    "engagement": {
        "rules": [
            {"id": "any-form", "event": "form_submission", "points": 2, "per": "occurrence", "max": 20},
            {"id": "demo", "event": "form_submission", "form_name_contains": ["demo"], "points": 30},
            {"id": "old-form-by-id", "event": "form_submission", "form_id": [OLD], "points": 4},
            {"id": "clicks", "event": "email_click", "points": 3, "per": "occurrence", "max": 30},
        ],
        "decay": {"inactivity": [{"after_days": 30, "points": -5}, {"after_days": 90, "points": -10}]},
    },
}

# Company sizes written as people write them, in a text property: (value, the band it must land in or None).
SIZES = [
    ("1,000", 20),
    ("1,000,000", 20),
    ("１０００", 20),
    (" 600 ", 5),
    ("+700", 5),
    ("50", 1),
    ("1_000", None),
    ("1,5", None),
    ("1,00", None),
    ("1 000", None),
]


@dataclass
class World:
    sb: Sandbox
    portal: Portal
    config: Path
    db: str
    emails: list[str]


def _days(now_ms: int, days: float) -> int:
    return now_ms + int(days * DAY_MS)


def build_portal(now_ms: int) -> tuple[Portal, list[str]]:
    """Contacts with every edge: create dates (future, 1970, before 1970), sizes, event times, a deleted form."""
    portal = Portal(PORTAL_ID, created_ms=_days(now_ms, -2000))
    portal.define_property(PropertyDef("size_text", "Company size (text)", "string", "text", "contactinformation"))
    portal.add_form(FormRecord(DEMO, "Demo request", _days(now_ms, -900)))
    portal.add_form(FormRecord(OLD, "Old demo form", _days(now_ms, -900)))
    rows: list[tuple[int, dict[str, str], int, int]] = []
    subs: list[Submission] = []
    events: list[EmailEventRecord] = []
    emails: list[str] = []

    def person(cid: int, created_ms: int, **props: str) -> str:
        email = f"edge{cid}@buyer-corp.com"
        rows.append((cid, {"email": email, **props}, created_ms, _days(now_ms, -1)))
        emails.append(email)
        return email

    def submit(form_id: str, email: str, at_ms: int) -> None:
        subs.append(Submission(form_id, f"conv-{len(subs)}", at_ms, [("email", email)], "https://acme.example/p"))

    def click(email: str, at_ms: int) -> None:
        events.append(EmailEventRecord(f"ev-{len(events)}", at_ms, "CLICK", email, 7, PORTAL_ID))

    # Create dates: a future one counts as age 0 (no decay); one at or before 1970 is no create date.
    person(1, _days(now_ms, 5.5))
    person(2, 0)
    person(3, -86_400_000)
    person(4, _days(now_ms, -200.5))  # the plain case: decays from its create date
    # Sizes.
    for i, (size, _) in enumerate(SIZES):
        person(10 + i, _days(now_ms, -10.5), size_text=size)
    # Event times: before 1970 and at 0 are skipped; after now they wait for their time.
    old = person(30, _days(now_ms, -300.5))
    submit(DEMO, old, -5000)
    submit(DEMO, old, 0)
    click(old, -5000)
    click(old, 0)
    future = person(31, _days(now_ms, -300.5))
    submit(DEMO, future, _days(now_ms, 2.5))
    click(future, _days(now_ms, 2.5))
    click(future, _days(now_ms, -40.5))
    # A submission of the form deleted later: still a form submission, with no form name.
    gone = person(40, _days(now_ms, -300.5))
    submit(OLD, gone, _days(now_ms, -20.5))
    portal.bulk_load(rows, subs, events)
    return portal, emails


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv(LOG_KEY_ENV, raising=False)
    portal, emails = build_portal(int(datetime.now(UTC).timestamp() * 1000))
    with Sandbox(portal, rate_limit="off") as sb:
        config = unclamped(sandbox_config(sb.url, TOKEN_ENV))
        del config["holdout"], config["exclusions"]
        config["model"].update(MODEL)
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        yield World(sb, portal, file, f"sqlite:///{tmp_path / 'state.db'}", emails)


def sync(world: World) -> int:
    return main(["sync", "--config", str(world.config), "--full", "--db", world.db, "--log-format", "json"])


def offline_vs_written(world: World) -> tuple[dict[str, tuple[int, int, int]], dict[str, tuple[int, int, int]]]:
    """(contact id -> (score, fit, engagement)) as `leadsync score` computes it on the sandbox's snapshot,
    and as the sync wrote it to HubSpot."""
    raw = requests.get(f"{world.sb.url}/__sandbox/snapshot", timeout=30).json()
    snapshot = parse_snapshot(raw)
    from sync.config import load_portal

    rules = compile_ruleset(load_portal(world.config).rules)
    now = datetime.now(UTC)
    offline = {}
    for contact, events in snapshot.scoring_inputs():
        result = score(contact, events, rules, now)
        offline[contact.id] = (result.score, result.fit, result.engagement)
    written = {}
    for item in raw["contacts"]:
        props = item["properties"]
        written[item["id"]] = (int(props["ls_score"]), int(props["ls_fit"]), int(props["ls_engagement"]))
    return offline, written


def test_every_written_score_equals_the_offline_score_with_every_edge_in_the_portal(world: World) -> None:
    assert sync(world) == 0
    offline, written = offline_vs_written(world)
    assert written == offline and len(offline) == len(world.emails)

    # The rules the two agree on, as README "Edge data" states them.
    assert offline["1"][0] == 0 and offline["4"][0] == -10  # future create date: age 0; 200 days: decayed
    assert offline["2"][0] == offline["3"][0] == 0  # 1970 or before: no create date, so no decay
    for i, (_, points) in enumerate(SIZES):
        assert offline[str(10 + i)][1] == (points or 0), SIZES[i]
    assert offline["30"][0] == -10  # the submissions and clicks at or before 1970 never counted
    assert offline["31"][2] == 3 and offline["31"][0] == 3 - 5  # a click 40 days ago; the later ones wait
    assert offline["40"][2] == 2 + 30 + 4  # any form, demo (its name still listed), the form by id

    # The form is deleted: its stored submission still counts, by id too, but no longer by name.
    requests.delete(f"{world.sb.url}/__sandbox/forms", params={"id": OLD}, timeout=10).raise_for_status()
    assert sync(world) == 0
    offline, written = offline_vs_written(world)
    assert written == offline
    assert offline["40"][2] == 2 + 4


def test_the_snapshot_names_each_record_skipped_for_a_time_before_1970(world: World) -> None:
    raw = requests.get(f"{world.sb.url}/__sandbox/snapshot", timeout=30).json()
    problems = parse_snapshot(raw).problems
    assert sum("at or before 1970-01-01: not a real time; skipped" in p for p in problems) == 4, problems


def _plain_sha256(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:16]


def test_sync_logs_hash_emails_with_the_installation_key_never_plain_sha256(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert sync(world) == 0
    out = capsys.readouterr()
    logs = out.out + out.err
    store = SqlStateStore(world.db)
    key = store.log_key()
    store.close()
    hashed = {e: "hmac:" + hmac.new(key, e.encode(), hashlib.sha256).hexdigest()[:16] for e in world.emails}
    assert any(h in logs for h in hashed.values())  # score_changed names the contacts it wrote, hashed
    for email in world.emails:
        assert email not in logs
        assert _plain_sha256(email) not in logs
    assert "sha256:" not in logs


def test_log_emails_true_still_logs_the_address(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load(world.config.read_text())
    config["log_emails"] = True
    world.config.write_text(yaml.safe_dump(config))
    assert sync(world) == 0
    out = capsys.readouterr()
    assert "edge40@buyer-corp.com" in out.out + out.err
