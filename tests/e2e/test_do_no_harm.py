"""End to end, through the CLI: leadsync writes only to the portal the file names, and only its own properties."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from structlog.testing import capture_logs

from sync.app import check_live, open_portal
from sync.cli import main
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.sandbox.properties import PropertyDef, PropertyGroup
from sync.scheduler import Service
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config

TOKEN_ENV = "LEADSYNC_HARM_TOKEN"
HOOK_ENV = "LEADSYNC_HARM_WEBHOOK"
HOOK = "https://hooks.example.test/services/T1/B1/harm"
PORTAL_ID = 12345678  # the reference config's portal.id and the sandbox's default


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(generate_portal(60, 9), rate_limit="off") as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        yield sandbox


def write_config(folder: Path, sb: Sandbox, name: str = "acme.yaml", **changes: Any) -> Path:
    config = sandbox_config(sb.url, TOKEN_ENV)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config.setdefault(section, {})[field] = value
        else:
            config[section] = value
    file = folder / name
    file.write_text(yaml.safe_dump(config, sort_keys=False))
    return file


def property_writes(sb: Sandbox) -> int:
    """API calls that change the portal: contact updates and property or group creations and edits."""
    stats = sb.stats_json()["requests"]
    changing = ("batch/update", "POST /crm/v3/properties", "PATCH /crm/v3/properties")
    return sum(sum(by.values()) for route, by in stats.items() if any(part in route for part in changing))


def sync(file: Path, tmp_path: Path) -> int:
    return main(["sync", "--config", str(file), "--db", f"sqlite:///{tmp_path / 'state.db'}", "--log-level", "error"])


# -- item 1: the wrong portal --


def test_sync_with_another_portals_token_exits_2_naming_both_ids_and_writes_nothing(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb.portal.portal_id = 999
    assert sync(write_config(tmp_path, sb), tmp_path) == 2
    err = capsys.readouterr().err
    assert "the token belongs to portal 999 but the file names portal 12345678 (portal.id)" in err
    assert property_writes(sb) == 0 and sb.portal.write_log() == []
    assert "POST /crm/v3/properties/contacts/groups" not in sb.stats_json()["requests"]


def test_sync_with_the_right_portal_checks_it_and_writes(sb: Sandbox, tmp_path: Path) -> None:
    assert sync(write_config(tmp_path, sb), tmp_path) == 0
    assert sb.stats_json()["requests"]["GET /account-info/v3/details"] == {"200": 1}
    assert sb.portal.write_log()


def test_plan_and_validate_live_refuse_the_wrong_portal_too(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sb.portal.portal_id = 999
    file = write_config(tmp_path, sb)
    assert main(["plan", "--config", str(file)]) == 2
    assert "portal 999 but the file names portal 12345678" in capsys.readouterr().err
    assert main(["validate", "--live", str(file)]) == 2
    err = capsys.readouterr().err
    assert f"{file}: error: portal.id: wrong portal: the token belongs to portal 999" in err
    assert property_writes(sb) == 0


def test_the_service_pauses_and_alerts_the_wrong_portal_and_syncs_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "portals"
    folder.mkdir()
    monkeypatch.setenv(HOOK_ENV, HOOK)
    with (
        Sandbox(generate_portal(40, 1, portal_id=7001), rate_limit="off") as good,
        Sandbox(generate_portal(40, 2, portal_id=7002), rate_limit="off") as bad,
        responses.RequestsMock(assert_all_requests_are_fired=False) as hook,
    ):
        monkeypatch.setenv(TOKEN_ENV, good.token)  # both sandboxes take the same token
        hook.post(HOOK, status=200)
        hook.add_passthru(good.url)
        hook.add_passthru(bad.url)
        alerts = {"webhook_env": HOOK_ENV}
        write_config(folder, good, "good.yaml", portal__id=7001, portal__name="good", alerts=alerts)
        write_config(folder, bad, "bad.yaml", portal__id=7003, portal__name="bad", alerts=alerts)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        service = Service(folder, store, open_portal, jitter_s=0, live_check=check_live)
        with capture_logs() as logs:
            service.load()
            service.keep_leases()
            for _ in range(2):
                service.run_portal("good", "incremental")
                service.run_portal("bad", "incremental")
        health = service.health()
        assert good.portal.write_log() and property_writes(bad) == 0
        # The operator fixes portal.id and reloads: a new Portal object is checked again, and syncs.
        write_config(folder, bad, "bad.yaml", portal__id=7002, portal__name="bad", alerts=alerts)
        service.load()
        service.keep_leases()
        service.run_portal("bad", "incremental")
        service.scheduler.remove_all_jobs()
        store.close()
        assert bad.portal.write_log() and service.health()["portals"]["bad"]["paused"] is None
        sent = [json.loads(call.request.body or b"{}")["text"] for call in hook.calls if call.request.url == HOOK]
    assert len(sent) == 1 and "bad" in sent[0] and "is paused: wrong portal" in sent[0] and "7002" in sent[0]
    assert "7002" in health["portals"]["bad"]["paused"] and health["portals"]["good"]["paused"] is None
    # The identity check comes first in every cycle: a wrong portal is not checked any further.
    assert [e for e in logs if e["event"] == "live_check"] == []
    finished = [(e["portal"], e["status"]) for e in logs if e["event"] == "run_finished"]
    assert finished == [("good", "ok"), ("bad", "paused")] * 2


def test_the_service_pauses_a_portal_whose_file_does_not_fit_it_and_alerts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "portals"
    folder.mkdir()
    monkeypatch.setenv(HOOK_ENV, HOOK)
    with (
        Sandbox(generate_portal(40, 3), rate_limit="off") as sb,
        responses.RequestsMock(assert_all_requests_are_fired=False) as hook,
    ):
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        hook.post(HOOK, status=200)
        hook.add_passthru(sb.url)
        config = sandbox_config(sb.url, TOKEN_ENV)
        config["alerts"] = {"webhook_env": HOOK_ENV}
        config["model"]["fit"]["rules"].append(
            {"id": "ghost", "property": "no_such_property", "exists": True, "points": 5}
        )
        (folder / "acme.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        service = Service(folder, store, open_portal, jitter_s=0, live_check=check_live)
        with capture_logs() as logs:
            service.load()
            service.keep_leases()
            for _ in range(2):
                service.run_portal("acme-eu", "incremental")
        health = service.health()
        service.scheduler.remove_all_jobs()
        store.close()
        assert property_writes(sb) == 0 and sb.portal.write_log() == []
        sent = [json.loads(call.request.body or b"{}")["text"] for call in hook.calls if call.request.url == HOOK]
    assert len(sent) == 1 and "no_such_property" in sent[0]
    assert "no_such_property" in health["portals"]["acme-eu"]["paused"]
    checks = [e for e in logs if e["event"] == "live_check"]
    assert len(checks) == 1 and checks[0]["field"] == "model.fit.rules[12]"  # once per Portal object
    assert [e["status"] for e in logs if e["event"] == "run_finished"] == ["paused", "paused"]


# -- item 2: properties leadsync does not own --


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"properties__score": "numberofemployees"}, "properties.score", "HubSpot default property"),
        ({"properties__reasons": "jobtitle"}, "properties.reasons", "HubSpot default property"),
        ({"properties__fit": "hs_lead_score"}, "properties.fit", "HubSpot default property"),
        ({"properties__fit": "need_level"}, "properties.fit", "is read by model.fit.rules[2]"),
        ({"properties__grade": "ls_score"}, "properties.grade", "is also this model's score"),
        ({"properties__adopt": ["old_score"]}, "properties.adopt[0]", "not an output of any model"),
    ],
)
def test_an_output_leadsync_must_not_write_is_a_config_error_with_file_line_and_field(
    sb: Sandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    field: str,
    says: str,
) -> None:
    file = write_config(tmp_path, sb, **changes)
    assert sync(file, tmp_path) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if f": {field}: " in ln)
    assert line.startswith(f"{file}:") and line.split(":")[1].isdigit() and says in line
    assert sb.stats_json()["total_requests"] == 0  # refused before HubSpot was asked anything


def test_two_models_may_share_an_output_of_one_kind_but_not_across_kinds(sb: Sandbox, tmp_path: Path) -> None:
    config = sandbox_config(sb.url, TOKEN_ENV)
    model = config.pop("model")
    other = {**model, "name": "other", "properties": {"score": "ls_fit"}}
    config["models"] = [{**model, "name": "first", "segment": {"property": "country", "exists": True}}, other]
    file = tmp_path / "two.yaml"
    file.write_text(yaml.safe_dump(config))
    assert main(["validate", str(file)]) == 2
    config["models"][1]["properties"] = {"score": "ls_score"}  # the same output in two models: normal
    file.write_text(yaml.safe_dump(config))
    assert main(["validate", str(file)]) == 0


def foreign_score(sb: Sandbox) -> None:
    """An older score property someone else made, in their own group."""
    sb.portal.define_group(PropertyGroup("legacy", "Legacy scoring", 9))
    sb.portal.define_property(PropertyDef("old_score", "Old score", "number", "number", "legacy", ()))


def test_an_output_existing_outside_leadsyncs_group_stops_the_run_before_any_write(
    sb: Sandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign_score(sb)
    assert sync(write_config(tmp_path, sb, properties__score="old_score"), tmp_path) == 2
    err = capsys.readouterr().err
    assert "old_score already exists in HubSpot (in group 'legacy')" in err and "properties.adopt" in err
    assert property_writes(sb) == 0  # not even leadsync's other properties were created


def test_an_adopted_property_is_written_and_nothing_else_of_anyone_elses(sb: Sandbox, tmp_path: Path) -> None:
    foreign_score(sb)
    file = write_config(tmp_path, sb, properties__score="old_score")
    data = yaml.safe_load(file.read_text())
    data["properties"]["adopt"] = ["old_score"]
    file.write_text(yaml.safe_dump(data))
    assert sync(file, tmp_path) == 0
    written = {name for w in sb.portal.write_log() for name in w.properties}
    assert "old_score" in written
    assert written <= {
        "old_score",
        "ls_fit",
        "ls_engagement",
        "ls_grade",
        "ls_reasons",
        "ls_scored_at",
        "lifecyclestage",
    }
    assert sb.portal.property_def("old_score").group_name == "legacy"  # type: ignore[union-attr]
