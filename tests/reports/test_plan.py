"""`leadsync plan`: a dry run whose predictions are exactly what the following sync writes."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.app import open_portal
from sync.cli import main
from sync.core.model import Contact
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, parallel
from sync.reports.plan import build_plan
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS
from sync.store.state import SqlStateStore
from tests.factories import EXAMPLE, NOW_MS, example_data, rules_from
from tests.fakes import ManualClock
from tests.reports.conftest import StartPortal

T0_MS = DEFAULT_NOW_MS + 3_600_000
T0 = datetime.fromtimestamp(T0_MS / 1000, UTC).isoformat()
CLOCK = ManualClock.at_ms(T0_MS).seconds
SNAPSHOT = EXAMPLE.parent.parent / "examples" / "acme-eu.snapshot.json"
SNAPSHOT_NOW = "2026-11-01T12:00:00Z"


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def written_by_sync(sb: Sandbox) -> dict[str, dict[str, str]]:
    """Each contact's final value of every property the sync wrote (a clear then set ends at the set)."""
    log = requests.get(f"{sb.url}/__sandbox/write_log", timeout=60).json()["writes"]
    final: dict[str, dict[str, str]] = {}
    for write in log:
        final.setdefault(write["contactId"], {}).update(write["properties"])
    return final


@pytest.mark.parametrize(
    ("demote", "own_stages"),
    [(False, "written"), (True, "written"), (True, "all")],
    ids=["forward-only", "demote", "demote-owning-all"],
)
def test_plan_predicts_contact_by_contact_what_the_following_sync_writes(
    sandbox_portal: StartPortal, tmp_path: Path, capsys: pytest.CaptureFixture[str], demote: bool, own_stages: str
) -> None:
    sandbox, file = sandbox_portal(2500, 5, clock=CLOCK, demote=demote, own_stages=own_stages)
    code, out, err = run_cli(["plan", "--config", str(file), "--now", T0, "--json"], capsys)
    assert code == 0, err
    plan = json.loads(out)
    assert requests.get(f"{sandbox.url}/__sandbox/write_log", timeout=30).json()["writes"] == []  # a dry run

    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
    portal.clock = ManualClock.at_ms(T0_MS)
    summary = Cycle(portal, "full").run()
    store.close()
    assert summary.status == "ok", summary.error

    predicted = {}
    for contact in plan["contacts_written"]:
        values = dict(contact["writes"])
        if contact["stage_move"]:
            values["lifecyclestage"] = contact["stage_move"]
        predicted[contact["contact_id"]] = values
    actual = {
        cid: {k: v for k, v in props.items() if k != "ls_scored_at"} for cid, props in written_by_sync(sandbox).items()
    }
    assert len(predicted) > 1000
    assert actual == predicted
    assert summary.counts["written"] == plan["counts"]["written"]
    moves = sum(1 for c in plan["contacts_written"] if c["stage_move"])
    # Owning every stage exercises clear-then-set predictions; owning only its own, a first sync moves nothing
    # back (no stage is known to be leadsync's) and the plan counts those demotions as held back, as the sync does.
    assert (moves > 0) == (demote and own_stages == "all")
    assert plan["counts"]["demotions"] == moves == summary.counts.get("demotions", 0)
    held = plan["counts"]["stages_held_back"]
    assert (held > 0) == (demote and own_stages == "written")
    assert held == len(plan["stages_held_back"]) == summary.counts.get("stages_held_back", 0)
    assert plan["counts"]["promotions"] == summary.counts.get("promotions", 0) > 0


