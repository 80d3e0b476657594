"""The StateStore's company roles, run on SQLite, PostgreSQL and in memory: one behaviour per test."""

from __future__ import annotations

import sqlalchemy as sa

from sync.core.model import Company, CompanyAssociation
from sync.ports import DeadLetter, HistoryRow, PendingWrite, StateStore
from sync.store import schema
from sync.store.state import SqlStateStore

PORTAL = 42
OTHER = 4_294_967_296


def history(company_id: str, new_score: int) -> HistoryRow:
    return HistoryRow(company_id, "run-1", "v1", None, new_score, "A1", None, "+30 size", {"score": new_score})


def write(company_id: str, score: int) -> PendingWrite:
    return PendingWrite(company_id, {"ls_account_score": str(score)}, None, history(company_id, score))


def test_companies_read_back_in_the_order_asked_per_portal(store: StateStore) -> None:
    store.upsert_companies(PORTAL, [Company("2", {"industry": "ENERGY"}), Company("10", {"industry": "RETAIL"})])
    store.upsert_companies(OTHER, [Company("2", {"industry": "OTHER"})])
    assert store.get_companies(PORTAL, ["10", "404", "2"]) == [
        Company("10", {"industry": "RETAIL"}),
        Company("2", {"industry": "ENERGY"}),
    ]
    assert store.get_companies(OTHER, ["2"]) == [Company("2", {"industry": "OTHER"})]
    assert list(store.iter_company_ids(PORTAL, 1)) == [["10"], ["2"]]


def test_a_contacts_associations_are_replaced_whole(store: StateStore) -> None:
    store.set_company_associations(
        PORTAL, ["c1", "c2"], [CompanyAssociation("c1", "k1", True), CompanyAssociation("c1", "k2")]
    )
    store.set_company_associations(PORTAL, ["c1"], [CompanyAssociation("c1", "k3", True)])
    store.set_company_associations(PORTAL, ["c2"], [])
    assert store.company_associations(PORTAL, ["c1", "c2"]) == [CompanyAssociation("c1", "k3", True)]


def test_a_companys_contacts_page_in_id_order(store: StateStore) -> None:
    links = [CompanyAssociation(f"c{i}", "k1", i == 0) for i in range(5)] + [CompanyAssociation("c9", "k2")]
    store.set_company_associations(PORTAL, [a.contact_id for a in links], links)
    assert list(store.iter_company_contact_ids(PORTAL, "k1", 2)) == [["c0", "c1"], ["c2", "c3"], ["c4"]]
    assert list(store.iter_company_contact_ids(OTHER, "k1", 2)) == []


def test_stale_companies_are_listed_once_and_cleared_by_the_completion_that_rescored_them(store: StateStore) -> None:
    store.mark_companies_stale(PORTAL, ["k2", "k1", "k2"])
    store.mark_companies_stale(PORTAL, ["k3"])
    assert store.stale_companies(PORTAL, 2) == ["k1", "k2"]
    store.complete_company_writes(PORTAL, "run-1", [], [], rescored=["k1", "k2"])
    assert store.stale_companies(PORTAL, 10) == ["k3"]
    assert store.stale_companies(OTHER, 10) == []


def test_company_writes_pass_the_outbox_into_history_and_written_values(store: StateStore) -> None:
    store.record_company_pending(PORTAL, "run-1", [write("k1", 70), write("k2", 20)])
    assert [p.contact_id for p in store.pending_company_writes(PORTAL)] == ["k1", "k2"]
    assert store.pending_company_writes(PORTAL)[0] == write("k1", 70)
    refused = DeadLetter("k2", {"ls_account_score": "20"}, "VALIDATION_ERROR: no", 400)
    store.complete_company_writes(PORTAL, "run-1", [write("k1", 70)], [refused], rescored=["k1", "k2"])
    assert store.pending_company_writes(PORTAL) == []
    assert store.written_company_values(PORTAL, ["k1", "k2"]) == {"k1": {"ls_account_score": "70"}}
    assert store.company_history(PORTAL, "k1") == [history("k1", 70)]
    assert store.company_history(PORTAL, "k2") == []
    assert store.company_dead_letters(PORTAL) == [refused]


def test_a_company_read_again_supersedes_what_we_remember_writing(store: StateStore) -> None:
    store.complete_company_writes(PORTAL, "run-1", [write("k1", 70)], [])
    store.upsert_companies(PORTAL, [Company("k1", {"ls_account_score": "70"})])
    assert store.written_company_values(PORTAL, ["k1"]) == {}


def test_a_removed_company_takes_its_associations_and_mark_with_it(store: StateStore) -> None:
    store.upsert_companies(PORTAL, [Company("k1", {}), Company("k2", {})])
    store.set_company_associations(PORTAL, ["c1"], [CompanyAssociation("c1", "k1"), CompanyAssociation("c1", "k2")])
    store.mark_companies_stale(PORTAL, ["k1", "k2"])
    store.remove_companies(PORTAL, ["k1"])
    assert store.get_companies(PORTAL, ["k1", "k2"]) == [Company("k2", {})]
    assert store.company_associations(PORTAL, ["c1"]) == [CompanyAssociation("c1", "k2")]
    assert store.stale_companies(PORTAL, 10) == ["k2"]


def test_a_v5_database_gains_the_company_tables_by_migration(sql_store: SqlStateStore) -> None:
    engine = sql_store.engine
    with schema.writer(engine).begin() as conn:
        for table in reversed(schema.COMPANY_TABLES):
            table.drop(conn)
        conn.execute(sa.delete(schema.schema_migrations).where(schema.schema_migrations.c.version == 6))
    assert schema.migrate(engine) == [6]
    assert schema.migrate(engine) == []
    names = set(sa.inspect(engine).get_table_names())
    assert {t.name for t in schema.COMPANY_TABLES} <= names
