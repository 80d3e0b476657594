"""`leadsync sync` holds the portal's lease for its run, as a service replica does: it refuses a portal a replica
holds (writing nothing), a crashed sync's lease never blocks the next one, and its lease is released at the end."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sync.cli import main
from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.state import SqlStateStore
from tests.factories import sandbox_config

TOKEN_ENV = "LEADSYNC_SYNC_LEASE_TOKEN"
PORTAL_ID = 12345678  # the reference config's


@pytest.fixture
def portal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Path, str]]:
    with Sandbox(generate_portal(40, 3), rate_limit="off") as sb:
        monkeypatch.setenv(TOKEN_ENV, sb.token)
        file = tmp_path / "portal.yaml"
        file.write_text(yaml.safe_dump(sandbox_config(sb.url, TOKEN_ENV)))
        yield sb, file, f"sqlite:///{tmp_path / 'state.db'}"


def test_sync_refuses_a_portal_a_service_replica_holds_and_writes_nothing(
    portal: tuple[Sandbox, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sb, file, db = portal
    store = SqlStateStore(db)
    assert store.acquire_fence(PORTAL_ID, "host:1:replica", 60) is not None
    code = main(["sync", "--config", str(file), "--db", db, "--json", "--log-level", "error"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "leased" and "leased to a leadsync service replica" in summary["error"]
    assert sb.portal.write_log() == [] and store.last_runs(PORTAL_ID) == []
    store.close()


def test_a_crashed_syncs_lease_does_not_block_the_next_and_each_sync_releases_its_own(
    portal: tuple[Sandbox, Path, str],
) -> None:
    _, file, db = portal
    store = SqlStateStore(db)
    crashed = store.acquire_fence(PORTAL_ID, f"sync@{socket.gethostname()}", 60)  # never released
    assert crashed is not None
    assert main(["sync", "--config", str(file), "--db", db, "--log-level", "error"]) == 0
    (row,) = store.leases()
    assert row.epoch == crashed.epoch + 1  # the new sync fenced the crashed one out
    assert store.acquire_fence(PORTAL_ID, "host:1:replica", 60) is not None  # released: a replica may take it
    store.close()
