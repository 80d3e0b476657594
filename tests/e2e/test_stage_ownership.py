"""End to end, through `leadsync sync`: a lifecycle stage people set is never moved back.

The bug this guards against: a first sync with `demote: true` moved back hundreds of MQL and SQL stages that
people had set on contacts whose scores were low. Now a demotion moves back only the stage leadsync itself last
wrote and HubSpot still holds, unless the portal owns every stage (`own_stages: all`), in score and rules mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.cli import main
from sync.config import build_portal
from sync.core.model import Contact
from sync.core.rules import RuleSet, compile_ruleset
from sync.core.scoring import score
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.snapshot import parse_snapshot
from tests.factories import sandbox_config

TOKEN_ENV = "LEADSYNC_E2E_STAGES_TOKEN"
MQL, SQL, LEAD = "marketingqualifiedlead", "salesqualifiedlead", "lead"
UNQUALIFIED = {"ls_sales_feedback": "unqualified"}  # -100 fit points; and no SQL rule in rules mode


def portal_config(sb: Sandbox, mode: str, own_stages: str = "written") -> dict[str, Any]:
    config = sandbox_config(sb.url, TOKEN_ENV)
    lifecycle = config["model"]["lifecycle"]
    lifecycle.update(demote=True, own_stages=own_stages)
    if mode == "rules":
        lifecycle.update(
            mode="rules",
            stages=[],
            rules=[
                {"stage": SQL, "when": {"property": "ls_sales_feedback", "equals": "qualified"}},
                {"stage": MQL, "when": {"property": "ls_sales_feedback", "equals": "bad_timing"}},
            ],
        )
    return config


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(generate_portal(300, 17), rate_limit="off") as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        yield sb


def snapshot(sb: Sandbox) -> list[tuple[Contact, list[Any]]]:
    raw = requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()
    return list(parse_snapshot(raw).scoring_inputs())


def write_log(sb: Sandbox, since: int = 0) -> list[dict[str, Any]]:
    writes: list[dict[str, Any]] = requests.get(
        f"{sb.url}/__sandbox/write_log", params={"since": since}, timeout=60
    ).json()["writes"]
    return writes


def set_contacts(sb: Sandbox, values: dict[str, dict[str, str]]) -> None:
    """What a person does in HubSpot (an admin edit: no forward-only rule)."""
    body = {"contacts": [{"id": cid, "properties": props} for cid, props in values.items()]}
    requests.post(f"{sb.url}/__sandbox/contacts", json=body, timeout=30).raise_for_status()


def stage_of(sb: Sandbox, cid: str) -> str:
    props = sb.portal.contact_properties(cid)
    assert props is not None
    return props.get("lifecyclestage", "")


def with_changes(contact: Contact, stage: str, **props: str) -> Contact:
    return Contact(
        contact.id, {**contact.properties, **props}, contact.email, contact.created_at_ms, stage, contact.list_ids
    )


def owned_would_demote(rules: RuleSet, contact: Contact, events: list[Any]) -> bool:
    """A portal owning this stage would move it back now."""
    result = score(contact, events, rules, datetime.now(UTC), written_stage=contact.lifecycle_stage)
    return result.stage_write == "clear_then_set"


def sync(capsys: pytest.CaptureFixture[str], file: Path, db: str, *extra: str) -> tuple[dict[str, Any], list[Any]]:
    """`leadsync sync --json` with info logs: the summary (stdout) and the log events (stderr)."""
    code = main(["sync", "--config", str(file), "--db", db, "--json", "--log-level", "info", *extra])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 0 and summary["status"] == "ok", (summary, err[-2000:])
    return summary, [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err[-2000:]
    return json.loads(out)


def check_plan_and_explain(
    capsys: pytest.CaptureFixture[str], file: Path, db: str, demoted: str, moved: str, written: str
) -> None:
    """With the store, plan and explain demote what the next sync demotes and hold back the rest, saying why;
    without it, stage ownership is unknown and they say so, holding every demotion back."""
    known = cli_json(capsys, "plan", "--config", str(file), "--db", db)
    held = {h["contact_id"]: h["reason"] for h in known["stages_held_back"]}
    moves = {c["contact_id"]: c["stage_move"] for c in known["contacts_written"] if c["stage_move"]}
    assert set(moves) == {demoted} and known["counts"]["demotions"] == 1
    assert f"leadsync last wrote {written}" in held[moved] and demoted not in held
    assert known["counts"]["stages_held_back"] == len(held) and known["stage_ownership"] == "read from the state store"

    unknown = cli_json(capsys, "plan", "--config", str(file))
    assert unknown["counts"]["demotions"] == 0 and "stage ownership is unknown" in unknown["stage_ownership"]
    reasons = {h["contact_id"]: h["reason"] for h in unknown["stages_held_back"]}
    assert "not known to be leadsync's" in reasons[demoted] and moved in reasons

    explained = cli_json(capsys, "explain", "--config", str(file), "--contact", demoted, "--db", db)["stage"]
    assert (explained["write"], explained["held_back"], explained["written_by_leadsync"]) == (
        "clear_then_set",
        None,
        explained["current"],
    )
    explained = cli_json(capsys, "explain", "--config", str(file), "--contact", moved, "--db", db)["stage"]
    assert explained["write"] == "none" and f"leadsync last wrote {written}" in explained["held_back"]
    explained = cli_json(capsys, "explain", "--config", str(file), "--contact", demoted)["stage"]
    assert explained["ownership"] == "unknown (no --db)" and explained["held_back"] is not None

    assert main(["plan", "--config", str(file)]) == 0
    text = capsys.readouterr().out
    assert "stage ownership is unknown (no --db)" in text and "Demotions held back" in text


def backward_writes(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clear-then-set moves in the sandbox's write log: a stage is cleared only to move it back."""
    return [w for w in log if w["properties"].get("lifecyclestage") == ""]


