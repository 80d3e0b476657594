"""The state store's tables, its versioned migrations, and the engines it runs on.

Everything that differs between SQLite and PostgreSQL lives in this module:
which URLs are accepted, connection settings, how a write transaction begins,
the dialect's INSERT ... ON CONFLICT, and how concurrent migrations are
serialised. state.py is written once against what this module exports.

Every table is per portal: `portal_id` leads each key and index, so one
database serves many portals. The append-only logs (score history, dead
letters) are keyed by a surrogate sequence, because SQLite only
autoincrements a lone INTEGER PRIMARY KEY; their lookup indexes start with
`portal_id`. Runs are keyed by their run id, which `finish_run` addresses
without a portal.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from sync.errors import ConfigError, ConfigProblem

DB_URL_ENV = "LEADSYNC_DB_URL"
DEFAULT_SQLITE_FILE = "leadsync.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The first key of the two-key advisory lock taken around migrations ("leadsync" on a phone keypad).
MIGRATION_LOCK_KEY = 53237972

_BEGIN_OPTION = "leadsync_begin"


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends.

    SQLite has no time zone type: values are stored as naive UTC text in a
    fixed-width format, so they still compare in time order (lease expiry
    relies on it). Naive datetimes are refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the state store keeps timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


# SQLite autoincrements only a column declared exactly INTEGER PRIMARY KEY.
_Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _portal_key() -> sa.Column[int]:
    # HubSpot portal ids pass 2**31; autoincrement off, or a lone key column would become a sequence.
    return sa.Column("portal_id", sa.BigInteger, primary_key=True, autoincrement=False)


metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UtcDateTime, nullable=False),
)

cursors = sa.Table(
    "cursors",
    metadata,
    _portal_key(),
    sa.Column("stream", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

contacts = sa.Table(
    "contacts",
    metadata,
    _portal_key(),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),  # lowercased; "" when the contact has none
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=True),
    sa.Column("lifecycle_stage", sa.Text, nullable=False),
    sa.Column("list_ids", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_contacts_email", "portal_id", "email"),
)

events = sa.Table(
    "events",
    metadata,
    _portal_key(),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),  # lowercased: events attach to contacts by email
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    # form_id, form_name, page_url for a form submission; campaign_id, url, filtered for an email event
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Index("ix_events_email", "portal_id", "email", "at_ms"),
    sa.Index("ix_events_at", "portal_id", "at_ms"),
)

written_values = sa.Table(
    "written_values",
    metadata,
    _portal_key(),
    sa.Column("contact_id", sa.Text, primary_key=True),
    # One row per property, so a write merges into what is there with a plain upsert (no read-modify-write).
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# The lifecycle stage leadsync itself last wrote per contact: a demotion may move back only that stage, and
# only while HubSpot still holds it (a stage anyone else set is theirs). Kept across pulls, unlike written_values.
stage_owners = sa.Table(
    "stage_owners",
    metadata,
    _portal_key(),
    sa.Column("contact_id", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("written_at", UtcDateTime, nullable=False),
)

score_history = sa.Table(
    "score_history",
    metadata,
    sa.Column("id", _Serial, primary_key=True, autoincrement=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("contact_id", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("old_score", sa.Integer, nullable=True),
    sa.Column("new_score", sa.Integer, nullable=False),
    sa.Column("grade", sa.Text, nullable=True),
    sa.Column("stage", sa.Text, nullable=True),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("breakdown", sa.JSON, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Index("ix_score_history_contact", "portal_id", "contact_id", "id"),
    sa.Index("ix_score_history_run", "portal_id", "run_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    _portal_key(),
    sa.Column("contact_id", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("stage", sa.Text, nullable=True),
    sa.Column("history", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", _Serial, primary_key=True, autoincrement=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("contact_id", sa.Text, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),  # HubSpot's HTTP status (0: none)
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    # The letter's life: open (retried when due) | retrying (a cycle is at it) | resolved | dropped | given_up.
    sa.Column("state", sa.Text, nullable=False, server_default="open"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),  # retries HubSpot refused again
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),  # open letters: due from then (NULL: due now)
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("note", sa.Text, nullable=True),  # how it was closed
    sa.Index("ix_dead_letters_portal", "portal_id", "id"),
    sa.Index("ix_dead_letters_due", "portal_id", "state", "next_attempt_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_runs_portal_started", "portal_id", "started_at"),
)

leases = sa.Table(
    "leases",
    metadata,
    _portal_key(),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    # The fencing token (v7): grows whenever the holder changes or an expired lease is taken; a release keeps the
    # row (expired), so the count never restarts.
    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
)

# The live replicas (v7): each heartbeats its row; the fair share of the portals is counted over the unexpired ones.
replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("holder", sa.Text, primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("heartbeat_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

api_usage = sa.Table(
    "api_usage",
    metadata,
    _portal_key(),
    sa.Column("day", sa.Text, primary_key=True),  # YYYY-MM-DD in the budget's time zone, as the caller counts days
    sa.Column("calls", sa.BigInteger, nullable=False),
)

# -- companies (v6): what account scores read, and their own outbox, written values and history --

companies = sa.Table(
    "companies",
    metadata,
    _portal_key(),
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),  # when it was last read from HubSpot
)

# Each contact's companies (any label), replaced whole when the contact's associations are read again.
company_associations = sa.Table(
    "company_associations",
    metadata,
    _portal_key(),
    sa.Column("contact_id", sa.Text, primary_key=True),
    sa.Column("company_id", sa.Text, primary_key=True),
    sa.Column("is_primary", sa.Boolean, nullable=False),
    sa.Index("ix_company_associations_company", "portal_id", "company_id", "contact_id"),
)

# Companies waiting for their account pass: marked when the company or one of its contacts changed, cleared in
# the transaction that records the company's writes (or that there were none), so a crash rescores them next run.
stale_companies = sa.Table(
    "stale_companies",
    metadata,
    _portal_key(),
    sa.Column("company_id", sa.Text, primary_key=True),
    sa.Column("marked_at", UtcDateTime, nullable=False),
)

# Company twins of the contact tables above: a company id never meets a contact id in one key, and the dead-letter
# retry (which rereads contacts) never sees a company.
company_written_values = sa.Table(
    "company_written_values",
    metadata,
    _portal_key(),
    sa.Column("company_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

company_outbox = sa.Table(
    "company_outbox",
    metadata,
    _portal_key(),
    sa.Column("company_id", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("history", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
)

company_history = sa.Table(
    "company_history",
    metadata,
    sa.Column("id", _Serial, primary_key=True, autoincrement=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("company_id", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("old_score", sa.Integer, nullable=True),
    sa.Column("new_score", sa.Integer, nullable=False),
    sa.Column("grade", sa.Text, nullable=True),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("breakdown", sa.JSON, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Index("ix_company_history_company", "portal_id", "company_id", "id"),
)

# Company writes HubSpot refused, kept with the reason (retried when the company is next rescored).
company_dead_letters = sa.Table(
    "company_dead_letters",
    metadata,
    sa.Column("id", _Serial, primary_key=True, autoincrement=True),
    sa.Column("portal_id", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("company_id", sa.Text, nullable=False),
    sa.Column("properties", sa.JSON, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Index("ix_company_dead_letters_portal", "portal_id", "id"),
)

COMPANY_TABLES = (
    companies,
    company_associations,
    stale_companies,
    company_written_values,
    company_outbox,
    company_history,
    company_dead_letters,
)

# Installation-wide values (not per portal): replicas sharing the store share them.
settings = sa.Table(
    "settings",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
LOG_KEY_SETTING = "log_hmac_key"  # hex of the 32 random bytes emails in logs are hashed with (HMAC-SHA256)


# -- migrations --

Migration = Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    """The tables as declared above. A later change to a table is a new migration plus the matching edit above."""
    tables = [t for t in metadata.sorted_tables if t is not schema_migrations]
    # checkfirst off: a table that exists without its migration recorded is an error to see, not to paper over.
    metadata.create_all(conn, tables=tables, checkfirst=False)


def _v2_stage_owners(conn: Connection) -> None:
    """The stages leadsync wrote; a database created by v1 after the table was declared has it already."""
    stage_owners.create(conn, checkfirst=True)


def _v3_dead_letter_retries(conn: Connection) -> None:
    """Dead letters get a state, an attempt count and a due time, so later cycles retry them with backoff.

    A database created by v1 after this change has them already: add only what is absent."""
    table = dead_letters
    have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in ("state", "attempts", "next_attempt_at", "closed_at", "note"):
        if name in have:
            continue
        column = table.c[name]
        ddl = f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {preparer.format_column(column)} "
        ddl += column.type.compile(dialect=conn.dialect)
        if column.server_default is not None:
            default = column.server_default.arg  # type: ignore[attr-defined]
            ddl += f" NOT NULL DEFAULT '{default}'" if name == "state" else f" NOT NULL DEFAULT {default}"
        conn.exec_driver_sql(ddl)
    for index in table.indexes:
        index.create(conn, checkfirst=True)


def _v4_installation_secret(conn: Connection) -> None:
    """The settings table, for the key emails in logs are hashed with (a fresh database has it from v1)."""
    settings.create(conn, checkfirst=True)


def _v5_event_identity(conn: Connection) -> None:
    """An email event is keyed by HubSpot's id and created time together (`id:created`): ids alone repeat.

    Stored bounces and unsubscribes lack what now decides whether they count (a bounce's category, a status
    change's source), and un-bounces were never stored: those rows are dropped and the email events cursor
    is reset, so the next sync reads the portal's email events again (README "Upgrading"). A fresh database
    has no rows: nothing to do.
    """
    conn.execute(sa.delete(events).where(events.c.kind.in_(("email_bounce", "email_unsubscribe"))))
    conn.execute(
        sa.update(events)
        .where(events.c.kind != "form_submission", sa.not_(events.c.event_id.contains(":")))
        .values(event_id=events.c.event_id + ":" + sa.cast(events.c.at_ms, sa.Text))
    )
    conn.execute(sa.delete(cursors).where(cursors.c.stream == "email_events_ms"))  # pipeline.EVENTS_CURSOR


def _v6_companies(conn: Connection) -> None:
    """The company tables (account scores); a database created by v1 after they were declared has them already."""
    for table in COMPANY_TABLES:
        table.create(conn, checkfirst=True)


def _v7_replicas_and_fences(conn: Connection) -> None:
    """The replicas' heartbeats and the leases' fencing epochs; a database created by v1 after they were declared
    has them already. Existing leases start at epoch 0: the next take bumps it."""
    replicas.create(conn, checkfirst=True)
    if "epoch" not in {c["name"] for c in sa.inspect(conn).get_columns(leases.name)}:
        preparer = conn.dialect.identifier_preparer
        column = leases.c.epoch
        conn.exec_driver_sql(
            f"ALTER TABLE {preparer.format_table(leases)} ADD COLUMN {preparer.format_column(column)} "
            f"{column.type.compile(dialect=conn.dialect)} NOT NULL DEFAULT 0"
        )


# Applied in order; a migration's version is its position, from 1.
migrations: list[Migration] = [
    _v1_initial,
    _v2_stage_owners,
    _v3_dead_letter_retries,
    _v4_installation_secret,
    _v5_event_identity,
    _v6_companies,
    _v7_replicas_and_fences,
]


def migrate(engine: Engine) -> list[int]:
    """Apply the migrations this database lacks, in order, in one transaction; returns the versions applied.

    Idempotent, and safe when several processes start at once: on PostgreSQL a
    transaction-scoped advisory lock serialises them (DDL is transactional, so
    the second one then sees the first one's tables and versions); on SQLite
    the transaction begins IMMEDIATE, which takes the database's write lock.
    """
    with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            # Keyed by schema as well, so separate schemas (parallel test runs, tenants) do not queue.
            key = sa.literal(MIGRATION_LOCK_KEY, sa.Integer)
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key, sa.func.hashtext(sa.func.current_schema()))))
        schema_migrations.create(conn, checkfirst=True)
        done = set(conn.scalars(sa.select(schema_migrations.c.version)))
        applied: list[int] = []
        for version, step in enumerate(migrations, start=1):
            if version in done:
                continue
            step(conn)
            conn.execute(sa.insert(schema_migrations).values(version=version, applied_at=datetime.now(UTC)))
            applied.append(version)
    return applied


# -- engines --


def database_url(url: str | None = None) -> URL:
    """The store's URL: the one given, else $LEADSYNC_DB_URL, else `leadsync.db` in the working directory."""
    raw = url or os.environ.get(DB_URL_ENV) or f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILE}"
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise _url_error(f"not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        if parsed.database in (None, "", ":memory:"):
            raise _url_error("an in-memory SQLite database is private to one connection; give a file path")
        return parsed
    raise _url_error(f"unsupported database {parsed.drivername!r}: use sqlite:///PATH or postgresql://...")


def _url_error(message: str) -> ConfigError:
    return ConfigError([ConfigProblem(file="state store URL", line=None, path="", message=message)])


_json_dumps = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


def create_engine(url: str | None = None) -> Engine:
    """An engine for the store's URL (see database_url), with the backend's settings applied."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "postgresql":
        # Replicas keep connections for days; pre-ping replaces those a server restart or failover closed.
        return sa.create_engine(parsed, pool_pre_ping=True, json_serializer=_json_dumps)
    engine = sa.create_engine(parsed, json_serializer=_json_dumps)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions are for writing: on SQLite they BEGIN IMMEDIATE.

    A deferred SQLite transaction that reads and then writes fails at once
    with SQLITE_BUSY (busy_timeout does not apply) when another connection
    wrote in between; taking the write lock at BEGIN makes it wait instead.
    """
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # sqlite3's legacy mode BEGINs only before DML, so DDL and reads would escape the transaction: we BEGIN ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        # In WAL mode NORMAL is still crash-safe for the database; only the last commits may roll back on power loss.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (it stays so): readers then never block the writer, nor it them.

    The switch needs the file to itself and SQLite does not apply busy_timeout
    to it: when processes open a new file at once, one gets "database is
    locked" at once while another migrates. So wait here, as busy_timeout would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            mode = "locked"
        if mode == "wal":
            return
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError(f"could not switch the database to WAL: journal mode is {mode}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


Upsert = postgresql.Insert | sqlite.Insert


def dialect_insert(engine: Engine, table: sa.Table) -> Upsert:
    """INSERT with the dialect's ON CONFLICT clauses (both take the same arguments)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
