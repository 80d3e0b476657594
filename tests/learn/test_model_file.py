"""The model file: plain JSON sealed by its own hash; read back it is the same model, edited it is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.config.model_file import content_hash, read_model, write_model
from sync.core.likelihood import EVENTS, FORM, NUMBER, PROPERTY, RULE, Feature, LikelihoodModel
from sync.errors import ConfigError

CONTENT: dict[str, Any] = {
    "ruleset_version": "deb9422c6ee0",
    "intercept": -3.2,
    "features": [
        {"kind": "property", "name": "jobtitle", "value": "Energy Manager", "coefficient": 2.5, "scale": 0.25},
        {"kind": "form", "name": "Procurement checklist", "coefficient": 3.1, "scale": 0.2},
        {"kind": "rule", "name": "inactive 120d", "coefficient": -1.2, "scale": 0.45},
        {"kind": "number", "name": "numberofemployees", "low": 100.0, "high": 300.0, "coefficient": 0.4},
        {"kind": "events", "name": "email_open", "days": 90, "coefficient": 0.3},
    ],
    "training": {"as_of": "2026-05-05T12:00:00.000Z", "horizon_days": 180},
    "metrics": {"model": {"roc_auc": 0.79}, "rule_score": {"roc_auc": 0.59}},
}


def test_a_written_model_reads_back_as_the_same_model(tmp_path: Path) -> None:
    sealed = write_model(tmp_path / "m.json", CONTENT)
    model, parsed = read_model(tmp_path / "m.json")
    assert model == LikelihoodModel(
        sealed["version"],
        (
            Feature(PROPERTY, "jobtitle", "Energy Manager"),
            Feature(FORM, "Procurement checklist"),
            Feature(RULE, "inactive 120d"),
            Feature(NUMBER, "numberofemployees", low=100.0, high=300.0),
            Feature(EVENTS, "email_open", days=90),
        ),
        (2.5, 3.1, -1.2, 0.4, 0.3),
        -3.2,
        "deb9422c6ee0",
    )
    assert parsed.metrics == CONTENT["metrics"] and parsed.training == CONTENT["training"]


def test_the_version_is_a_hash_of_the_content_and_names_it_exactly(tmp_path: Path) -> None:
    first = write_model(tmp_path / "a.json", CONTENT)
    again = write_model(tmp_path / "b.json", json.loads(json.dumps(CONTENT)))
    other = write_model(tmp_path / "c.json", {**CONTENT, "intercept": -3.1})
    assert first["version"] == again["version"] == content_hash(first) != other["version"]
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"coefficient": 2.5', '"coefficient": 9.5'), "does not match its content"),
        (lambda t: t.replace('"intercept": -3.2', '"intercept": -1'), "does not match its content"),
        (lambda t: t[: len(t) // 2], "is not JSON"),
        (lambda t: "[]", "a JSON object was expected"),
        (lambda t: t.replace("leadsync-likelihood/1", "other/1"), "is not a model file of this leadsync"),
    ],
)
def test_an_edited_or_damaged_file_is_refused(tmp_path: Path, edit: Any, message: str) -> None:
    file = tmp_path / "m.json"
    write_model(file, CONTENT)
    file.write_text(edit(file.read_text()))
    with pytest.raises(ConfigError, match=message):
        read_model(file)


def test_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such model file: train one"):
        read_model(tmp_path / "nope.json")


def test_a_resealed_file_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    bad = {**CONTENT, "features": [{"kind": "colour", "name": "x", "coefficient": 1.0}]}
    write_model(tmp_path / "m.json", bad)
    with pytest.raises(ConfigError, match="unknown feature kind 'colour'"):
        read_model(tmp_path / "m.json")
