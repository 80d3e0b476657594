"""The leadsync command line: score a snapshot offline, print the schema, help for every command."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.cli import main
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from tests.factories import EXAMPLE, example_rules, sandbox_config
from tests.fakes import ManualClock

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "config" / "portals" / "example.yaml")
SNAPSHOT = str(ROOT / "config" / "examples" / "acme-eu.snapshot.json")
NOW = "2026-11-01T12:00:00Z"
SCORE = ["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", NOW]
VALID_IDS = [str(i) for i in range(101, 113)]
RESULT_KEYS = {
    "contact_id",
    "model",
    "fit",
    "engagement",
    "decay",
    "score",
    "grade",
    "stage_target",
    "stage_write",
    "excluded",
    "exclusion_reason",
    "holdout",
    "version",
    "breakdown",
}
BREAKDOWN_KEYS = {"rule", "matched", "points", "detail"}


def score_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[list[dict[str, Any]], str]:
    """The results of `score --json`: one document whose `results` hold one object per contact."""
    assert main([*SCORE, "--json", *extra]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    return document["results"], err


def test_score_json_is_one_document_naming_the_portal_version_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SCORE, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document.keys() == {"portal", "version", "now", "results"}
    assert document["portal"] == {"name": "acme-eu", "id": 12345678}
    assert document["version"] == example_rules().version
    assert document["now"] == "2026-11-01T12:00:00Z"


def test_score_jsonl_streams_one_object_per_line_as_json_did(capsys: pytest.CaptureFixture[str]) -> None:
    results, _ = score_json(capsys)
    assert main([*SCORE, "--jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == results


def test_score_json_prints_one_object_per_valid_contact(capsys: pytest.CaptureFixture[str]) -> None:
    results, _ = score_json(capsys)
    assert [r["contact_id"] for r in results] == VALID_IDS
    for result in results:
        assert result.keys() >= RESULT_KEYS
        assert result["version"] == example_rules().version
        assert result["breakdown"]
        for entry in result["breakdown"]:
            assert entry.keys() >= BREAKDOWN_KEYS


def test_score_json_breakdown_points_add_up_to_the_score(capsys: pytest.CaptureFixture[str]) -> None:
    results, _ = score_json(capsys)
    for result in results:
        assert round(sum(entry["points"] for entry in result["breakdown"]), 2) == result["score"]


@pytest.mark.parametrize(
    ("cid", "expected"),
    [
        ("101", {"score": 100, "grade": "A1", "stage_target": "salesqualifiedlead", "stage_write": "set"}),
        ("103", {"excluded": True, "exclusion_reason": "competitor", "stage_write": "none"}),
        ("104", {"excluded": True, "exclusion_reason": "employee"}),
        ("106", {"stage_write": "none", "decay": -50}),  # a customer is left alone
        ("110", {"stage_target": "salesqualifiedlead", "stage_write": "set"}),  # the contact-sales stage rule
        ("111", {"excluded": True, "exclusion_reason": "list"}),
        ("112", {"excluded": True, "exclusion_reason": "opted_out"}),
    ],
)
def test_score_json_results_of_the_example_snapshot(
    capsys: pytest.CaptureFixture[str], cid: str, expected: dict[str, Any]
) -> None:
    (result,), _ = score_json(capsys, "--contact", cid)
    assert {key: result[key] for key in expected} == expected


def test_score_reports_bad_records_on_stderr_and_skips_them(capsys: pytest.CaptureFixture[str]) -> None:
    _, err = score_json(capsys)
    assert f"{SNAPSHOT}: contacts[12]: contact: has no id; skipped" in err
    assert "contact 114: createdate is not a date" in err
    assert "submission cv-13: submittedAt" in err
    assert "unknown event type 'TELEPORT'" in err
    assert "4 records skipped, 1 events matched no contact" in err


def test_score_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SCORE) == 0
    out, _ = capsys.readouterr()
    assert "contact" in out
    assert "reasons" in out
    assert "lead -> salesqualifiedlead" in out
    assert "excluded: competitor" in out
    assert f"12 contacts scored with rule-set version {example_rules().version} as of 2026-11-01T12:00:00Z" in out


@pytest.mark.parametrize("wanted", [["101"], ["102", "110"]])
def test_contact_filters_the_results(capsys: pytest.CaptureFixture[str], wanted: list[str]) -> None:
    extra = [arg for cid in wanted for arg in ("--contact", cid)]
    results, _ = score_json(capsys, *extra)
    assert [r["contact_id"] for r in results] == wanted


def test_an_unknown_contact_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    results, err = score_json(capsys, "--contact", "999")
    assert results == []
    assert "no contact 999" in err


@pytest.mark.parametrize("now", ["yesterday", "2026-13-01"])
def test_a_bad_now_fails_with_a_clear_message(capsys: pytest.CaptureFixture[str], now: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["score", "--config", CONFIG, "--snapshot", SNAPSHOT, "--now", now, "--json"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"--now: cannot read {now!r} as a time (use ISO 8601: 2026-11-29T02:34:00Z" in err
    assert "usage: leadsync score" in err  # the usage of the command whose option it is


def test_bare_leadsync_prints_the_whole_help_on_stderr_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: leadsync") and "COMMAND" in err
    assert all(command in err for command in ("validate", "score", "plan", "sync", "run", "dead-letters"))


def test_a_missing_snapshot_is_a_config_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert main(["score", "--config", CONFIG, "--snapshot", str(missing), "--now", NOW]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"portal", "model", "models", "exclusions", "holdout"} <= schema["properties"].keys()


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        ([], "COMMAND"),
        (["validate"], "CONFIG"),
        (["schema"], "JSON Schema"),
        (["score"], "--snapshot"),
    ],
)
def test_help_of_each_command(capsys: pytest.CaptureFixture[str], argv: list[str], mentions: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: leadsync")
    assert mentions in out


# -- progress bars: a total and the time left on a terminal, nothing in logs --


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

    def text(self) -> str:
        """What a reader sees, colours and cursor moves left out."""
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.getvalue())


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Path]]:
    with Sandbox(generate_portal(230, 2, portal_id=12345678), rate_limit="off") as sb:
        monkeypatch.setenv("LEADSYNC_CLI_PROGRESS_TOKEN", sb.token)
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(sandbox_config(sb.url, "LEADSYNC_CLI_PROGRESS_TOKEN")))
        yield sb, file


def searches(sb: Sandbox) -> int:
    stats = requests.get(f"{sb.url}/__sandbox/stats", timeout=10).json()
    return sum(stats["requests"].get("POST /crm/v3/objects/contacts/search", {}).values())


@pytest.mark.parametrize("terminal", [True, False])
def test_a_full_sync_shows_done_of_the_portal_count_only_on_a_terminal(
    live: tuple[Sandbox, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    sb, file = live
    stderr = Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    assert main(["sync", "--config", str(file), "--full", "--db", db, "--log-level", "error"]) == 0
    shown = stderr.text() if isinstance(stderr, Terminal) else stderr.getvalue()
    if terminal:
        assert "acme-eu: full sync contacts" in shown and "230/230" in shown and "left" in shown
        assert searches(sb) == 1  # the count: one search call
    else:
        assert shown == "" and searches(sb) == 0  # no bar, no call to count for it


def test_reading_a_live_portal_shows_its_contacts_against_the_count(
    live: tuple[Sandbox, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb, file = live
    stderr = Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["snapshot", "--config", str(file), "--out", str(tmp_path / "s.json")]) == 0
    assert re.search(r"reading portal acme-eu: contacts .* 230/230 left", stderr.text())
    events = [line for line in stderr.text().splitlines() if "reading portal acme-eu: events" in line]
    assert events and all(re.search(r"[0-9]+/\?", line) for line in events)  # no total to ask for
    assert not any("left" in line for line in events)  # so no time left to tell
    assert searches(sb) == 1


def test_scoring_shows_contacts_done_of_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stderr = Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(SCORE) == 0
    assert re.search(r"scoring contacts .* 12/12 left 0:00:00", stderr.text())


def test_the_dead_letters_list_prints_times_as_iso_8601_utc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sync.config import load_portal
    from sync.ports import DeadLetter
    from sync.store.state import SqlStateStore

    db = f"sqlite:///{tmp_path / 'state.db'}"
    store = SqlStateStore(db, clock=ManualClock(1_795_919_640.0))  # 2026-11-29T02:34:00Z
    letter = DeadLetter("c1", {"ls_score": "5"}, "INVALID_OPTION", 400)
    store.complete_writes(load_portal(CONFIG).config.portal.id, "run0", [], [letter])
    store.close()
    assert main(["dead-letters", "list", "--config", CONFIG, "--db", db]) == 0
    assert "next attempt 2026-11-29T02:49:00Z" in capsys.readouterr().out  # 15 minutes after the refusal


def test_a_missing_token_says_which_variable_and_which_portal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUBSPOT_TOKEN_ACME", raising=False)
    assert main(["plan", "--config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert "HUBSPOT_TOKEN_ACME: is not set: export the token of portal acme-eu in it" in err
