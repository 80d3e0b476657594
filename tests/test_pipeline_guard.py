"""The one gate every write passes (Outbox.send): identity checked, only properties leadsync owns."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import build_portal
from sync.core.model import PropertyUpdate
from sync.core.rules import compile_ruleset
from sync.errors import UnownedWriteError
from sync.pipeline import Cycle, Portal, writable_properties
from sync.ports import PendingWrite
from tests.factories import NOW_MS, example_data, example_rules
from tests.fakes import FakeCrm, ManualClock, MemoryStore, empty_portal


def empty_crm(portal_id: int = 12345678) -> FakeCrm:
    """A portal with no contacts: what the cycle asks it to write is kept in `sent`."""
    return FakeCrm(empty_portal(portal_id, example_rules().list_ids), ManualClock.at_ms(NOW_MS))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def portal(store: MemoryStore, hub: FakeCrm, *, verified: bool = True, lifecycle: bool = True) -> Portal:
    data = example_data()
    if not lifecycle:
        data["model"]["lifecycle"] = {"mode": "off"}
    loaded = build_portal(data, Path("p.yaml"))
    return Portal(
        config=loaded.config,
        rules=compile_ruleset(loaded.rules),
        source=hub,
        writer=hub,
        store=store,
        clock=ManualClock.at_ms(NOW_MS),
        identity_verified=verified,
    )


def send(p: Portal, *writes: PendingWrite) -> None:
    cycle = Cycle(p, "incremental")
    p.store.record_pending(p.id, cycle.run_id, list(writes))
    cycle.outbox.send(list(writes), None)


def test_a_write_of_owned_properties_is_sent(store: MemoryStore) -> None:
    hub = empty_crm(12345678)
    send(portal(store, hub), PendingWrite("1", {"ls_score": "40", "lifecyclestage": "lead"}, None, None))
    assert hub.sent and hub.sent[0][0] == PropertyUpdate("1", {"ls_score": "40", "lifecyclestage": "lead"})


@pytest.mark.parametrize("name", ["jobtitle", "hs_lead_status", "ls_score_old"])
def test_a_property_leadsync_does_not_own_is_refused_and_nothing_is_sent(store: MemoryStore, name: str) -> None:
    hub = empty_crm(12345678)
    with pytest.raises(UnownedWriteError, match=f"refused to write {name}"):
        send(portal(store, hub), PendingWrite("1", {"ls_score": "40", name: "x"}, None, None))
    assert hub.sent == []


def test_the_stage_is_not_leadsyncs_when_no_model_manages_stages(store: MemoryStore) -> None:
    hub = empty_crm(12345678)
    p = portal(store, hub, lifecycle=False)
    assert "lifecyclestage" not in writable_properties(p.rules)
    with pytest.raises(UnownedWriteError, match="refused to write lifecyclestage"):
        send(p, PendingWrite("1", {}, "lead", None))
    assert hub.sent == []


def test_nothing_is_sent_before_the_portals_identity_was_checked(store: MemoryStore) -> None:
    hub = empty_crm(12345678)
    with pytest.raises(UnownedWriteError, match="before the token's own portal was checked"):
        send(portal(store, hub, verified=False), PendingWrite("1", {"ls_score": "40"}, None, None))
    assert hub.sent == []


def test_a_run_checks_the_identity_once_per_portal_object_and_a_wrong_one_pauses(store: MemoryStore) -> None:
    hub = empty_crm(999)
    p = portal(store, hub, verified=False)
    summary = Cycle(p, "incremental").run()
    assert (summary.status, summary.cause) == ("paused", "wrong_portal")
    assert "portal 999" in (summary.error or "") and "portal 12345678" in (summary.error or "")
    assert not p.identity_verified
    hub.portal.portal_id = 12345678
    assert Cycle(p, "incremental").run().status == "ok" and p.identity_verified


def test_a_crashed_runs_write_of_a_property_no_longer_owned_is_trimmed_not_sent(store: MemoryStore) -> None:
    """An output renamed between a crash and the restart: the old name is never written, the run goes on."""
    hub = empty_crm(12345678)
    p = portal(store, hub)
    store.record_pending(p.id, "crashed", [PendingWrite("1", {"ls_score": "40", "ls_score_old": "40"}, None, None)])
    summary = Cycle(p, "incremental").run()
    assert summary.status == "ok", summary.error
    assert [batch for batch in hub.sent if batch] == [[PropertyUpdate("1", {"ls_score": "40"})]]
    assert store.pending_writes(p.id) == []


def test_a_crashed_runs_write_left_with_nothing_owned_becomes_a_dead_letter(store: MemoryStore) -> None:
    hub = empty_crm(12345678)
    p = portal(store, hub)
    store.record_pending(p.id, "crashed", [PendingWrite("1", {"ls_score_old": "40"}, None, None)])
    summary = Cycle(p, "incremental").run()
    assert summary.status == "ok", summary.error
    assert not any(hub.sent) and store.pending_writes(p.id) == []
    [letter] = store.dead_letters(p.id)
    assert letter.contact_id == "1" and "no longer owns ls_score_old" in letter.reason
