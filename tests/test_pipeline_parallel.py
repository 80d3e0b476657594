"""Scoring on every core: the same results, in the same order, as in one process."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from sync.pipeline import parallel
from sync.pipeline.parallel import Decisions, Failure, Parallel, decider, scorer
from sync.sandbox.generator import generate_portal
from sync.snapshot import parse_snapshot
from tests.test_cycle_rules import T0_MS, World

CONTACTS = 250

DAY_S = 86_400


def _square(x: int) -> int:
    return x * x


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
    from sync.pipeline import cycle

    started: list[bool] = []

    class Watched(Decisions):
        def close(self) -> None:
            started.append(self._pool._pool is not None)
            super().close()

    monkeypatch.setattr(cycle, "Decisions", functools.partial(Watched, processes=processes, start_after=30))
    world.run("full")
    world.clock.advance(120 * DAY_S)  # decay: many scores move
    summary = world.run("rescore").summary
    assert summary.status == "ok", summary.error
    assert started == [processes > 1]
    values = {c["id"]: c["properties"] for c in world.hubspot.snapshot()["contacts"]}
    history = [
        (h.contact_id, h.old_score, h.new_score, h.grade, h.stage, h.reasons)
        for cid in values
        for h in world.store.history(world.pid, cid)
    ]
    counts = {k: v for k, v in summary.counts.items() if k not in ("duration_ms",)}
    return values, history, counts


def _world() -> World:
    """tests/test_cycle_rules.py's world: a generated portal on the in-memory fakes."""
    from pathlib import Path

    from sync.config import build_portal
    from sync.core.rules import compile_ruleset
    from sync.pipeline import Portal, read_properties
    from tests.factories import example_data
    from tests.fakes import FakeCrm, ManualClock, MemoryStore

    clock = ManualClock.at_ms(T0_MS)
    hubspot = generate_portal(CONTACTS, 7)
    loaded = build_portal(example_data(), Path("example.yaml"))
    rules = compile_ruleset(loaded.rules)
    crm = FakeCrm(hubspot, clock, read_properties(rules))
    store = MemoryStore(clock)
    portal = Portal(config=loaded.config, rules=rules, source=crm, writer=crm, store=store, clock=clock)
    return World(hubspot, crm, store, clock, portal)


def test_a_rescore_on_every_core_writes_what_one_core_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    one = _rescored(_world(), monkeypatch, 1)
    two = _rescored(_world(), monkeypatch, 2)
    assert two == one
    assert one[2]["written"] > 50  # the rescore had writes to make


def test_no_worker_is_started_unless_asked() -> None:
    """Workers cost more than they save while this process reads and pickles the contacts (see USE_WORKERS)."""
    pool = Parallel(_square, start_after=0)
    assert [r for _, r in pool.map(range(50))] == [x * x for x in range(50)]
    assert pool._pool is None and pool.processes == 1
