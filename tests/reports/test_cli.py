"""`leadsync backtest` and `leadsync report` from the command line: exit codes, output, messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.cli import main
from sync.store.state import SqlStateStore
from tests.reports.conftest import CONFIG, HIGH_MQL_BAND_WIDTH, NOW


def backtest_argv(snapshot: Path, *extra: str) -> list[str]:
    return ["backtest", "--config", CONFIG, "--snapshot", str(snapshot), "--now", NOW, *extra]


def report_argv(snapshot: Path, out: Path, *extra: str) -> list[str]:
    return ["report", "--config", CONFIG, "--snapshot", str(snapshot), "--now", NOW, "--out", str(out), *extra]


def test_backtest_json_has_the_metrics(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    assert main(backtest_argv(snapshot_file, "--json")) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert out["source"] == f"snapshot {snapshot_file}"
    assert out["outcome"] == "lifecyclestage=opportunity|customer"
    assert out["contacts"]["total"] == 1500
    assert out["contacts"]["scored"] + out["contacts"]["excluded"] == 1500
    assert [(t["stage"], t["min_score"], t["min_fit_grade"]) for t in out["thresholds"]] == [
        ("marketingqualifiedlead", 50, None),
        ("salesqualifiedlead", 80, "B"),
    ]
    for threshold in out["thresholds"]:
        assert threshold.keys() >= {"qualified", "precision", "recall", "lift", "holdout", "written"}
    assert out["rules"][0]["key"] == "demo-request" and out["rules"][0]["rank"] == 1
    assert {b["label"] for b in out["score_bands"]} >= {"0-9", "50-59"}
    assert out["holdout"]["holdout"]["contacts"] > 0


def test_backtest_prints_tables_and_warnings_for_people(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, high_mql_config: Path
) -> None:
    argv = backtest_argv(snapshot_file, "--band-width", str(HIGH_MQL_BAND_WIDTH))
    argv[argv.index(CONFIG)] = str(high_mql_config)
    assert main(argv) == 0
    out = capsys.readouterr().out
    for title in ("Lifecycle thresholds", "Conversion by score band", "Conversion by grade", "Close rate", "Holdout"):
        assert title in out
    assert "base rate" in out
    # An MQL threshold of 70 misses most converters while the 50-69 band converts well.
    assert "warning: The MQL threshold (score >= 70; or a stage rule) looks too high" in out


def test_backtest_band_width_and_outcome_options(capsys: pytest.CaptureFixture[str], snapshot_file: Path) -> None:
    assert (
        main(backtest_argv(snapshot_file, "--json", "--band-width", "25", "--outcome", "lifecyclestage=Customer")) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["band_width"] == 25 and [b["from"] for b in out["score_bands"]][:2] == [0, 25]
    assert out["outcome"] == "lifecyclestage=Customer" and out["base_rate"]["converted"] > 0


@pytest.mark.parametrize("outcome", ["lifecyclestage", "lifecyclestage=", "=customer", "stage=a||b"])
def test_a_malformed_outcome_is_a_usage_error_showing_the_form(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, outcome: str
) -> None:
    assert main(backtest_argv(snapshot_file, "--outcome", outcome)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"--outcome: {outcome!r}" in captured.err and "expected PROPERTY=VALUE or PROPERTY=V1|V2" in captured.err


@pytest.mark.parametrize("command", ["backtest", "report"])
def test_a_missing_snapshot_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str) -> None:
    missing = tmp_path / "missing.json"
    argv = backtest_argv(missing) if command == "backtest" else report_argv(missing, tmp_path / "r.html")
    assert main(argv) == 2
    assert f"{missing}: cannot read: No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("option", ["--band-width", "--min-support"])
def test_a_band_width_or_support_below_1_is_refused(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, option: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(backtest_argv(snapshot_file, option, "0"))
    assert exc.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err


def test_report_writes_one_html_file(capsys: pytest.CaptureFixture[str], snapshot_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(report_argv(snapshot_file, out, "--db", f"sqlite:///{tmp_path / 'state.db'}")) == 0
    assert capsys.readouterr().out.startswith(f"{out}: report of 1500 contacts")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and 'id="chart-score-distribution"' in page


def test_report_says_plainly_when_the_store_has_no_runs_for_the_portal(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    SqlStateStore(url).close()  # a store, but no run of this portal
    assert main(report_argv(snapshot_file, tmp_path / "r.html", "--db", url)) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "The state store has no runs for portal acme-eu (12345678) yet." in page


def test_report_without_a_store_says_where_it_looked_and_creates_none(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEADSYNC_DB_URL", raising=False)
    assert main(report_argv(snapshot_file, tmp_path / "r.html")) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"No state store at {tmp_path / 'leadsync.db'}" in page
    assert not (tmp_path / "leadsync.db").exists()


def test_report_json_names_the_file_and_carries_the_backtest(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    assert main(report_argv(snapshot_file, out, "--json", "--db", f"sqlite:///{tmp_path / 's.db'}")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(out) and summary["bytes"] == out.stat().st_size
    assert summary["thresholds"] and summary["warnings"] is not None


def test_report_to_an_unwritable_place_fails_with_the_reason(
    capsys: pytest.CaptureFixture[str], snapshot_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "no-such-folder" / "r.html"
    assert main(report_argv(snapshot_file, out, "--db", f"sqlite:///{tmp_path / 's.db'}")) == 1
    assert f"cannot write {out}" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "mentions"), [("backtest", "--outcome"), ("report", "--out")])
def test_help(capsys: pytest.CaptureFixture[str], command: str, mentions: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: leadsync {command}") and mentions in out
