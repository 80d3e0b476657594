"""End to end: product-interest scores against a sandbox portal. The worker creates their properties in its
group, writes each contact's interests as `leadsync score` computes them, records them in the history, and a
second sync writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sync.app import open_portal
from sync.core.planning import interest_values
from sync.core.rules import compile_ruleset
from sync.core.scoring import score
from sync.hubspot.retry import RetryPolicy
from sync.pipeline import Cycle, Portal
from sync.sandbox import Sandbox
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.factories import ROOT, sandbox_config
from tests.fakes import ManualClock

T0_MS = DEFAULT_NOW_MS + 3_600_000
EXAMPLE_INTERESTS = ROOT / "config" / "portals" / "interests-example.yaml"
GRID, GRID_REASONS, ENERGY = (
    "ls_interest_grid_analytics",
    "ls_interest_grid_analytics_reasons",
    "ls_interest_energy_data",
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Portal]]:
    clock = ManualClock.at_ms(T0_MS)
    with Sandbox(generate_portal(400, 12), rate_limit="off", clock=clock.seconds) as sb:
        config = sandbox_config(sb.url, "LEADSYNC_INTEREST_TOKEN")
        config["interests"] = yaml.safe_load(EXAMPLE_INTERESTS.read_text())["interests"]
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(config))
        monkeypatch.setenv("LEADSYNC_INTEREST_TOKEN", sb.token)
        store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
        portal = open_portal(file, store, RetryPolicy(attempts=3, base_wait=0.01, sleep=lambda s: None))
        portal.clock = clock
        yield sb, portal
        store.close()


def expected_interests(sb: Sandbox, portal: Portal) -> dict[str, dict[str, str]]:
    """Per written contact, the interest values `leadsync score` computes on the sandbox's data."""
    snapshot = parse_snapshot(requests.get(f"{sb.url}/__sandbox/snapshot", timeout=60).json())
    rules = compile_ruleset(portal.rules.spec)
    out = {}
    for contact, events in snapshot.scoring_inputs():
        result = score(contact, events, rules, portal.clock.now())
        if not (result.holdout or result.excluded):
            out[contact.id] = interest_values(rules.spec.interests, result.interests)
    return out


def test_a_sync_creates_writes_and_records_the_interests_and_a_second_writes_nothing(world: Any) -> None:
    sb, portal = world
    first = Cycle(portal, "full").run()
    assert first.status == "ok", first.error

    for name, kind in ((GRID, "number"), (GRID_REASONS, "string"), (ENERGY, "number")):
        created = sb.portal.property_def(name)
        assert created is not None and (created.group_name, created.type) == ("lead_scoring_sync", kind)
    assert sb.portal.property_def(f"{ENERGY}_reasons") is None  # reasons: false

    wanted = expected_interests(sb, portal)
    held = {cid: sb.portal.contact_properties(cid) or {} for cid in wanted}
    off = [cid for cid, values in wanted.items() if any(held[cid].get(k, "") != v for k, v in values.items())]
    assert off == []
    grid_scores = [int(v[GRID]) for v in wanted.values()]
    assert max(grid_scores) > 0 and min(grid_scores) == 0  # the sandbox has interested contacts and others
    in_segment = [v[ENERGY] for v in wanted.values() if v[ENERGY] != ""]
    assert 0 < len(in_segment) < len(wanted)  # energy_data: the energy and oil & gas contacts only

    interested = next(cid for cid, v in wanted.items() if int(v[GRID]) > 0)
    row = portal.store.history(portal.id, interested)[-1]
    recorded = row.breakdown["interests"]
    assert str(recorded["grid_analytics"]["score"]) == wanted[interested][GRID]
    assert recorded["grid_analytics"]["lines"] and set(recorded) == {"grid_analytics", "energy_data"}

    written_before = len(sb.portal.write_log())
    second = Cycle(portal, "incremental").run()
    assert second.status == "ok", second.error
    assert second.counts.get("written", 0) == 0 and len(sb.portal.write_log()) == written_before


def test_a_change_to_one_interest_rewrites_its_properties_and_no_other(world: Any) -> None:
    sb, portal = world
    assert Cycle(portal, "full").run().status == "ok"
    wanted = expected_interests(sb, portal)
    need = {c: (sb.portal.contact_properties(c) or {}).get("need_level") for c in wanted}
    cid = next(c for c, v in wanted.items() if v[ENERGY] != "" and int(v[ENERGY]) <= 80 and need[c] != "core")
    # need_level core: +10 to energy_data (and to the lead score's fit); grid_analytics does not read it.
    edit = {"contacts": [{"id": cid, "properties": {"need_level": "core"}}]}
    requests.post(f"{sb.url}/__sandbox/contacts", json=edit, timeout=30).raise_for_status()
    since = len(sb.portal.write_log())
    assert Cycle(portal, "full").run().status == "ok"
    written = {k: v for w in sb.portal.write_log(since) if w.contact_id == cid for k, v in w.properties.items()}
    assert int(written[ENERGY]) > int(wanted[cid][ENERGY])
    assert GRID not in written and GRID_REASONS not in written
