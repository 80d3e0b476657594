"""The one gate every write passes (Cycle._send): identity checked, only properties leadsync owns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sync.config import build_portal
from sync.core.model import PropertyUpdate, StageChange
from sync.core.rules import compile_ruleset
from sync.errors import UnownedWriteError
from sync.pipeline import Cycle, Portal, writable_properties
from sync.ports import AccountInfo, ContactPage, PendingWrite, PropertySpec, WriteOutcome
from sync.store.state import SqlStateStore
from tests.factories import NOW_MS, FixedClock, example_data


class FakeHub:
    """An empty portal that records every write it is asked to send."""

    def __init__(self, portal_id: int) -> None:
        self.portal_id = portal_id
        self.sent: list[Sequence[PropertyUpdate] | Sequence[StageChange]] = []

    def account_info(self) -> AccountInfo:
        return AccountInfo(self.portal_id, "UTC")

    def contact_pages(self, after: str | None = None) -> Iterator[ContactPage]:
        return iter(())

    def contacts_changed_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[ContactPage]:
        return iter(())

    def read_contacts(self, ids: Any) -> list[Any]:
        return []

    def read_contacts_by_email(self, emails: Any) -> list[Any]:
        return []

    def forms(self) -> dict[str, str]:
        return {}

    def form_submissions(self, form_id: str, form_name: str, since_ms: int) -> Any:
        return [], []

    def email_events(self, start_ms: int, end_ms: int) -> Iterator[Any]:
        return iter(())

    def list_members(self, list_id: int) -> set[str]:
        return set()

    def ensure_properties(self, group: str, group_label: str, specs: Sequence[PropertySpec]) -> None:
        pass

    def update_contacts(self, updates: Sequence[PropertyUpdate]) -> WriteOutcome:
        self.sent.append(updates)
        return WriteOutcome(applied=[u.contact_id for u in updates])

    def set_stages(self, changes: Sequence[StageChange]) -> WriteOutcome:
        self.sent.append(changes)
        return WriteOutcome(applied=[c.contact_id for c in changes])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStateStore]:
    state = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield state
    state.close()


def portal(store: SqlStateStore, hub: FakeHub, *, verified: bool = True, lifecycle: bool = True) -> Portal:
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
        clock=FixedClock(NOW_MS),
        identity_verified=verified,
    )


def send(p: Portal, *writes: PendingWrite) -> None:
    cycle = Cycle(p, "incremental")
    p.store.record_pending(p.id, cycle.run_id, list(writes))
    cycle._send(list(writes), None)


def test_a_write_of_owned_properties_is_sent(store: SqlStateStore) -> None:
    hub = FakeHub(12345678)
    send(portal(store, hub), PendingWrite("1", {"ls_score": "40", "lifecyclestage": "lead"}, None, None))
    assert hub.sent and hub.sent[0][0] == PropertyUpdate("1", {"ls_score": "40", "lifecyclestage": "lead"})


@pytest.mark.parametrize("name", ["jobtitle", "hs_lead_status", "ls_score_old"])
def test_a_property_leadsync_does_not_own_is_refused_and_nothing_is_sent(store: SqlStateStore, name: str) -> None:
    hub = FakeHub(12345678)
    with pytest.raises(UnownedWriteError, match=f"refused to write {name}"):
        send(portal(store, hub), PendingWrite("1", {"ls_score": "40", name: "x"}, None, None))
    assert hub.sent == []


def test_the_stage_is_not_leadsyncs_when_no_model_manages_stages(store: SqlStateStore) -> None:
    hub = FakeHub(12345678)
    p = portal(store, hub, lifecycle=False)
    assert "lifecyclestage" not in writable_properties(p.rules)
    with pytest.raises(UnownedWriteError, match="refused to write lifecyclestage"):
        send(p, PendingWrite("1", {}, "lead", None))
    assert hub.sent == []


def test_nothing_is_sent_before_the_portals_identity_was_checked(store: SqlStateStore) -> None:
    hub = FakeHub(12345678)
    with pytest.raises(UnownedWriteError, match="before the token's own portal was checked"):
        send(portal(store, hub, verified=False), PendingWrite("1", {"ls_score": "40"}, None, None))
    assert hub.sent == []


def test_a_run_checks_the_identity_once_per_portal_object_and_a_wrong_one_pauses(store: SqlStateStore) -> None:
    hub = FakeHub(999)
    p = portal(store, hub, verified=False)
    summary = Cycle(p, "incremental").run()
    assert (summary.status, summary.cause) == ("paused", "wrong_portal")
    assert "portal 999" in (summary.error or "") and "portal 12345678" in (summary.error or "")
    assert not p.identity_verified
    hub.portal_id = 12345678
    assert Cycle(p, "incremental").run().status == "ok" and p.identity_verified


def test_a_crashed_runs_write_of_a_property_no_longer_owned_is_trimmed_not_sent(store: SqlStateStore) -> None:
    """An output renamed between a crash and the restart: the old name is never written, the run goes on."""
    hub = FakeHub(12345678)
    p = portal(store, hub)
    store.record_pending(p.id, "crashed", [PendingWrite("1", {"ls_score": "40", "ls_score_old": "40"}, None, None)])
    summary = Cycle(p, "incremental").run()
    assert summary.status == "ok", summary.error
    assert [batch for batch in hub.sent if batch] == [[PropertyUpdate("1", {"ls_score": "40"})]]
    assert store.pending_writes(p.id) == []


def test_a_crashed_runs_write_left_with_nothing_owned_becomes_a_dead_letter(store: SqlStateStore) -> None:
    hub = FakeHub(12345678)
    p = portal(store, hub)
    store.record_pending(p.id, "crashed", [PendingWrite("1", {"ls_score_old": "40"}, None, None)])
    summary = Cycle(p, "incremental").run()
    assert summary.status == "ok", summary.error
    assert not any(hub.sent) and store.pending_writes(p.id) == []
    [letter] = store.dead_letters(p.id)
    assert letter.contact_id == "1" and "no longer owns ls_score_old" in letter.reason
