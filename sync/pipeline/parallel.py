"""Scoring on every core: contacts scored in worker processes a chunk at a time, the results in order.

Scoring is pure (sync.core): a contact's result depends on the contact, its events, the rule set and the
time only, so a worker process scores a contact exactly as this one would, and taking the chunks back in the
order they went out gives the very output of scoring them here. The first `PARALLEL_FROM` contacts are
scored in this process, so small portals and incremental runs never pay for starting workers; past them, the
rest go to a pool of one process a core.

The workers are forked: they inherit the compiled rule set (whose conditions are closures, which cannot be
pickled) and the work function; only the contacts and events going out and the results coming back are
pickled, as tuples of their fields. Where fork is not available the work stays in this process.

Where this process reads the contacts and pickles them for a worker, the reading and pickling cost more than the
scoring the workers take off it, so there the workers are off (`USE_WORKERS`). Instead, the workers read their
own input: the rescore of a SQL store sends them only ids, and each worker opens the store again and reads its
own pages (`Reopenable`, `worker_processes`, Cycle.rescore_pages), sending back only what to write and count;
a large JSON Lines snapshot is cut into pieces that each worker parses and checks (sync.snapshot.pieces).
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.util
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from multiprocessing.reduction import ForkingPickler
from operator import attrgetter
from typing import Any, Final, Generic, Protocol, TypeVar, runtime_checkable

from sync.core import model
from sync.core.decision import Decision, decide, model_named
from sync.core.model import Contact, Event, ScoreResult
from sync.core.planning import ContactPlan
from sync.core.rules import RuleSet
from sync.ports import StateStore

T = TypeVar("T")
R = TypeVar("R")

PARALLEL_FROM = 20_000  # contacts scored here before workers start: fewer are done before a pool is up
CHUNK: Final = 250  # contacts a worker takes at a time: enough to make a round trip worth it
AHEAD: Final = 3  # chunks in flight a worker: the pool never waits for this process, memory stays bounded


# Off where this process reads the contacts for the workers (a rescore's workers read their own pages: see
# `worker_processes`): measured on 2 cores with the pure-Python core (a 60,000-contact file), reading and pickling
# the contacts in this process cost more than the scoring the workers take off it, and every core was 30% slower
# than one. Callers that pass `processes` still get workers.
USE_WORKERS = False


WORKER_PAGES: Final = 10  # pages of ids a worker takes at a time in a rescore: 1,000 contacts, read on its own
# Processes for work whose workers read their own input (a rescore of a SQL store, a large snapshot file); 1 keeps
# the work in this process.
PROCESSES_ENV: Final = "LEADSYNC_PROCESSES"


def worker_processes() -> int:
    """Processes for work whose workers read their own input: `LEADSYNC_PROCESSES`, else one a core."""
    wanted = os.environ.get(PROCESSES_ENV, "").strip()
    return max(1, int(wanted)) if wanted.isdigit() else cores()


class OwnStore(StateStore, Protocol):
    """A store opened in a worker, closed as the worker exits."""

    def close(self) -> None: ...


@runtime_checkable
class Reopenable(Protocol):
    """A store a forked process can open again on connections of its own (the SQL store; not the in-memory one)."""

    def reopened(self) -> OwnStore: ...


_inherited: list[object] = []  # in a worker: the parent's stores, kept so that nothing here closes its connections


def reopened_here(store: Reopenable) -> StateStore:
    """In a forked worker: the same store on connections of its own, closed as the worker exits. The parent's
    connections are inherited as open sockets and files; closing one here (or its garbage collection) would end
    the parent's session, so the inherited store is kept, never used, until the worker exits."""
    _inherited.append(store)
    own = store.reopened()
    # The worker's exit runs multiprocessing's finalizers (not the garbage collector's): its pool closes cleanly.
    multiprocessing.util.Finalize(own, own.close, exitpriority=10)
    return own


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- in the worker -----------------------------------------------------------------------------------

_work: Callable[[Any], Any] | None = None


def _start(work: Callable[[Any], Any]) -> None:
    global _work  # noqa: PLW0603 - the worker process's one job, set once as it starts
    _work = work
    # What the worker inherited stays out of its garbage collections: a collection writes to every object it
    # looks at, which would copy the parent's pages into the worker one by one (its memory growing to the
    # parent's over a long run).
    gc.freeze()


def _run(chunk: list[Any]) -> list[Any]:
    work = _work
    assert work is not None, "a worker runs only after _start"
    return [work(item) for item in chunk]


# -- pickling the core's values ------------------------------------------------------------------------


