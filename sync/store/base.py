"""What every role of the SQL state store shares: one engine (reads) and its writer, the clock, the chunking of
IN lists, keyset paging, and the JSON shape of a history row kept in an outbox."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sync.ports import Clock, HistoryRow
from sync.store import schema

# Bound parameters per IN list: well under SQLite's variable limit, and keeps PostgreSQL plans generic.
IN_CHUNK = 500


class StoreBase:
    """The state every role's methods read; SqlStateStore sets it up once and composes the roles over it."""

    _engine: Engine
    _writer: Engine
    _clock: Clock
    _log_key: bytes | None

    def _now(self) -> datetime:
        return self._clock.now().astimezone(UTC)

    def _insert(self, table: sa.Table) -> schema.Upsert:
        return schema.dialect_insert(self._engine, table)

    def _keyset(self, key: sa.Column[str], where: sa.ColumnElement[bool], batch: int) -> Iterator[list[str]]:
        if batch < 1:
            raise ValueError(f"batch must be positive, not {batch}")
        after: str | None = None
        while True:
            query = sa.select(key).where(where)
            if after is not None:
                query = query.where(key > after)
            with self._engine.connect() as conn:
                page = list(conn.scalars(query.order_by(key).limit(batch)))
            if page:
                yield page
            if len(page) < batch:
                return
            after = page[-1]


def normalize_email(email: str) -> str:
    return email.strip().lower()


def chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def int_chunks(values: Sequence[int], size: int = IN_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def history_json(history: HistoryRow) -> dict[str, object]:
    data = {f.name: getattr(history, f.name) for f in fields(HistoryRow)}
    data["breakdown"] = dict(history.breakdown)
    return data


def history_from(data: Mapping[str, Any]) -> HistoryRow:
    return HistoryRow(**{f.name: data[f.name] for f in fields(HistoryRow)})
