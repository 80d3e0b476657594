"""The write gate and property creation know the product-interest outputs, and refuse any other."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import build_portal
from sync.core.model import PropertyUpdate
from sync.core.rules import RuleSet, compile_ruleset
from sync.errors import UnownedWriteError
from sync.pipeline import Cycle, Portal, owned_properties, writable_properties
from sync.pipeline.gate import read_properties
from sync.ports import PendingWrite, PropertySpec
from tests.factories import NOW_MS, example_data, example_rules
from tests.fakes import FakeCrm, ManualClock, MemoryStore, empty_portal

OPENS = [{"id": "o", "event": "email_open", "points": 1}]
INTERESTS = [
    {"name": "grid", "rules": [{"id": "c", "event": "email_click", "points": 5}]},
    {"name": "energy", "properties": {"score": "ls_energy", "reasons": False}, "rules": OPENS},
]


def portal(store: MemoryStore, hub: FakeCrm) -> Portal:
    data = example_data()
    data["interests"] = INTERESTS
    loaded = build_portal(data, Path("p.yaml"))
    return Portal(
        config=loaded.config,
        rules=compile_ruleset(loaded.rules),
        source=hub,
        writer=hub,
        store=store,
        clock=ManualClock.at_ms(NOW_MS),
        identity_verified=True,
    )


def send(p: Portal, *writes: PendingWrite) -> None:
    cycle = Cycle(p, "incremental")
    p.store.record_pending(p.id, cycle.run_id, list(writes))
    cycle.outbox.send(list(writes), None)


def crm() -> FakeCrm:
    return FakeCrm(empty_portal(12345678, example_rules().list_ids), ManualClock.at_ms(NOW_MS))


def rules() -> RuleSet:
    return portal(MemoryStore(), crm()).rules


def test_the_interest_outputs_are_owned_created_in_leadsyncs_group_and_read_back() -> None:
    group, specs = owned_properties(rules())
    assert group == "lead_scoring_sync"
    assert PropertySpec("ls_interest_grid", "Interest score: grid (leadsync)", "number") in specs
    assert PropertySpec("ls_interest_grid_reasons", "Interest reasons: grid (leadsync)", "string") in specs
    assert PropertySpec("ls_energy", "Interest score: energy (leadsync)", "number") in specs
    assert {"ls_interest_grid", "ls_interest_grid_reasons", "ls_energy"} <= writable_properties(rules())
    assert "ls_interest_energy_reasons" not in writable_properties(rules())
    assert {"ls_interest_grid", "ls_energy"} <= set(read_properties(rules()))


def test_a_write_of_interest_outputs_is_sent() -> None:
    hub = crm()
    send(portal(MemoryStore(), hub), PendingWrite("1", {"ls_interest_grid": "15", "ls_energy": "3"}, None, None))
    assert hub.sent and hub.sent[0][0] == PropertyUpdate("1", {"ls_interest_grid": "15", "ls_energy": "3"})


@pytest.mark.parametrize("name", ["ls_interest_other", "ls_interest_energy_reasons", "ls_interest_energy"])
def test_an_interest_output_not_in_the_config_is_refused_and_nothing_is_sent(name: str) -> None:
    hub = crm()
    with pytest.raises(UnownedWriteError, match=f"refused to write {name}"):
        send(portal(MemoryStore(), hub), PendingWrite("1", {"ls_interest_grid": "15", name: "1"}, None, None))
    assert hub.sent == []


def test_without_interests_no_interest_output_is_writable() -> None:
    assert not any(name.startswith("ls_interest") for name in writable_properties(example_rules()))
