"""Migrations, engines and URLs: what schema.py decides for each backend."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from sync.errors import ConfigError
from sync.ports import RunRecord
from sync.store import schema
from sync.store.state import SqlStateStore
from tests.fakes import in_parallel


def _versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(schema.schema_migrations.c.version).order_by("version")))


def test_migrating_twice_changes_nothing(sql_store: SqlStateStore) -> None:
    assert schema.migrate(sql_store.engine) == []
    assert _versions(sql_store.engine) == list(range(1, len(schema.migrations) + 1))


def test_two_engines_migrating_at_once_apply_each_migration_once(store_url: str) -> None:
    engines = [schema.create_engine(store_url), schema.create_engine(store_url)]
    try:
        applied = in_parallel(*(partial(schema.migrate, engine) for engine in engines))
        assert sorted(applied) == [[], list(range(1, len(schema.migrations) + 1))]
        assert _versions(engines[0]) == list(range(1, len(schema.migrations) + 1))
    finally:
        for engine in engines:
            engine.dispose()


def test_a_v1_database_gains_the_stage_owners_table(store_url: str) -> None:
    engine = schema.create_engine(store_url)
    try:
        with schema.writer(engine).begin() as conn:  # the database as v1 left it, before stage_owners existed
            tables = [t for t in schema.metadata.sorted_tables if t.name not in ("stage_owners", "schema_migrations")]
            schema.metadata.create_all(conn, tables=tables)
            schema.schema_migrations.create(conn)
            conn.execute(sa.insert(schema.schema_migrations).values(version=1, applied_at=datetime.now().astimezone()))
        assert schema.migrate(engine) == list(range(2, len(schema.migrations) + 1))
        assert "stage_owners" in sa.inspect(engine).get_table_names()
        assert schema.migrate(engine) == []
    finally:
        engine.dispose()


def test_the_migrated_database_has_the_declared_tables_and_columns(sql_store: SqlStateStore) -> None:
    inspector = sa.inspect(sql_store.engine)
    found = {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}
    assert found == {t.name: {c.name for c in t.columns} for t in schema.metadata.sorted_tables}


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("journal_mode", "wal"), ("synchronous", 1), ("busy_timeout", 30_000), ("foreign_keys", 1)],
)
def test_sqlite_connections_are_set_up_for_concurrent_writers(tmp_path: Path, pragma: str, expected: object) -> None:
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql(f"PRAGMA {pragma}").scalar() == expected
    finally:
        store.close()


def test_naive_datetimes_are_refused(sql_store: SqlStateStore) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        sql_store.start_run(RunRecord("r-1", 42, "full", datetime(2026, 11, 1, 12, 0)))


def test_the_default_database_is_leadsync_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(schema.DB_URL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert schema.database_url().database == str(tmp_path / "leadsync.db")


def test_LEADSYNC_DB_URL_is_used_when_no_url_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(schema.DB_URL_ENV, f"sqlite:///{tmp_path / 'from-env.db'}")
    store = SqlStateStore()
    try:
        store.set_cursor(1, "s", "v")
    finally:
        store.close()
    assert (tmp_path / "from-env.db").exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/leadsync",
        "postgres://u:p@db:5432/leadsync",
        "postgresql+psycopg://u:p@db:5432/leadsync",
    ],
)
def test_postgresql_urls_use_psycopg_3(url: str) -> None:
    assert schema.database_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize(
    "url", ["mysql://u@db/leadsync", "postgresql+psycopg2://u@db/x", "sqlite://", "sqlite:///:memory:", "not a url"]
)
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="state store URL"):
        schema.database_url(url)


def test_dead_letters_of_a_database_from_before_retries_get_a_state_attempts_and_a_due_time(store_url: str) -> None:
    store = SqlStateStore(store_url)
    new = ("state", "attempts", "next_attempt_at", "closed_at", "note")
    with schema.writer(store.engine).begin() as conn:  # back to the table as v1 created it before this change
        conn.exec_driver_sql("DROP INDEX ix_dead_letters_due")
        for column in new:
            conn.exec_driver_sql(f"ALTER TABLE dead_letters DROP COLUMN {column}")
        conn.execute(sa.delete(schema.schema_migrations).where(schema.schema_migrations.c.version > 1))
        conn.exec_driver_sql(
            "INSERT INTO dead_letters (portal_id, run_id, contact_id, properties, status, reason, recorded_at) "
            "VALUES (7, 'r-0', 'c-1', '{}', 400, 'INVALID_OPTION', '2026-11-01 12:00:00')"
        )
    store.close()
    reopened = SqlStateStore(store_url)  # migrates
    try:
        columns = {c["name"] for c in sa.inspect(reopened.engine).get_columns("dead_letters")}
        assert set(new) <= columns
        [letter] = reopened.dead_letter_records(7)
        assert (letter.state, letter.attempts, letter.next_attempt_at) == ("open", 0, None)  # due at once
        assert [d.contact_id for d in reopened.begin_dead_letter_retries(7, 10)] == ["c-1"]
        assert schema.migrate(reopened.engine) == []
    finally:
        reopened.close()


def test_a_database_from_before_the_settings_table_gets_it_by_migration(tmp_path: Path) -> None:
    engine = schema.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        with schema.writer(engine).begin() as conn:
            old_tables = [t for t in schema.metadata.sorted_tables if t is not schema.settings]
            schema.metadata.create_all(conn, tables=old_tables)
            conn.execute(sa.insert(schema.schema_migrations).values(version=1, applied_at=datetime.now(UTC)))
        assert schema.migrate(engine) == list(range(2, len(schema.migrations) + 1))
        assert "settings" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    store = SqlStateStore(f"sqlite:///{tmp_path / 'old.db'}")
    assert len(store.log_key()) == 32
    store.close()
