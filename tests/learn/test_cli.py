"""`leadsync train`, `suggest`, and the `predictive:` section through validate and explain, on the command line."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.cli import main
from sync.config.model_file import write_model
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from tests.factories import EXAMPLE, validate_live
from tests.learn.conftest import AS_OF, HORIZON_DAYS
from tests.learn.test_model_file import CONTENT

NOW = "2026-11-01T12:00:00Z"


@pytest.fixture(scope="module")
def trained(planted_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("model") / "model.json"
    args = ["train", "--config", str(EXAMPLE), "--snapshot", str(planted_file), "--as-of", AS_OF]
    args += ["--horizon-days", str(HORIZON_DAYS), "--out", str(out), "--json"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    return out, json.loads(buffer.getvalue())


def portal_file(folder: Path, model: Path, **properties: str) -> Path:
    file = folder / "portal.yaml"
    section: dict[str, Any] = {"model": str(model)}
    if properties:
        section["properties"] = properties
    file.write_text(yaml.safe_dump({"extends": str(EXAMPLE), "predictive": section}))
    return file


def test_train_writes_a_model_that_beats_the_rules_and_says_so(trained: tuple[Path, dict[str, Any]]) -> None:
    out, printed = trained
    on_disk = json.loads(out.read_text())
    assert printed["version"] == on_disk["version"]
    metrics = on_disk["metrics"]
    assert metrics["auc_gain"] >= 0.10
    assert metrics["model"]["top_decile_lift"] > metrics["rule_score"]["top_decile_lift"]
    assert on_disk["training"]["outcome"] == "hs_lifecyclestage_customer_date"
    assert on_disk["features"][0]["label"] in {"jobtitle=Energy Manager", "form:Procurement checklist", "inactive 120d"}


def test_train_refuses_too_few_converters_and_writes_nothing(
    planted_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.json"
    args = ["train", "--config", str(EXAMPLE), "--snapshot", str(planted_file), "--as-of", AS_OF]
    code = main([*args, "--horizon-days", "1", "--out", str(out)])
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "refused: too few converters to learn from" in err and "(at least 30 needed)" in err


def test_validate_reads_the_model_named_by_the_portal_file(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(portal_file(tmp_path, trained[0]))]) == 0
    assert f"likelihood model {trained[1]['version']})" in capsys.readouterr().out


def test_validate_refuses_a_hand_edited_model(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = tmp_path / "edited.json"
    data = json.loads(trained[0].read_text())
    data["intercept"] += 1  # the version hash is left as it was
    edited.write_text(json.dumps(data))
    assert main(["validate", str(portal_file(tmp_path, edited))]) == 2
    err = capsys.readouterr().err
    assert "predictive.model" in err and "does not match its content" in err


def test_validate_refuses_a_hubspot_property_as_an_output(
    trained: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(portal_file(tmp_path, trained[0], likelihood="hubspotscore"))]) == 2
    assert "predictive.properties.likelihood: hubspotscore is a HubSpot default property" in capsys.readouterr().err


def test_explain_lists_every_features_contribution(
    trained: tuple[Path, dict[str, Any]], planted_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot = json.loads(planted_file.read_text())
    contact = snapshot["contacts"][0]["id"]
    config = portal_file(tmp_path, trained[0])
    args = ["explain", "--config", str(config), "--snapshot", str(planted_file), "--contact", contact]
    assert main([*args, "--now", NOW, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["likelihood"]
    assert len(shown["features"]) == len(trained[1]["features"])
    assert shown["model"] == trained[1]["version"] and 0 <= shown["value"] <= 100


def test_suggest_turns_the_planted_features_into_rules_and_backtests_them(
    trained: tuple[Path, dict[str, Any]], planted_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = tmp_path / "patch.yaml"
    args = ["suggest", "--config", str(EXAMPLE), "--model", str(trained[0]), "--snapshot", str(planted_file)]
    assert main([*args, "--now", NOW, "--out", str(patch), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    rules = yaml.safe_load(patch.read_text())["model"]
    fit_ids = [r["id"] for r in rules["fit"]["rules"]]
    engagement_ids = [r["id"] for r in rules["engagement"]["rules"]]
    assert "learned-jobtitle-energy-manager" in fit_ids
    assert "learned-form-procurement-checklist" in engagement_ids
    backtest = printed["backtest"]
    assert backtest["suggested"]["score_auc"] > backtest["current"]["score_auc"]


TOKEN_ENV = "LEADSYNC_LEARN_TOKEN"


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(generate_portal(60, 9), rate_limit="off") as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        yield sandbox


def test_validate_live_names_model_features_whose_property_or_form_the_portal_lacks(
    sb: Sandbox, tmp_path: Path
) -> None:
    content = json.loads(json.dumps(CONTENT))
    content["features"] += [
        {"kind": "property", "name": "budget_owner", "value": "yes", "coefficient": 0.5},
        {"kind": "form", "name": "Gone form", "coefficient": 0.5},
    ]
    model = tmp_path / "model.json"
    write_model(model, content)

    def change(config: dict[str, Any]) -> None:
        config["predictive"] = {"model": str(model)}

    code, lines = validate_live(sb.url, TOKEN_ENV, tmp_path, change)
    assert code == 0, lines
    assert any(
        line.startswith("warning: predictive.model: property budget_owner does not exist in the portal")
        and "budget_owner=yes" in line
        for line in lines
    ), lines
    assert any("form 'Gone form' is not a form of the portal" in line for line in lines), lines
    assert not any("Procurement checklist" in line or "jobtitle" in line for line in lines), lines
