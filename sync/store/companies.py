"""Companies, contacts' associations to them, and the marks of the companies the account pass must score."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from sync.core.model import Company, CompanyAssociation
from sync.store import schema
from sync.store.base import StoreBase, chunks


class CompanyStore(StoreBase):
    """The CompanyStore role (sync.ports): companies, associations, stale marks."""

    def upsert_companies(self, portal_id: int, companies: Sequence[Company]) -> None:
        now = self._now()
        rows = {
            c.id: {"portal_id": portal_id, "id": c.id, "properties": dict(c.properties), "updated_at": now}
            for c in companies
        }
        if not rows:
            return
        stmt = self._insert(schema.companies)
        stmt = stmt.on_conflict_do_update(
            index_elements=[schema.companies.c.portal_id, schema.companies.c.id],
            set_={name: stmt.excluded[name] for name in ("properties", "updated_at")},
        )
        written = schema.company_written_values
        with self._writer.begin() as conn:
            conn.execute(stmt, list(rows.values()))
            # As for contacts: a company read again shows what HubSpot holds now, our last writes included.
            for chunk in chunks(list(rows)):
                conn.execute(written.delete().where(written.c.portal_id == portal_id, written.c.company_id.in_(chunk)))

    def get_companies(self, portal_id: int, ids: Sequence[str]) -> list[Company]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Company] = {}
        table = schema.companies
        with self._engine.connect() as conn:
            for chunk in chunks(wanted):
                query = sa.select(table.c.id, table.c.properties).where(
                    table.c.portal_id == portal_id, table.c.id.in_(chunk)
                )
                found.update((row.id, Company(row.id, dict(row.properties))) for row in conn.execute(query))
        return [found[i] for i in wanted if i in found]

    def remove_companies(self, portal_id: int, ids: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(ids))
        with self._writer.begin() as conn:
            for chunk in chunks(wanted):
                for table, column in (
                    (schema.companies, schema.companies.c.id),
                    (schema.company_associations, schema.company_associations.c.company_id),
                    (schema.stale_companies, schema.stale_companies.c.company_id),
                    (schema.company_written_values, schema.company_written_values.c.company_id),
                ):
                    conn.execute(table.delete().where(table.c.portal_id == portal_id, column.in_(chunk)))

    def iter_company_ids(self, portal_id: int, batch: int = 1000) -> Iterator[list[str]]:
        """Every stored company id, in id (text) order, `batch` at a time (keyset paging, as iter_contact_ids)."""
        table = schema.companies
        return self._keyset(table.c.id, table.c.portal_id == portal_id, batch)

    def set_company_associations(
        self, portal_id: int, contact_ids: Sequence[str], associations: Sequence[CompanyAssociation]
    ) -> None:
        table = schema.company_associations
        rows: dict[tuple[str, str], dict[str, object]] = {}
        for a in associations:
            key = (a.contact_id, a.company_id)
            primary = a.primary or bool(rows.get(key, {}).get("is_primary"))
            rows[key] = {
                "portal_id": portal_id,
                "contact_id": a.contact_id,
                "company_id": a.company_id,
                "is_primary": primary,
            }
        contacts = list(dict.fromkeys([*contact_ids, *(a.contact_id for a in associations)]))
        with self._writer.begin() as conn:
            for chunk in chunks(contacts):
                conn.execute(table.delete().where(table.c.portal_id == portal_id, table.c.contact_id.in_(chunk)))
            if rows:
                conn.execute(sa.insert(table), list(rows.values()))

    def company_associations(self, portal_id: int, contact_ids: Sequence[str]) -> list[CompanyAssociation]:
        """The stored associations of these contacts, ordered by contact then company id."""
        table = schema.company_associations
        found: list[CompanyAssociation] = []
        with self._engine.connect() as conn:
            for chunk in chunks(list(dict.fromkeys(contact_ids))):
                query = sa.select(table.c.contact_id, table.c.company_id, table.c.is_primary).where(
                    table.c.portal_id == portal_id, table.c.contact_id.in_(chunk)
                )
                found += [
                    CompanyAssociation(r.contact_id, r.company_id, bool(r.is_primary)) for r in conn.execute(query)
                ]
        return sorted(found, key=lambda a: (a.contact_id, a.company_id))

    def iter_company_contact_ids(self, portal_id: int, company_id: str, batch: int = 1000) -> Iterator[list[str]]:
        table = schema.company_associations
        where = sa.and_(table.c.portal_id == portal_id, table.c.company_id == company_id)
        return self._keyset(table.c.contact_id, where, batch)

    def mark_companies_stale(self, portal_id: int, company_ids: Sequence[str]) -> None:
        wanted = list(dict.fromkeys(company_ids))
        if not wanted:
            return
        now = self._now()
        table = schema.stale_companies
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=[table.c.portal_id, table.c.company_id])
        with self._writer.begin() as conn:
            conn.execute(stmt, [{"portal_id": portal_id, "company_id": cid, "marked_at": now} for cid in wanted])

    def stale_companies(self, portal_id: int, limit: int) -> list[str]:
        table = schema.stale_companies
        query = (
            sa.select(table.c.company_id)
            .where(table.c.portal_id == portal_id)
            .order_by(table.c.company_id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return list(conn.scalars(query))
