"""Backends for the store's contract suite: a SQLite file always, PostgreSQL when it is reachable, and the tests'
in-memory store (tests.fakes.MemoryStore) for every test that is not about SQL itself (`sql_store`, `store_url`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sync.ports import StateStore
from sync.store.state import SqlStateStore
from tests.fakes import ManualClock, MemoryStore

SQL_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
BACKENDS = [*SQL_BACKENDS, pytest.param("memory", id="memory")]


def _database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture(params=SQL_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each SQL backend: a new SQLite file, or a new PostgreSQL schema."""
    return _database(request.param, request, tmp_path)


MakeStore = Callable[[], StateStore]
MakeSqlStore = Callable[[], SqlStateStore]


def _sql_stores(url: str, clock: ManualClock) -> Iterator[MakeSqlStore]:
    opened: list[SqlStateStore] = []

    def make() -> SqlStateStore:
        store = SqlStateStore(url, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[MakeStore]:
    """Open stores on the test's database and clock (each SQL one its own engine and pool; the in-memory
    database is one object, so every store opened on it is that object); all close at teardown."""
    if request.param == "memory":
        memory = MemoryStore(clock)
        yield lambda: memory
        return
    yield from _sql_stores(_database(request.param, request, tmp_path), clock)


@pytest.fixture
def store(make_store: MakeStore) -> StateStore:
    return make_store()


@pytest.fixture
def make_sql_store(store_url: str, clock: ManualClock) -> Iterator[MakeSqlStore]:
    yield from _sql_stores(store_url, clock)


@pytest.fixture
def sql_store(make_sql_store: MakeSqlStore) -> SqlStateStore:
    """A store on each SQL backend, for what only SQL has: transactions, migrations, the engine."""
    return make_sql_store()
