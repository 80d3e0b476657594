"""A replica frozen past its lease (SIGSTOP) while another takes the portal over sends nothing when it wakes
(SIGCONT): two real `leadsync run` processes on PostgreSQL against one sandbox portal. The frozen one's batch in
flight is not recorded by it, its run ends as lease_lost, and no history row is written twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.store.state import SqlStateStore
from tests.e2e.test_service import events, portal_file, wait_for
from tests.factories import ROOT

TTL = "2"
CONTACTS = 1500  # 15 batches
FREEZE_AT = 3  # the frozen replica is stopped while HubSpot applies its third batch
PORTAL_ID = 7000


class SlowWrites:
    """The sandbox's batch updates, slowed (a run is mid-flight for seconds) and counted; the chosen batch's
    sender is frozen (SIGSTOP) while that batch is on the wire, so its answer waits for it to wake."""

    def __init__(self, sb: Sandbox) -> None:
        self.original = sb.portal.batch_update
        self.batches = 0
        self.lock = threading.Lock()
        self.freeze: int | None = None  # the pid to stop at FREEZE_AT
        self.frozen = threading.Event()
        sb.portal.batch_update = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.batches += 1
            if self.batches == FREEZE_AT and self.freeze is not None:
                os.kill(self.freeze, signal.SIGSTOP)
                self.frozen.set()
        time.sleep(0.1)
        return self.original(*args, **kwargs)


def start(folder: Path, db: str, token: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LEADSYNC_SERVICE_TOKEN": token}
    command = [sys.executable, "-m", "sync", "run", "--config-dir", str(folder), "--db", db, "--listen", "off",
               "--lease-ttl", TTL, "--log-format", "json"]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def seen(log: Path, event: str, **fields: object) -> list[dict[str, Any]]:
    return [e for e in events(log) if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]


@pytest.mark.postgres
def test_a_replica_frozen_past_its_lease_sends_nothing_after_the_takeover(tmp_path: Path, pg_schema_url: str) -> None:
    with Sandbox(generate_portal(CONTACTS, 11, portal_id=PORTAL_ID), rate_limit="off") as sb:
        writes = SlowWrites(sb)
        folder = tmp_path / "portals"
        folder.mkdir()
        portal_file(folder, "p0", PORTAL_ID, sb, every="1h")  # one run each: the first, or a takeover
        frozen_log, other_log = tmp_path / "frozen.log", tmp_path / "other.log"
        frozen = start(folder, pg_schema_url, sb.token, frozen_log)
        other: subprocess.Popen[bytes] | None = None
        try:
            writes.freeze = frozen.pid
            wait_for(lambda: seen(frozen_log, "lease_acquired"), 20, 0.05)
            other = start(folder, pg_schema_url, sb.token, other_log)
            assert writes.frozen.wait(20), "the first replica never reached its third batch"
            # The other replica takes the portal once the frozen one's lease expires, and finishes the run.
            wait_for(lambda: seen(other_log, "lease_acquired"), 15, 0.05)
            finished = wait_for(lambda: seen(other_log, "run_finished"), 20, 0.1)
            assert finished[0]["status"] == "ok"
            applied = len(sb.portal.write_log())
            batches = writes.batches
            # Wake the frozen one: it holds the answer to its batch in flight, and its run still thinks it runs.
            os.kill(frozen.pid, signal.SIGCONT)
            ended = wait_for(lambda: seen(frozen_log, "run_finished"), 15, 0.1)
            time.sleep(float(TTL))  # time for anything it would still send
            assert ended[0]["status"] == "lease_lost"
            assert seen(frozen_log, "lease_lost")
            assert (writes.batches, len(sb.portal.write_log())) == (batches, applied)  # nothing after the takeover
        finally:
            for proc in (frozen, other):
                if proc is not None and proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in (frozen, other):
                if proc is not None:
                    proc.wait(30)
        assert frozen.returncode == 0 and other is not None and other.returncode == 0

    store = SqlStateStore(pg_schema_url)
    try:
        with store.engine.connect() as conn:
            twice = conn.execute(
                sa.text("SELECT contact_id FROM score_history GROUP BY contact_id HAVING count(*) > 1")
            ).all()
            by_run: dict[str, str] = dict(conn.execute(sa.text("SELECT run_id, status FROM runs")).all())
        assert twice == []  # the frozen one's batch in flight was recorded once, by the replica that took over
        assert store.pending_writes(PORTAL_ID) == []
        assert sorted(by_run.values()) == ["lease_lost", "ok"]
    finally:
        store.close()
