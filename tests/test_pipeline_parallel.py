"""Scoring on every core: the same results, in the same order, as in one process."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sync.core.model import Contact, Event, ScoreResult
from sync.core.rules import RuleSet
from sync.core.scoring import score_at
from sync.pipeline import parallel
from sync.pipeline.parallel import Decisions, Failure, Parallel, decider
from sync.sandbox.generator import generate_portal
from sync.snapshot import parse_snapshot
from sync.store.state import SqlStateStore
from tests.fakes import MemoryStore
from tests.test_cycle_rules import T0_MS, World

CONTACTS = 250

DAY_S = 86_400


def _square(x: int) -> int:
    return x * x


def scorer(rules: RuleSet, now_ms: int) -> Callable[[tuple[Contact, Sequence[Event]]], ScoreResult]:
    def work(item: tuple[Contact, Sequence[Event]]) -> ScoreResult:
        contact, events = item
        return score_at(contact, events, rules, now_ms)

    return work


def test_items_come_back_in_order_with_their_results() -> None:
    with Parallel(_square, processes=2, start_after=7, chunk=5) as pool:
        out = list(pool.map(range(103)))
        assert pool.parallel  # past the first 7, the workers did the rest
    assert out == [(x, x * x) for x in range(103)]


def test_a_small_input_never_starts_workers() -> None:
    pool = Parallel(_square, processes=2, start_after=1000)
    assert [r for _, r in pool.map(range(10))] == [x * x for x in range(10)]
    assert pool._pool is None


@pytest.fixture(scope="module")
def inputs() -> list[Any]:
    snapshot = parse_snapshot(generate_portal(300, 5).snapshot())
    return list(snapshot.scoring_inputs())


def test_contacts_scored_in_workers_score_as_here(inputs: list[Any]) -> None:
    from tests.factories import example_rules

    rules = example_rules()
    here = [r for _, r in Parallel(scorer(rules, 1_800_000_000_000), processes=1).map(inputs)]
    with Parallel(scorer(rules, 1_800_000_000_000), processes=2, start_after=20, chunk=16) as pool:
        there = [r for _, r in pool.map(inputs)]
    assert there == here
    assert sum(bool(r.breakdown) for r in there) > 200  # real results, with their breakdowns


def test_decisions_made_in_workers_are_whole_again(inputs: list[Any]) -> None:
    from tests.factories import example_rules

    rules = example_rules()
    asks = [(c, e, c.properties, None) for c, e in inputs]
    with Decisions(rules, 1_800_000_000_000, processes=2, start_after=50) as decisions:
        made = list(decisions.decide(asks))
    for (contact, events, _, _), decision in made:
        assert not isinstance(decision, Failure)
        alone = parallel.decision_of(
            (contact, events, contact.properties, None),
            decider(rules, 1_800_000_000_000)((contact, events, contact.properties, None)),  # type: ignore[arg-type]
            rules,
        )
        assert (decision.result, decision.plan.update, decision.stage_move, decision.reasons) == (
            alone.result,
            alone.plan.update,
            alone.stage_move,
            alone.reasons,
        )
        assert (decision.before, decision.after, decision.model) == (alone.before, alone.after, alone.model)


def test_a_contact_whose_scoring_raises_is_a_failure_not_a_stop(inputs: list[Any]) -> None:
    from tests.factories import example_rules

    asks = [(c, [*e, None] if n % 2 else e, c.properties, None) for n, (c, e) in enumerate(inputs[:40])]
    with Decisions(example_rules(), 1_800_000_000_000, processes=2, start_after=10) as decisions:
        made = [d for _, d in decisions.decide(asks)]
    assert len(made) == 40
    failed = [n for n, d in enumerate(made) if isinstance(d, Failure)]
    assert failed == list(range(1, 40, 2))  # an event that is not one: that contact fails, the others go on
    # The error's type and message come back (the compiled core raises TypeError, the pure one AttributeError).
    assert made[1].text.split(":")[0] in {"AttributeError", "TypeError"}  # type: ignore[union-attr]


def _rescored(world: World, monkeypatch: pytest.MonkeyPatch, processes: int) -> tuple[Any, ...]:
    """A full sync, then a rescore 120 days on with `processes` processes: what HubSpot holds, the history, the
    counts. The first page is decided in this process, the others in workers that read their own."""
    from sync.pipeline import cycle

    started: list[bool] = []

    class Watched(Parallel[Any, Any]):
        def close(self) -> None:
            started.append(self._pool is not None)
            super().close()

    monkeypatch.setenv(parallel.PROCESSES_ENV, str(processes))
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 100)  # one page here, the rest in the workers
    monkeypatch.setattr(cycle, "Parallel", Watched)
    world.run("full")
    world.clock.advance(120 * DAY_S)  # decay: many scores move
    summary = world.run("rescore").summary
    assert summary.status == "ok", summary.error
    assert started == [processes > 1 and not isinstance(world.store, MemoryStore)]
    values = {c["id"]: c["properties"] for c in world.hubspot.snapshot()["contacts"]}
    history = [
        (h.contact_id, h.old_score, h.new_score, h.grade, h.stage, h.reasons, h.breakdown)
        for cid in values
        for h in world.store.history(world.pid, cid)
    ]
    counts = {k: v for k, v in summary.counts.items() if k not in ("duration_ms",)}
    return values, history, counts


def _world(url: str | None = None) -> World:
    """tests/test_cycle_rules.py's world: a generated portal on the fakes, its state in `url` when given."""
    from pathlib import Path

    from sync.config import build_portal
    from sync.core.rules import compile_ruleset
    from sync.pipeline import Portal, read_properties
    from tests.factories import example_data
    from tests.fakes import FakeCrm, ManualClock

    clock = ManualClock.at_ms(T0_MS)
    hubspot = generate_portal(CONTACTS, 7)
    loaded = build_portal(example_data(), Path("example.yaml"))
    rules = compile_ruleset(loaded.rules)
    crm = FakeCrm(hubspot, clock, read_properties(rules))
    store: Any = MemoryStore(clock) if url is None else SqlStateStore(url, clock=clock)
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=clock)
    return World(hubspot, crm, store, clock, portal)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty state databases of one backend: two SQLite files, or two PostgreSQL schemas."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
        return
    from sync.store.schema import database_url

    admin: sa.Engine = request.getfixturevalue("pg_admin")
    base = database_url(request.getfixturevalue("pg_url"))
    names = [f"leadsync_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    urls = []
    with admin.begin() as conn:
        for name in names:
            conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
            options = " ".join(filter(None, [str(base.query.get("options", "")), f"-csearch_path={name}"]))
            urls.append(base.update_query_dict({"options": options}).render_as_string(hide_password=False))
    try:
        yield urls[0], urls[1]
    finally:
        with admin.begin() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


def test_a_rescore_on_every_core_writes_what_one_core_writes(
    monkeypatch: pytest.MonkeyPatch, two_databases: tuple[str, str]
) -> None:
    one_url, two_url = two_databases
    one_world, two_world = _world(one_url), _world(two_url)
    try:
        one = _rescored(one_world, monkeypatch, 1)
        two = _rescored(two_world, monkeypatch, 2)
    finally:
        for world in (one_world, two_world):
            assert isinstance(world.portal.store, SqlStateStore)
            world.portal.store.close()
    assert two == one
    assert one[2]["written"] > 50  # the rescore had writes to make
    assert one[2]["scored"] == CONTACTS


def test_a_rescore_of_the_in_memory_store_stays_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, counts = _rescored(_world(), monkeypatch, 2)  # asserts no worker started
    assert counts["scored"] == CONTACTS and counts["written"] > 50


def test_one_process_is_forced_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(parallel.PROCESSES_ENV, "1")
    assert parallel.worker_processes() == 1
    monkeypatch.delenv(parallel.PROCESSES_ENV)
    assert parallel.worker_processes() == parallel.cores()


def test_a_reopened_store_reads_the_same_database_on_its_own_engine(tmp_path: Path) -> None:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    again = store.reopened()
    try:
        assert isinstance(store, parallel.Reopenable)
        assert not isinstance(MemoryStore(), parallel.Reopenable)
        assert again.engine is not store.engine
        store.set_cursor(1, "x", "42")
        assert again.get_cursor(1, "x") == "42"
    finally:
        again.close()
        store.close()


def test_no_worker_is_started_unless_asked() -> None:
    """Workers cost more than they save while this process reads and pickles the contacts (see USE_WORKERS)."""
    pool = Parallel(_square, start_after=0)
    assert [r for _, r in pool.map(range(50))] == [x * x for x in range(50)]
    assert pool._pool is None and pool.processes == 1


def test_a_rescore_stopped_on_every_core_ends_its_workers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import multiprocessing

    world = _world(f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv(parallel.PROCESSES_ENV, "2")
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 0)
    try:
        world.run("full")
        world.clock.advance(120 * DAY_S)
        summary = world.run("rescore", stop_after=100).summary
    finally:
        assert isinstance(world.portal.store, SqlStateStore)
        world.portal.store.close()
    assert summary.status == "interrupted"
    assert summary.counts["scored"] < CONTACTS  # it stopped after the page in hand, the rest not written
    assert multiprocessing.active_children() == []