class _Fields:
    """Pickles a core value as its class and the fields it is built from, read in one C call."""

    def __init__(self, cls: type, fields: Sequence[str]) -> None:
        self.cls, self.fields = cls, attrgetter(*fields)

    def __call__(self, value: object) -> tuple[type, tuple[object, ...]]:
        return self.cls, self.fields(value)


def _register() -> None:
    """Core values cross to and from the workers as their fields (compiled, they pickle no other way)."""
    for item in vars(model).values():
        if isinstance(item, type) and issubclass(item, model._Value) and len(item._fields) > 1:
            ForkingPickler.register(item, _Fields(item, item._fields))
    ForkingPickler.register(ContactPlan, _Fields(ContactPlan, ("update", "stage_change")))


class Parallel(Generic[T, R]):
    """`work` over a stream of items, the results in order: here for the first `start_after`, then in a pool of
    `processes` forked workers (at most `processes * AHEAD` chunks in flight). `work` must not raise: it
    returns a failure to report as a value (a raise would end the whole map)."""

    def __init__(
        self,
        work: Callable[[T], R],
        *,
        processes: int | None = None,
        start_after: int | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.work = work
        self.processes = (cores() if USE_WORKERS else 1) if processes is None else processes
        if "fork" not in multiprocessing.get_all_start_methods():
            self.processes = 1
        self.start_after = PARALLEL_FROM if start_after is None else start_after
        self.chunk = chunk
        self.done = 0
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> bool:
        """Whether the items from here on go to worker processes."""
        return self.processes > 1 and self.done >= self.start_after

    def map(self, items: Iterable[T]) -> Iterator[tuple[T, R]]:
        """Each item with `work(item)`, in the order given."""
        stream = iter(items)
        while not self.parallel:
            item = next(stream, _END)
            if item is _END:
                return
            self.done += 1
            yield item, self.work(item)
        pool = self._started()
        flight: deque[tuple[list[T], Future[list[R]]]] = deque()
        while True:
            while len(flight) < self.processes * AHEAD:
                chunk = list(islice(stream, self.chunk))
                if not chunk:
                    break
                flight.append((chunk, pool.submit(_run, chunk)))
            if not flight:
                return
            chunk, future = flight.popleft()
            self.done += len(chunk)
            yield from zip(chunk, future.result(), strict=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Parallel[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            _register()
            # Forked, so that the work (and the compiled rules it closes over) is inherited, never pickled. The
            # workers only score: pure code, no lock of this process's other threads is ever taken in them.
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start,
                initargs=(self.work,),
            )
        return self._pool


_END: Any = object()


# -- what the callers send ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """A contact whose scoring raised: what it raised, as `Type: message` (the record boundary reports it)."""

    text: str

    @classmethod
    def of(cls, exc: Exception) -> Failure:
        return cls(f"{type(exc).__name__}: {exc}")


Ask = tuple[Contact, Sequence[Event], Mapping[str, str], str | None]  # contact, events, what HubSpot holds, stage


@dataclass(frozen=True)
class Decided:
    """What a worker sends back of a `Decision`: the rest is this process's (the model is the rule set's)."""

    result: ScoreResult
    plan: ContactPlan
    reasons: str


def decider(rules: RuleSet, now_ms: int) -> Callable[[Ask], Decided | Failure]:
    """`decide` of (contact, events, current, written stage), a failure as a value."""

    def work(ask: Ask) -> Decided | Failure:
        contact, events, current, stage = ask
        try:
            decision = decide(contact, events, rules, now_ms, current, written_stage=stage)
        except Exception as exc:  # the record boundary: the caller reports it and goes on
            return Failure.of(exc)
        return Decided(decision.result, decision.plan, decision.reasons)

    return work


def decision_of(ask: Ask, decided: Decided, rules: RuleSet) -> Decision:
    """The `Decision` a worker's `decide` made, whole again: as `decide` builds it."""
    contact, _, current, _ = ask
    found = model_named(rules, decided.result.model)
    shown = found.properties if found is not None else rules.spec.models[0].properties
    return Decision(contact, decided.result, found, decided.plan, current, decided.reasons, shown)


class Decisions:
    """`decide` for pages of contacts, on every core once there are many (see `Parallel`)."""

    def __init__(
        self, rules: RuleSet, now_ms: int, *, processes: int | None = None, start_after: int | None = None
    ) -> None:
        self.rules = rules
        self._pool = Parallel(decider(rules, now_ms), processes=processes, start_after=start_after)

    @property
    def parallel(self) -> bool:
        return self._pool.parallel

    def decide(self, asks: Iterable[Ask]) -> Iterator[tuple[Ask, Decision | Failure]]:
        for ask, out in self._pool.map(asks):
            yield ask, out if isinstance(out, Failure) else decision_of(ask, out, self.rules)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Decisions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
