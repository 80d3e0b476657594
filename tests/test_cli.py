"""The leadsync command line: score a snapshot offline, print the schema, help for every command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.cli import main
from tests.factories import example_rules

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
    assert document["now"] == "2026-11-01T12:00:00+00:00"


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
    assert f"12 contacts scored with rule-set version {example_rules().version} as of 2026-11-01T12:00:00+00:00" in out


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
