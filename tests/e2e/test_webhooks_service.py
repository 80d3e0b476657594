"""Speed to lead end to end: `leadsync run` takes the sandbox's signed webhooks and scores a demo request within
seconds, through the real CLI, HTTP on both sides and the SQLite store; its own writes, pushed back, do not loop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sync.sandbox import Sandbox
from sync.sandbox.generator import generate_portal
from sync.sandbox.webhooks import PushFaults, WebhookPusher
from tests.e2e.test_service import events, wait_for
from tests.factories import sandbox_config

ROOT = Path(__file__).resolve().parents[2]
PORTAL_ID = 7300
SECRET = "e2e-client-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_demo_request_pushed_by_webhook_is_scored_and_staged_within_seconds(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/hubspot"
    faults = PushFaults.parse("duplicate=0.3,reorder=0.5")  # HubSpot repeats and reorders: so does the sandbox
    pusher = WebhookPusher(url, SECRET, lambda: PORTAL_ID, flush_s=0.1, faults=faults, seed=3, backoff_s=0.2)
    portal = generate_portal(40, 21, portal_id=PORTAL_ID)
    with Sandbox(portal, rate_limit="off", webhooks=pusher) as sandbox:
        folder = tmp_path / "portals"
        folder.mkdir()
        config = sandbox_config(sandbox.url, "LEADSYNC_E2E_TOKEN")
        config["portal"].update(id=PORTAL_ID, name="fast")
        config["schedule"] = {"every": "1h", "rescore": None, "timezone": "UTC"}  # only the takeover cycle polls
        config["webhooks"] = {"secret_env": "LEADSYNC_E2E_WEBHOOK_SECRET"}
        (folder / "fast.yaml").write_text(yaml.safe_dump(config))
        log = tmp_path / "run.log"
        env = {**os.environ, "LEADSYNC_E2E_TOKEN": sandbox.token, "LEADSYNC_E2E_WEBHOOK_SECRET": SECRET}
        db = f"sqlite:///{tmp_path / 'state.db'}"
        command = [sys.executable, "-m", "sync", "run", "--config-dir", str(folder), "--db", db,
                   "--listen", f"127.0.0.1:{port}", "--log-format", "json"]  # fmt: skip
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_for(lambda: any(e.get("event") == "run_finished" for e in events(log)), 60)
            time.sleep(1.0)  # the backfill's own writes, pushed back, settle
            cid, email = _lead(portal)
            writes_before = portal.write_counts().get(cid, 0)
            form_id = next(f["id"] for f in portal.forms(100, None)["results"] if f["name"] == "Demo request")
            submitted = time.monotonic()
            portal.add_submissions(
                [{"formId": form_id, "values": [{"name": "email", "value": email}]}],
                sandbox.now_ms(),
                lambda: "e2e-demo-1",
            )

            def scored() -> bool:
                props = portal.contact_properties(cid) or {}
                return int(props.get("ls_score") or 0) >= 70 and props.get("lifecyclestage") != "lead"

            wait_for(scored, 10, every=0.05)
            elapsed = time.monotonic() - submitted
            time.sleep(2.0)  # its own writes come back as webhooks, repeated and reordered: nothing more is written
            writes_after = portal.write_counts().get(cid, 0)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert elapsed < 10
    assert writes_after == writes_before + 1
    runs = [e for e in events(log) if e.get("event") == "run_finished" and e.get("kind") == "webhook"]
    assert runs and all(e["status"] == "ok" for e in runs)
    assert pusher.stats["deliveries"] > 0 and pusher.stats["given_up"] == 0


def _lead(portal: object) -> tuple[str, str]:
    from sync.sandbox import Portal

    assert isinstance(portal, Portal)
    for cid in sorted(portal.write_counts(), key=int):
        props = portal.contact_properties(cid) or {}
        if props.get("ls_score") and int(props["ls_score"]) < 20 and props.get("lifecyclestage") == "lead":
            return cid, props["email"]
    raise AssertionError("no low-scored lead in the generated portal")
