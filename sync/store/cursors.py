"""Cursors: where each of a portal's streams was read up to."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.store import schema
from sync.store.base import StoreBase


class CursorStore(StoreBase):
    """The Cursors role (sync.ports)."""

    def get_cursor(self, portal_id: int, stream: str) -> str | None:
        query = sa.select(schema.cursors.c.value).where(
            schema.cursors.c.portal_id == portal_id, schema.cursors.c.stream == stream
        )
        with self._engine.connect() as conn:
            value: str | None = conn.scalar(query)
        return value

    def set_cursor(self, portal_id: int, stream: str, value: str) -> None:
        with self._writer.begin() as conn:
            self._put_cursor(conn, portal_id, stream, value)

    def _put_cursor(self, conn: Connection, portal_id: int, stream: str, value: str) -> None:
        stmt = self._insert(schema.cursors).values(
            portal_id=portal_id, stream=stream, value=value, updated_at=self._now()
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[schema.cursors.c.portal_id, schema.cursors.c.stream],
                set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
            )
        )
