"""`leadsync validate --live` checks the properties and forms the interest rules read, as it does the lead score's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from tests.factories import ROOT, validate_live

TOKEN_ENV = "LEADSYNC_LIVE_INTEREST_TOKEN"
INTERESTS = yaml.safe_load((ROOT / "config" / "portals" / "interests-example.yaml").read_text())["interests"]


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with Sandbox(generate_portal(60, 9), rate_limit="off") as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        yield sandbox


def with_interests(*extra: dict[str, Any]) -> Any:
    def change(config: dict[str, Any]) -> None:
        config["interests"] = [INTERESTS[0], {**INTERESTS[1], "rules": [*INTERESTS[1]["rules"], *extra]}]

    return change


def test_the_example_interests_against_the_sandbox_have_no_finding(sb: Sandbox, tmp_path: Path) -> None:
    assert validate_live(sb.url, TOKEN_ENV, tmp_path, with_interests()) == (0, [])


def test_a_property_an_interest_rule_reads_must_exist(sb: Sandbox, tmp_path: Path) -> None:
    probe = {"id": "probe", "property": "no_such_prop", "equals": "x", "points": 1}
    code, findings = validate_live(sb.url, TOKEN_ENV, tmp_path, with_interests(probe))
    assert code == 2
    assert findings == ["error: interests[1].rules[4]: property no_such_prop does not exist in the portal"]
