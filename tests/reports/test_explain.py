"""`leadsync explain`: one contact rule by rule, live or from a snapshot, with what-if scenarios."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.cli import main
from sync.errors import ConfigError
from sync.reports.explain import parse_what_if
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS
from tests.factories import EXAMPLE, NOW_MS, ROOT, example_data, rules_from
from tests.reports.conftest import LIVE_TOKEN_ENV, StartPortal

SNAPSHOT = EXAMPLE.parent.parent / "examples" / "acme-eu.snapshot.json"
NOW = "2026-11-01T12:00:00Z"
DAY_MS = 86_400_000


def explain_json(capsys: pytest.CaptureFixture[str], *argv: str, config: Path = EXAMPLE) -> dict[str, Any]:
    code = main(["explain", "--config", str(config), "--now", NOW, "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def rule(explained: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(line for line in explained["rules"] if line["rule"] == rule_id)


def test_every_rule_is_listed_matched_or_not_with_its_points(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102")
    model = example_data()["model"]
    ids = [r["id"] for r in (*model["fit"]["rules"], *model["engagement"]["rules"])]
    assert [line["rule"] for line in ex["rules"] if ":" not in line["rule"]] == ids
    assert rule(ex, "c-level")["matched"] is False and rule(ex, "c-level")["points"] == 0
    assert rule(ex, "webinar") == {**rule(ex, "webinar"), "matched": True, "points": 15}
    lines = sum(line["points"] for line in ex["rules"])
    assert round(lines, 2) == ex["score"] == 73


def test_event_rules_list_the_events_they_counted_with_their_ages(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102")
    pricing = rule(ex, "pricing-page-forms")
    assert [(e["what"], e["age_days"]) for e in pricing["events"]] == [
        ("Pricing question", 11),
        ("Pricing question", 9),
    ]
    click = rule(ex, "email-click")
    assert "half-life 30d" in click["detail"] and click["events"][0]["age_days"] == 7
    assert rule(ex, "demo-request")["events"] == []
    assert "7 days ago" in rule(ex, "decay:inactivity")["reads"]


def test_band_rules_show_the_value_they_read(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102")
    assert rule(ex, "company-size")["reads"] == "numberofemployees = '250'"


def test_grades_stage_and_the_writes_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102")
    assert ex["grade"] == "B1"
    assert ex["grades"][0].startswith("fit 31 -> B (bands: A >= 50, B >= 25, C otherwise)")
    assert ex["stage"]["write"] == "set" and ex["stage"]["reason"] == "promote lead -> marketingqualifiedlead"
    assert "salesqualifiedlead: score 73 < 80, fit grade B (needs B or better)" in ex["stage"]["checks"]
    writes = {h["property"]: (h["now"], h["would_write"]) for h in ex["hubspot"]}
    assert writes["ls_score"] == ("", "73")
    assert writes["lifecyclestage"] == ("lead", "marketingqualifiedlead")


def test_an_excluded_contact_names_the_exclusion_and_nothing_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "103")
    assert ex["excluded"] is True
    assert ex["verdict"][0].startswith(f"excluded ({ex['exclusion_reason']}): ")
    assert "nothing is written" in ex["verdict"][0]
    assert all(h["would_write"] is None for h in ex["hubspot"])


def test_a_holdout_contact_is_scored_and_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = example_data()
    # The first salt that puts contact 102 in a 50% control group.
    data["holdout"] = next(
        h
        for n in range(100)
        if rules_from({**data, "holdout": (h := {"percent": 50, "salt": f"s{n}"})}).in_holdout("102")
    )
    config = tmp_path / "holdout.yaml"
    config.write_text(yaml.safe_dump(data))
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102", config=config)
    assert ex["holdout"] is True and ex["score"] == 73
    assert any(v.startswith("in the holdout (50% control group") for v in ex["verdict"])
    assert all(h["would_write"] is None for h in ex["hubspot"])


def test_what_if_a_demo_request_tomorrow(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102", "--what-if", "form:Demo request@+1d")
    hypo = ex["what_if"]
    assert ex["score"] == 73  # the real explanation is unchanged
    assert hypo["as_of"] == "2026-11-02T12:00:00Z"  # scored as of the hypothetical event
    demo = rule(hypo, "demo-request")
    assert demo["matched"] and demo["points"] == 70 and demo["events"][0]["age_days"] == 0
    assert hypo["score"] == 100 and hypo["stage"]["target"] == "salesqualifiedlead"
    assert hypo["hypotheticals"] == ["form_submission 'Demo request' at 2026-11-02T12:00:00Z"]


def test_what_if_a_property_value(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "102", "--what-if", "jobtitle=CEO")
    assert rule(ex["what_if"], "c-level")["matched"] is True
    assert ex["what_if"]["score"] == ex["score"] + 10


def test_what_if_text_output_shows_the_difference(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explain", "--config", str(EXAMPLE), "--snapshot", str(SNAPSHOT), "--now", NOW, "--contact", "102"]
    assert main([*argv, "--what-if", "click:https://acme-eu.example/pricing"]) == 0
    out = capsys.readouterr().out
    assert "what if email_click 'https://acme-eu.example/pricing'" in out
    assert "score 73 -> " in out and "HubSpot now and what a run would write" in out


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("teleport:x", "'teleport' is not an event kind"),
        ("open@yesterday", "WHEN 'yesterday' is not now"),
    ],
)
def test_a_bad_what_if_is_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_what_if(["jobtitle=CEO", spec], NOW_MS)
    assert len(caught.value.problems) == 1 and message in str(caught.value.problems[0])


def test_what_if_times_relative_and_absolute() -> None:
    what = parse_what_if(["open@-2d", "form:Webinar@2026-11-03T00:00:00Z", "click@+90m"], NOW_MS)
    assert [e.at_ms for e in what.events] == [NOW_MS - 2 * DAY_MS, NOW_MS + 36 * 3_600_000, NOW_MS + 90 * 60_000]


def test_an_unknown_contact_exits_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "--config", str(EXAMPLE), "--snapshot", str(SNAPSHOT), "--contact", "999"])
    assert code == 1 and "no contact 999 in" in capsys.readouterr().err


def test_a_contact_is_found_by_email_too(capsys: pytest.CaptureFixture[str]) -> None:
    ex = explain_json(capsys, "--snapshot", str(SNAPSHOT), "--contact", "Andrei.Pop@finbank.eu")
    assert ex["contact_id"] == "102"


@pytest.fixture
def live(sandbox_portal: StartPortal) -> tuple[Sandbox, Path]:
    return sandbox_portal(400, 8)


def test_live_explain_reads_the_contact_and_its_events_from_hubspot(
    live: tuple[Sandbox, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb, file = live
    snapshot = requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json()
    (tmp_path / "snap.json").write_text(json.dumps(snapshot))
    emails = {
        s_value["value"] for s in snapshot["form_submissions"] for s_value in s["values"] if s_value["name"] == "email"
    }
    contact = next(c for c in snapshot["contacts"] if c["properties"].get("email") in emails)
    when = datetime.fromtimestamp((DEFAULT_NOW_MS + 3_600_000) / 1000, UTC).isoformat()
    argv = ["explain", "--config", str(file), "--contact", contact["id"], "--now", when, "--json"]
    assert main(argv) == 0
    from_hubspot = json.loads(capsys.readouterr().out)
    assert main([*argv, "--snapshot", str(tmp_path / "snap.json")]) == 0
    from_snapshot = json.loads(capsys.readouterr().out)
    assert from_hubspot == from_snapshot
    assert any(line["events"] for line in from_hubspot["rules"])  # its submissions were found


def test_what_if_events_need_an_email_to_reach_the_contact(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--snapshot", str(SNAPSHOT), "--contact", "102", "--what-if", "email=", "--what-if", "form:Demo request"]
    ex = explain_json(capsys, *argv)
    assert rule(ex["what_if"], "demo-request")["matched"] is False


def test_an_out_of_range_what_if_time_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_what_if(["open@+99999999d"], NOW_MS)
    assert "--what-if 'open@+99999999d'" in str(caught.value.problems[0])


def test_an_empty_contact_is_refused_before_anything_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["explain", "--config", str(EXAMPLE), "--contact", " "])
    assert caught.value.code == 2 and "a contact id or email address is needed" in capsys.readouterr().err


def test_a_refused_token_ends_explain_with_one_line_and_exit_3(
    live: tuple[Sandbox, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, file = live
    monkeypatch.setenv(LIVE_TOKEN_ENV, "not-the-token")
    code = main(["explain", "--config", str(file), "--contact", "1001"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.splitlines()[-1].startswith("leadsync explain: contacts.batch_read: HTTP 401")
    assert err.splitlines()[-1].endswith(
        f"HubSpot refused the token: put a valid private app token (or service key) in {LIVE_TOKEN_ENV}"
    )
    assert "Traceback" not in err


def test_a_what_if_on_a_property_no_rule_reads_is_pointed_out(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["explain", "--config", str(EXAMPLE), "--snapshot", str(SNAPSHOT), "--now", NOW, "--contact", "102"]
    assert main([*argv, "--what-if", "favourite_colour=blue", "--what-if", "jobtitle=CEO", "--json"]) == 0
    err = capsys.readouterr().err
    assert "no rule reads favourite_colour" in err and "jobtitle" not in err


def test_the_scored_at_time_a_run_would_write_is_shown_as_a_time_too(capsys: pytest.CaptureFixture[str]) -> None:
    from sync.cli import main

    config = str(ROOT / "config" / "portals" / "example.yaml")
    snapshot = str(ROOT / "config" / "examples" / "acme-eu.snapshot.json")  # contact 102 gets new values
    assert main(["explain", "--config", config, "--snapshot", snapshot, "--contact", "102", "--now", NOW]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "ls_scored_at" in line)
    assert f"{NOW_MS} (2026-11-01T12:00:00Z)" in row