@pytest.mark.parametrize("mode", ["score", "rules"])
def test_demote_moves_back_only_the_stages_leadsync_wrote(
    sandbox: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    sb = sandbox
    config = portal_config(sb, mode)
    file = tmp_path / "portal.yaml"
    file.write_text(yaml.safe_dump(config))
    rules = compile_ruleset(build_portal(config, file).rules)
    db = f"sqlite:///{tmp_path / 'state.db'}"

    # People set MQL and SQL on contacts whose scores (or rules) do not back those stages.
    people: dict[str, str] = {}
    for contact, events in snapshot(sb):
        stage = (MQL, SQL)[len(people) % 2]
        if len(people) < 40 and owned_would_demote(rules, with_changes(contact, stage), events):
            people[contact.id] = stage
    assert len(people) == 40
    set_contacts(sb, {cid: {"lifecyclestage": stage} for cid, stage in people.items()})

    # The first sync, demote on: not one of them moves back; each is counted and logged as held back.
    first, logs = sync(capsys, file, db, "--full")
    assert first["demotions"] == 0 and backward_writes(write_log(sb)) == []
    assert {cid: stage_of(sb, cid) for cid in people} == people
    held = {e["contact_id"]: e for e in logs if e["event"] == "stage_held_back"}
    assert set(people) <= set(held) and first["stages_held_back"] == len(held)
    assert "was not set by leadsync (a person or another tool set it)" in held[next(iter(people))]["reason"]
    assert first["promotions"] > 0 and first["portal"] == {"name": "acme-eu", "id": 12345678}

    # Contacts leadsync promoted itself: one's score then drops, another a person moves to another stage first.
    promoted = {
        w["contactId"]: w["properties"]["lifecyclestage"] for w in write_log(sb) if "lifecyclestage" in w["properties"]
    }
    by_id = {c.id: (c, e) for c, e in snapshot(sb)}
    dropping = [
        cid
        for cid, stage in promoted.items()
        if owned_would_demote(rules, with_changes(by_id[cid][0], stage, **UNQUALIFIED), by_id[cid][1])
    ]
    assert len(dropping) >= 2
    demoted, moved = dropping[0], dropping[1]
    moved_to = SQL if promoted[moved] == MQL else MQL
    set_contacts(sb, {demoted: UNQUALIFIED, moved: {**UNQUALIFIED, "lifecyclestage": moved_to}})
    mark = len(write_log(sb))
    check_plan_and_explain(capsys, file, db, demoted, moved, promoted[moved])
    assert len(write_log(sb)) == mark  # they write nothing

    second, logs = sync(capsys, file, db)
    backward = backward_writes(write_log(sb, mark))
    assert [w["contactId"] for w in backward] == [demoted] and second["demotions"] == 1
    assert stage_of(sb, demoted) != promoted[demoted] and stage_of(sb, moved) == moved_to
    reasons = {e["contact_id"]: e["reason"] for e in logs if e["event"] == "stage_held_back"}
    assert f"leadsync last wrote {promoted[moved]}" in reasons[moved]
    assert second["stages_held_back"] == len(reasons)

    # A portal that opts in to owning every stage demotes the stages people set, as leadsync used to.
    config = portal_config(sb, mode, own_stages="all")
    file.write_text(yaml.safe_dump(config))
    third, _ = sync(capsys, file, db, "--rescore")
    assert third["stages_held_back"] == 0
    assert third["demotions"] >= len(people) + 1
    assert all(stage_of(sb, cid) != stage for cid, stage in people.items())
    assert stage_of(sb, moved) != moved_to