def test_plan_counts_the_api_calls_of_the_run(sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox, file = sandbox_portal(2500, 5, clock=CLOCK)
    requests.post(f"{sandbox.url}/__sandbox/reset_stats", timeout=30)
    code, out, _ = run_cli(["plan", "--config", str(file), "--now", T0, "--json"], capsys)
    calls = json.loads(out)["api_calls"]
    stats = requests.get(f"{sandbox.url}/__sandbox/stats", timeout=30).json()
    made = sum(sum(by.values()) for by in stats["requests"].values())
    assert code == 0 and calls["reads"] == made  # every call the plan made was a read
    assert calls["update_batches"] == 25  # 2,500 contacts, a batch update per page of 100 with writes
    assert calls["total"] == calls["reads"] + calls["property_checks"] + calls["update_batches"]


def test_plan_text_shows_counts_transitions_crossings_and_top_contacts(
    sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]
) -> None:
    _, file = sandbox_portal(2500, 5, clock=CLOCK)
    code, out, _ = run_cli(["plan", "--config", str(file), "--now", T0, "--top", "5"], capsys)
    assert code == 0
    assert "Nothing was written." in out
    assert "2500 contacts:" in out
    assert "Stage transitions" in out and "marketingqualifiedlead" in out
    assert "Threshold crossings" in out
    assert "API calls a first full sync (backfill) would make" in out
    assert "Top 5 changed contacts" in out


def _contact(cid: str, **props: str) -> Contact:
    """A contact created yesterday (no inactivity decay yet) with these properties."""
    email = f"{cid}@corp.example"
    created = NOW_MS - 86_400_000
    return Contact(cid, {"email": email, **props}, email, created, props.get("lifecyclestage", "lead"))


def test_comparing_two_configs_counts_only_what_the_rule_change_moves() -> None:
    data = example_data()
    data["holdout"] = {"percent": 0, "salt": "x"}
    old = rules_from(data)
    for threshold in data["model"]["lifecycle"]["stages"]:
        if threshold["stage"] == "marketingqualifiedlead":
            threshold["min_score"] = 30
    new = rules_from(data)
    # need=core (20) + decision_role=owner (10) = 30 fit points: an MQL under the new threshold only.
    rising = _contact("1", need_level="core", decision_role="owner")
    steady = _contact("2", need_level="none")
    report = build_plan([(rising, []), (steady, [])], new, NOW_MS, source="test", base=old, base_label="old")
    assert report.counts["score_changed"] == 0
    assert report.counts["stage_changed"] == 1
    assert report.transitions == {("lead", "marketingqualifiedlead"): 1}
    mql = next(c for c in report.crossings if c.stage == "marketingqualifiedlead")
    assert (mql.min_score, mql.up, mql.down) == (30, 0, 0)  # the scores did not move; the threshold did
    assert [d.contact_id for d in report.top(10)] == ["1"]  # contact 2 is written, but its outcome is the same


def test_threshold_crossings_count_scores_moving_past_a_threshold() -> None:
    data = example_data()
    data["holdout"] = {"percent": 0, "salt": "x"}
    rules = rules_from(data)
    up = _contact("10", need_level="core", decision_role="owner", budget_fit="fits", industry="ENERGY", ls_score="20")
    down = _contact("11", need_level="none", ls_score="60", lifecyclestage="marketingqualifiedlead")
    report = build_plan([(up, []), (down, [])], rules, NOW_MS, source="test")
    mql = next(c for c in report.crossings if c.stage == "marketingqualifiedlead")
    assert (mql.up, mql.down) == (1, 1)


def test_the_summary_counts_excluded_and_holdout_contacts_out_of_all_contacts_as_they_overlap() -> None:
    from rich.console import Console

    from sync.reports.plan import print_plan

    data = example_data()
    data["holdout"] = {"percent": 50, "salt": "x"}
    rules = rules_from(data)
    first, second = [cid for cid in map(str, range(1, 100)) if rules.in_holdout(cid)][:2]  # the excluded one too
    rival = Contact(first, {"email": "a@rival.com"}, "a@rival.com", NOW_MS - 86_400_000, "lead")
    report = build_plan([(rival, []), (_contact(second, need_level="core"), [])], rules, NOW_MS, source="test")
    console = Console(record=True, width=400)
    print_plan(report, console, 5, live=False)
    out = console.export_text()
    # 1 excluded and 2 in the holdout are more than the 2 contacts left unwritten: not a breakdown of them.
    assert "0 would be written, 2 would not. Of all 2: 1 excluded, 2 in the holdout (a contact can be both)." in out


