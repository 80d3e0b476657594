"""The intake on the in-memory fakes: verified deliveries queued, the fast path through the cycle's own gate and
outbox, leadsync's own writes not looping, other replicas' portals left alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sync.config import build_portal
from sync.config.schema import WebhooksModel
from sync.core.rules import compile_ruleset
from sync.observability import HttpRequest, Metrics
from sync.pipeline import Cycle, Lease, Portal, read_properties
from sync.sandbox import Portal as SandboxPortal
from sync.sandbox.generator import DEFAULT_NOW_MS, generate_portal
from sync.sandbox.webhooks import ChangeEvent, sign_v3
from sync.webhooks import CONVERSION_PROPERTIES, Intake, IntakeQueue, Target
from tests.factories import example_data
from tests.fakes import FakeCrm, ManualClock, MemoryStore

T0_MS = DEFAULT_NOW_MS + 3_600_000
SECRET = "app-secret"
URL = "http://leadsync.test/webhooks/hubspot"


@dataclass
class Held:
    portal: Portal
    lock: threading.Lock = field(default_factory=threading.Lock)
    leased: bool = True
    running: threading.Event | None = None
    lease: Lease | None = None


@dataclass
class World:
    hubspot: SandboxPortal
    crm: FakeCrm
    store: MemoryStore
    clock: ManualClock
    held: Held
    intake: Intake
    metrics: Metrics
    changes: list[ChangeEvent]

    @property
    def portal(self) -> Portal:
        return self.held.portal

    def deliver(self, events: Sequence[ChangeEvent], secret: str = SECRET, portal_id: int | None = None) -> int:
        pid = self.portal.id if portal_id is None else portal_id
        body = json.dumps([e.wire(pid, i + 1, 0) for i, e in enumerate(events)]).encode()
        return self.post(body, sign_v3(secret, URL, body, self.clock.ms))

    def post(self, body: bytes, signature: str) -> int:
        headers = {
            "host": "leadsync.test",
            "x-hubspot-signature-v3": signature,
            "x-hubspot-request-timestamp": str(self.clock.ms),
        }
        status, _ = self.intake.handle(HttpRequest("POST", "/webhooks/hubspot", headers, body))
        return status

    def pushed(self) -> list[ChangeEvent]:
        """What the sandbox would have pushed since the last look."""
        out, self.changes[:] = list(self.changes), []
        return out

    def submit(self, form_name: str, email: str) -> None:
        forms = self.hubspot.forms(100, None)["results"]
        form_id = next(f["id"] for f in forms if f["name"] == form_name)
        self.hubspot.add_submissions(
            [{"formId": form_id, "submittedAt": self.clock.ms, "values": [{"name": "email", "value": email}]}],
            self.clock.ms,
            lambda: f"conv-{self.clock.ms}",
        )

    def outcome(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "leadsync_webhook_events_total", {"portal": self.portal.config.portal.name, "outcome": name}
        )
        return value or 0.0


@pytest.fixture
def world() -> World:
    clock = ManualClock.at_ms(T0_MS)
    hubspot = generate_portal(60, 11)
    loaded = build_portal(example_data(), Path("example.yaml"))
    rules = compile_ruleset(loaded.rules)
    crm = FakeCrm(hubspot, clock, [*read_properties(rules), *CONVERSION_PROPERTIES])
    store = MemoryStore(clock)
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=clock)
    held = Held(portal)
    metrics = Metrics()
    targets: dict[int, Target] = {portal.id: held}
    intake = Intake(
        lambda: targets,
        lambda target: WebhooksModel(secret_env="WEBHOOK_SECRET"),
        metrics=metrics,
        environ={"WEBHOOK_SECRET": SECRET},
        clock=clock,
        queue=IntakeQueue(window_s=0),
    )
    changes: list[ChangeEvent] = []
    hubspot.on_change = changes.extend
    assert Cycle(portal, "full").run().status == "ok"
    changes.clear()
    crm.calls.clear()
    clock.advance(60)
    return World(hubspot, crm, store, clock, held, intake, metrics, changes)


def low_scored(world: World) -> tuple[str, str]:
    """A contact leadsync wrote a low score to and that has no demo request yet: (id, email)."""
    for cid in sorted(world.hubspot.write_counts(), key=int):
        props = world.hubspot.contact_properties(cid) or {}
        if props.get("ls_score") and int(props["ls_score"]) < 20 and props.get("lifecyclestage") in ("", "lead", None):
            return cid, props["email"]
    raise AssertionError("no low-scored contact in the generated portal")


def test_a_demo_request_is_scored_and_staged_through_the_fast_path(world: World) -> None:
    cid, email = low_scored(world)
    world.submit("Demo request", email)
    pushed = world.pushed()
    assert {e.prop for e in pushed} >= {"recent_conversion_date", "num_conversion_events"}

    assert world.deliver(pushed) == 200
    world.intake.drain()

    props = world.hubspot.contact_properties(cid) or {}
    assert int(props["ls_score"]) >= 70
    assert props["lifecyclestage"] in ("marketingqualifiedlead", "salesqualifiedlead")  # staged, from lead
    # One batch read of the contacts, one read of the one form they converted on; no search, no form sweep.
    called = [name for name, _ in world.crm.calls]
    assert called.count("read_contacts") == 1 and called.count("form_submissions") == 1
    assert "contacts_changed_since" not in called
    # Written through the outbox: an audit row of a webhook run.
    history = world.store.history(world.portal.id, cid)
    assert history[-1].new_score == int(props["ls_score"])
    assert world.store.last_runs(world.portal.id, 1)[0].kind == "webhook"


def test_leadsyncs_own_writes_coming_back_do_not_loop(world: World) -> None:
    _cid, email = low_scored(world)
    world.submit("Demo request", email)
    world.deliver(world.pushed())
    world.intake.drain()
    echoed = world.pushed()  # the sandbox pushes the fast path's own writes too
    assert {e.source for e in echoed} == {"INTEGRATION"}
    assert {e.prop for e in echoed} >= {"ls_score", "lifecyclestage"}
    writes, calls = len(world.hubspot.write_log()), len(world.crm.calls)

    assert world.deliver(echoed) == 200
    world.intake.drain()

    assert len(world.hubspot.write_log()) == writes  # nothing written again
    assert len(world.crm.calls) == calls  # nor even read: the stage is the one leadsync wrote last
    assert world.outcome("own_write") == 1 and world.outcome("ignored") >= 1


def test_a_stage_someone_else_sets_is_rescored(world: World) -> None:
    cid, _ = low_scored(world)
    world.hubspot.upsert_contacts([{"id": cid, "properties": {"lifecyclestage": "opportunity"}}], world.clock.ms)
    assert world.deliver(world.pushed()) == 200
    world.intake.drain()
    assert [args for name, args in world.crm.calls if name == "read_contacts"] == [((cid,),)]


@pytest.mark.parametrize(
    ("secret", "body", "status"),
    [("not-the-secret", b"[]", 401), (SECRET, b"{not json", 400), (SECRET, b'{"an": "object"}', 400)],
)
def test_a_bad_signature_or_body_is_refused_and_changes_nothing(
    world: World, secret: str, body: bytes, status: int
) -> None:
    assert world.post(body, sign_v3(secret, URL, body, world.clock.ms)) == status
    assert len(world.intake.queue) == 0


def test_a_stale_delivery_is_refused(world: World) -> None:
    _cid, email = low_scored(world)
    world.submit("Demo request", email)
    body = json.dumps([e.wire(world.portal.id, 1, 0) for e in world.pushed()]).encode()
    signature = sign_v3(SECRET, URL, body, world.clock.ms)
    world.clock.advance(301)  # replayed more than five minutes later
    assert world.post(body, signature) == 401
    assert len(world.intake.queue) == 0


def test_a_delivery_for_a_portal_leased_elsewhere_or_unknown_is_never_written_here(world: World) -> None:
    cid, email = low_scored(world)
    world.submit("Demo request", email)
    pushed = world.pushed()
    world.held.leased = False
    assert world.deliver(pushed) == 200
    assert world.deliver(pushed, portal_id=999) == 200
    world.intake.drain()
    assert world.crm.calls == [] and len(world.intake.queue) == 0
    assert world.outcome("not_leased") == len(pushed)
    # Lost between queueing and running: dropped too.
    world.held.leased = True
    world.deliver([ChangeEvent("creation", int(cid), world.clock.ms + 1)])
    world.held.leased = False
    world.intake.drain()
    assert world.crm.calls == []


def test_a_fast_run_under_a_lease_another_replica_took_writes_nothing(world: World) -> None:
    ttl = 30.0
    fence = world.store.acquire_fence(world.portal.id, "replica-a", ttl)
    assert fence is not None
    world.held.lease = Lease.taken(fence, ttl, 0.0, lambda: 0.0)  # this replica still believes it holds the portal
    world.clock.advance(ttl + 1)
    assert world.store.acquire_fence(world.portal.id, "replica-b", ttl) is not None  # taken over meanwhile
    cid, email = low_scored(world)
    world.submit("Demo request", email)
    before = world.hubspot.write_counts().get(cid, 0)

    assert world.deliver(world.pushed()) == 200
    world.intake.drain()

    assert world.hubspot.write_counts().get(cid, 0) == before
    assert "update_contacts" not in [name for name, _ in world.crm.calls]
    assert world.store.last_runs(world.portal.id, 1)[0].status == "lease_lost"


def test_the_fast_path_waits_for_a_cycle_of_the_same_portal(world: World) -> None:
    world.intake.lock_wait_s = 0.05
    cid, _ = low_scored(world)
    with world.held.lock:  # a cycle is running
        world.deliver([ChangeEvent("creation", int(cid), world.clock.ms)])
        world.intake.process(world.portal.id)
        assert world.crm.calls == []
        assert len(world.intake.queue) == 1  # handed back, not lost
    world.intake.drain()
    assert [name for name, _ in world.crm.calls].count("read_contacts") == 1


def test_the_fast_path_writes_only_through_the_gate(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _cid, email = low_scored(world)
    world.submit("Demo request", email)
    monkeypatch.setattr("sync.pipeline.gate.writable_properties", lambda rules: frozenset({"ls_fit"}))
    writes = len(world.hubspot.write_log())
    world.deliver(world.pushed())
    world.intake.drain()
    assert len(world.hubspot.write_log()) == writes
    run = world.store.last_runs(world.portal.id, 1)[0]
    assert run.kind == "webhook" and run.status == "failed" and "refused to write" in (run.error or "")


def test_the_fast_path_checks_the_tokens_portal_first(world: World) -> None:
    world.portal.identity_verified = False
    world.hubspot.portal_id = 4242
    _cid, email = low_scored(world)
    world.submit("Demo request", email)
    writes = len(world.hubspot.write_log())
    world.deliver(world.pushed())
    world.intake.drain()
    assert len(world.hubspot.write_log()) == writes
    assert world.store.last_runs(world.portal.id, 1)[0].status == "paused"


def test_without_a_webhooks_section_or_its_secret_the_endpoint_takes_nothing(world: World) -> None:
    world.intake.environ = {}  # the variable the file names is not set: the portal takes no webhooks
    assert world.deliver([ChangeEvent("creation", 1001, world.clock.ms)]) == 404
    assert len(world.intake.queue) == 0


def test_a_flood_of_deliveries_is_answered_and_held_in_a_bounded_queue(world: World) -> None:
    world.intake.queue.capacity = 500
    statuses = {world.deliver([ChangeEvent("creation", 10_000 + i, world.clock.ms)]) for i in range(2_000)}
    assert statuses == {200}
    assert len(world.intake.queue) == 500
    assert world.outcome("dropped_full") == 1_500  # left to the safety-net poll, counted
