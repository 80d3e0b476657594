"""The state store over SQLAlchemy Core: one class serving every role of the StateStore port (sync.ports), per portal,
composed of one module per role: cursors, contacts, events, outbox, dead_letters, history, companies and runs
(runs, leases, the API budget, settings) over the engine and helpers in base.

Each public method runs in one transaction of its own and commits it before
returning. Writes use the writer engine (BEGIN IMMEDIATE on SQLite); reads
use plain connections. Bulk methods send one statement per call with many
parameter sets (or one per chunk of an IN list), never one query per record.
Emails are lowercased on the way in, on contacts and events alike, so the two
meet by plain equality.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from sync.ports import Clock, SystemClock
from sync.store import schema
from sync.store.base import IN_CHUNK, StoreBase, normalize_email
from sync.store.companies import CompanyStore
from sync.store.contacts import ContactStore
from sync.store.cursors import CursorStore
from sync.store.dead_letters import (
    DEAD_LETTER_FIRST_WAIT,
    DEAD_LETTER_MAX_ATTEMPTS,
    DEAD_LETTER_MAX_WAIT,
    DROPPED,
    GIVEN_UP,
    OPEN,
    RESOLVED,
    RETRYING,
    DeadLetterStore,
    dead_letter_wait,
)
from sync.store.events import EventStore
from sync.store.history import HistoryStore
from sync.store.outbox import OutboxStore
from sync.store.runs import RunStore

__all__ = [
    "DEAD_LETTER_FIRST_WAIT",
    "DEAD_LETTER_MAX_ATTEMPTS",
    "DEAD_LETTER_MAX_WAIT",
    "DROPPED",
    "GIVEN_UP",
    "IN_CHUNK",
    "OPEN",
    "RESOLVED",
    "RETRYING",
    "SqlStateStore",
    "dead_letter_wait",
    "normalize_email",
]


class SqlStateStore(
    ContactStore,
    EventStore,
    OutboxStore,
    CursorStore,
    DeadLetterStore,
    HistoryStore,
    CompanyStore,
    RunStore,
    StoreBase,
):
    """SQLite file by default (see schema.database_url), PostgreSQL by URL; migrates the schema on open."""

    def __init__(self, url: str | None = None, *, clock: Clock | None = None) -> None:
        self._engine = schema.create_engine(url)
        self._writer = schema.writer(self._engine)
        self._clock = clock or SystemClock()
        self._log_key: bytes | None = None
        try:
            schema.migrate(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        return self._engine

    def reopened(self) -> SqlStateStore:
        """The same database on an engine of its own: for a forked process, which must never use its parent's
        connections (sync.pipeline.parallel keeps the inherited store unused; this one's pool is its own)."""
        return SqlStateStore(self._engine.url.render_as_string(hide_password=False), clock=self._clock)

    def close(self) -> None:
        """Close the pooled connections; the store is not used after this."""
        self._engine.dispose()
