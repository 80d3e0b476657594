"""`leadsync plan` on the live portal: writes HubSpot would refuse are flagged, not counted as written."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from sync.cli import main
from sync.sandbox.properties import PropertyDef, PropertyGroup
from tests.reports.conftest import NOW, StartPortal

ORDER = [
    "subscriber", "lead", "discovery", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
    "evangelist", "other",
]  # fmt: skip


def plan_json(file: Any, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["plan", "--config", str(file), "--now", NOW, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_a_stage_the_portal_lacks_would_be_rejected(
    sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]
) -> None:
    sb, file = sandbox_portal(
        200,
        3,
        order=ORDER,
        stages=[{"stage": "discovery", "min_score": 20}, {"stage": "salesqualifiedlead", "min_score": 80}],
    )
    report = plan_json(file, capsys)
    rejected = report["would_be_rejected"]
    assert rejected and report["counts"]["rejected"] == len(rejected)
    assert all("'discovery' is not an option of lifecyclestage" in r["rejected"] for r in rejected)
    assert all(r["after"]["stage"] == "discovery" for r in rejected)
    assert not any(w["after"]["stage"] == "discovery" for w in report["contacts_written"])
    assert report["counts"]["written"] == len(report["contacts_written"])
    sb.portal.add_lifecycle_stage("discovery", "Discovery")  # the admin adds the stage: nothing is refused
    again = plan_json(file, capsys)
    assert again["would_be_rejected"] == [] and again["counts"]["written"] == report["counts"]["written"] + len(
        rejected
    )
    assert sb.portal.write_log() == []


def test_an_output_someone_else_owns_would_be_rejected_until_adopted(
    sandbox_portal: StartPortal, capsys: pytest.CaptureFixture[str]
) -> None:
    sb, file = sandbox_portal(120, 4)
    sb.portal.define_group(PropertyGroup("legacy", "Legacy scoring", 9))
    sb.portal.define_property(PropertyDef("old_score", "Old score", "number", "number", "legacy", ()))
    data = yaml.safe_load(file.read_text())
    data["properties"]["score"] = "old_score"
    file.write_text(yaml.safe_dump(data))
    report = plan_json(file, capsys)
    assert report["counts"].get("written", 0) == 0 and report["would_be_rejected"]
    assert "old_score exists in HubSpot in group 'legacy'" in report["would_be_rejected"][0]["rejected"]
    data["properties"]["adopt"] = ["old_score"]
    file.write_text(yaml.safe_dump(data))
    adopted = plan_json(file, capsys)
    assert adopted["would_be_rejected"] == [] and adopted["counts"]["written"] > 0
