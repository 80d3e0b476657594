"""End to end: a portal file with `predictive:` writes the learned likelihood and its factors into a sandbox
portal with the score, creates the two properties, records the model in the history, and writes nothing the
second time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.app import open_portal
from sync.config.model_file import write_model
from sync.core.likelihood import likelihood
from sync.core.scoring import score_at
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, Portal
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config
from tests.fakes import ManualClock

T0_MS = DEFAULT_NOW_MS + 3_600_000
MODEL: dict[str, Any] = {
    "ruleset_version": "",
    "intercept": -3.0,
    "features": [
        {"kind": "property", "name": "jobtitle", "value": "Energy Manager", "label": "jobtitle=Energy Manager",
         "coefficient": 2.4},
        {"kind": "form", "name": "Procurement checklist", "label": "form:Procurement checklist", "coefficient": 2.9},
        {"kind": "rule", "name": "demo-request", "label": "demo-request", "coefficient": 1.1},
        {"kind": "rule", "name": "inactive 120d", "label": "inactive 120d", "coefficient": -1.3},
        {"kind": "events", "name": "email_open", "days": 365, "label": "email_open 365d", "coefficient": 0.4},
    ],
}  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Portal, dict[str, Any]]]:
    clock = ManualClock.at_ms(T0_MS)
    with Sandbox(generate_portal(600, 33), rate_limit="off", clock=clock.seconds) as sb:
        sealed = write_model(tmp_path / "model.json", MODEL)
        config = sandbox_config(sb.url, "LEADSYNC_E2E_TOKEN")
        config["predictive"] = {"model": "model.json"}  # beside the portal file
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("LEADSYNC_E2E_TOKEN", sb.token)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
        portal.clock = clock
        yield sb, portal, sealed
        store.close()


def writes(sb: Sandbox) -> int:
    stats = requests.get(f"{sb.url}/__sandbox/stats", timeout=30).json()
    return sum(sum(by.values()) for route, by in stats["requests"].items() if "batch/update" in route)


def test_sync_writes_the_likelihood_with_the_score_then_nothing(world: Any) -> None:
    sb, portal, sealed = world
    first = Cycle(portal, "full").run()
    assert first.status == "ok", first.error
    assert {"ls_likelihood", "ls_likelihood_factors"} <= {p["name"] for p in sb.portal.properties()}

    snapshot = parse_snapshot(requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json())
    predictive = portal.rules.spec.predictive
    assert predictive is not None
    model = predictive.model
    checked = 0
    for contact, events in snapshot.scoring_inputs():
        result = score_at(contact, events, portal.rules, T0_MS)
        if result.excluded or result.holdout:
            assert "ls_likelihood" not in contact.properties
            continue
        expected = likelihood(model, contact, events, T0_MS, result.breakdown)
        assert contact.properties["ls_likelihood"] == str(expected.value)
        assert contact.properties.get("ls_likelihood_factors", "") == expected.factors()
        checked += 1
    assert checked > 400

    written = next(c for c, _ in snapshot.scoring_inputs() if c.properties.get("ls_likelihood"))
    rows = portal.store.history(portal.id, written.id)
    assert rows[-1].breakdown["likelihood"] == {"value": int(written.properties["ls_likelihood"]),
                                                "model": sealed["version"]}  # fmt: skip

    before = writes(sb)
    again = Cycle(portal, "full").run()
    assert again.status == "ok" and again.counts.get("written", 0) == 0
    assert writes(sb) == before


def test_every_write_names_only_leadsyncs_own_properties(world: Any) -> None:
    sb, portal, _ = world
    assert Cycle(portal, "full").run().status == "ok"
    own = {"ls_score", "ls_fit", "ls_engagement", "ls_grade", "ls_reasons", "ls_scored_at", "lifecyclestage"}
    own |= {"ls_likelihood", "ls_likelihood_factors"}
    names = {name for entry in sb.portal.write_log() for name in entry.properties}
    assert names and names <= own