def test_a_contact_that_cannot_be_scored_is_reported_and_the_plan_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = rules_from(example_data())
    from sync.core.decision import decide as real

    def decide(contact: Contact, events: Any, rules: Any, now_ms: int, current: Any, **kwargs: Any) -> Any:
        if contact.id == "2":
            raise ValueError("corrupt record")
        return real(contact, events, rules, now_ms, current, **kwargs)

    monkeypatch.setattr(parallel, "decide", decide)  # where the plan's decisions are made, here or in workers
    report = build_plan([(_contact("2"), []), (_contact("1", need_level="core"), [])], rules, NOW_MS, source="test")
    assert report.counts["skipped"] == 1 and report.contacts == 2
    assert report.problems == ["contact 2: ValueError: corrupt record"]
    assert [d.contact_id for d in report.diffs] == ["1"]


def test_plan_on_a_snapshot_against_a_base_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = example_data()
    data["model"]["engagement"]["rules"] = [
        {**r, "points": 30} if r["id"] == "webinar" else r for r in data["model"]["engagement"]["rules"]
    ]
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(data))
    argv = ["plan", "--config", str(new), "--base-config", str(EXAMPLE), "--snapshot", str(SNAPSHOT)]
    code, out, _ = run_cli([*argv, "--now", SNAPSHOT_NOW, "--json"], capsys)
    plan = json.loads(out)
    assert code == 0
    assert plan["compared_with"].startswith(str(EXAMPLE))
    assert plan["counts"]["score_changed"] >= 1
    moved = [c for c in plan["top_changes"] if c["before"]["score"] != c["after"]["score"]]
    assert moved and all("+30 webinar" in c["reasons"] for c in moved)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


def test_against_version_compares_with_the_committed_config_and_its_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    (repo / "portals").mkdir(parents=True)
    base = example_data()
    (repo / "base.yaml").write_text(yaml.safe_dump(base))
    portal = repo / "portals" / "p.yaml"
    portal.write_text(yaml.safe_dump({"extends": "../base.yaml", "portal": base["portal"]}))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    base["model"]["lifecycle"]["stages"][1]["min_score"] = 70  # the working tree lowers the SQL threshold
    (repo / "base.yaml").write_text(yaml.safe_dump(base))
    argv = ["plan", "--config", str(portal), "--against-version", "HEAD", "--snapshot", str(SNAPSHOT)]
    code, out, err = run_cli([*argv, "--now", SNAPSHOT_NOW, "--json"], capsys)
    assert code == 0, err
    plan = json.loads(out)
    assert "at HEAD" in plan["compared_with"]
    assert plan["counts"]["score_changed"] == 0 and plan["counts"]["stage_changed"] > 0
    assert {(t["from"], t["to"]) for t in plan["stage_transitions"]} == {
        ("marketingqualifiedlead", "salesqualifiedlead")
    }


def test_against_an_unknown_version_is_a_clear_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "p.yaml").write_text(EXAMPLE.read_text())
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    argv = ["plan", "--config", str(repo / "p.yaml"), "--snapshot", str(SNAPSHOT), "--against-version", "nope"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert "unknown revision 'nope'" in err
    git(repo, "mv", "p.yaml", "q.yaml")
    git(repo, "commit", "-qm", "moved")
    argv = ["plan", "--config", str(repo / "q.yaml"), "--snapshot", str(SNAPSHOT), "--against-version", "HEAD~1"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "does not exist at revision HEAD~1" in err


def test_plan_json_hides_emails_unless_the_portal_allows_them_in_logs(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["plan", "--config", str(EXAMPLE), "--snapshot", str(SNAPSHOT), "--now", SNAPSHOT_NOW, "--json"]
    code, out, _ = run_cli(argv, capsys)
    emails = [c["email"] for c in json.loads(out)["contacts_written"]]
    assert code == 0 and emails and all(e.startswith("hmac:") for e in emails)


def test_a_negative_top_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--config", str(EXAMPLE), "--top", "-1"])
    assert "must be 0 or more" in capsys.readouterr().err
