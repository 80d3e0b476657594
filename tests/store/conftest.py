"""Backends for the store's contract suite: a SQLite file always, PostgreSQL when it is reachable.

`pg_url` is the server's URL: it skips the test when the server is not
reachable, and fails it instead when CI=true, so CI never passes by skipping.
`pg_schema_url` adds a fresh schema per test (the URL's connections get it as
their search_path), dropped afterwards, so runs can repeat and go in parallel.
Another suite reuses them with `from tests.store.conftest import pg_admin, pg_schema_url, pg_url`.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from sync.store.schema import database_url
from sync.store.state import SqlStateStore

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = 1_790_000_000.0  # 2026-09-21T12:53:20Z

R = TypeVar("R")


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def in_parallel(*calls: Callable[[], R]) -> list[R]:
    """Run the calls in threads released together, so they really contend; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], R]) -> R:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _unreachable(url: str) -> str | None:
    engine = sa.create_engine(database_url(url), poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except sa.exc.SQLAlchemyError as exc:
        return str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).strip().splitlines()[0]
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test server's URL ($LEADSYNC_TEST_PG_URL or a local default); skipped if unreachable, failed if CI=true."""
    url = os.environ.get("LEADSYNC_TEST_PG_URL", DEFAULT_PG_URL)
    problem = _unreachable(url)
    if problem is not None:
        shown = database_url(url).render_as_string(hide_password=True)
        message = f"PostgreSQL not reachable at {shown}; set LEADSYNC_TEST_PG_URL ({problem})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def pg_admin(pg_url: str) -> Iterator[sa.Engine]:
    # One pooled engine for creating and dropping the tests' schemas: a connection per test would add up.
    engine = sa.create_engine(database_url(pg_url), pool_size=1)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema_url(pg_url: str, pg_admin: sa.Engine) -> Iterator[str]:
    """A URL whose connections work in a schema of their own, created for this test and dropped after it."""
    name = f"leadsync_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    base = database_url(pg_url)
    options = " ".join(filter(None, [str(base.query.get("options", "")), f"-csearch_path={name}"]))
    yield base.update_query_dict({"options": options}).render_as_string(hide_password=False)
    with pg_admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


MakeStore = Callable[[], SqlStateStore]


@pytest.fixture
def make_store(store_url: str, clock: FakeClock) -> Iterator[MakeStore]:
    """Open stores (each its own engine and pool) on the test's database and clock; all close at teardown."""
    opened: list[SqlStateStore] = []

    def make() -> SqlStateStore:
        store = SqlStateStore(store_url, clock=clock)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> SqlStateStore:
    return make_store()
