"""The database: one schema, versioned migrations, and an engine that survives failovers.

Production is MySQL 8.4 (RDS) through pymysql; local runs use an embedded SQLite file.
`python -m runtime.db migrate` applies pending migrations; local mode does so at start.

Two tables make the transactional outbox: `submissions` is the record of everything the
API accepted (never deleted), `outbox` is the work still to deliver (one row per pending
submission, deleted when GCP has it, re-created by `relay replay`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from runtime.settings import Settings

log = logging.getLogger("skybridge.db")


class UTCDateTime(TypeDecorator):
    """Stored as naive UTC with microseconds; always read back as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
AutoId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

submissions = Table(
    "submissions",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("schema_version", String(8), nullable=False),
    Column("type", String(128), nullable=False),
    Column("body", LongText, nullable=False),  # canonical JSON of the envelope
    Column("sha256", String(64), nullable=False),
    Column("idempotency_key", String(255), nullable=True, unique=True),
    Column("status", String(16), nullable=False),  # accepted | forwarded | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(1000), nullable=True),
    Column("message_id", String(128), nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("forwarded_at", UTCDateTime, nullable=True),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("submission_id", String(26), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claim", String(36), nullable=True),
    Index("ix_outbox_available", "available_at", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)


def _v1_outbox(connection: Connection) -> None:
    # checkfirst: MySQL commits each CREATE by itself, so a run that died between the two
    # (or before recording the version) must be able to finish the job.
    submissions.create(connection, checkfirst=True)
    outbox.create(connection, checkfirst=True)


# Append only: a migration, once released, never changes.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "submissions and outbox", _v1_outbox),
]

MIGRATION_LOCK = "skybridge_migrate"


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock for longer than we would wait."""


def migrate(engine: Engine, lock_timeout: int = 60) -> list[int]:
    """Apply pending migrations; safe to run from several processes and instances at once.

    Each migration commits together with its row in `schema_migrations`, and the versions
    are read again inside that transaction: on MySQL under a named lock (GET_LOCK) that is
    released only after the commit, on SQLite under the write lock that BEGIN IMMEDIATE
    takes. (Releasing the lock before the commit let a second process see no version row
    and create the tables again.)
    """
    applied: list[int] = []
    with engine.connect() as connection:
        mysql_family = connection.dialect.name in ("mysql", "mariadb")
        if mysql_family:
            got = connection.scalar(
                text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": MIGRATION_LOCK, "timeout": lock_timeout},
            )
            connection.commit()
            if got != 1:
                raise MigrationLockTimeout(
                    f"another process held the migration lock {MIGRATION_LOCK!r} for more "
                    f"than {lock_timeout}s; run `python -m runtime.db migrate` again"
                )
        try:
            with connection.begin():
                schema_migrations.create(connection, checkfirst=True)
            for version, description, apply in MIGRATIONS:
                with connection.begin():
                    done = set(connection.scalars(select(schema_migrations.c.version)))
                    if version in done:
                        continue
                    apply(connection)
                    connection.execute(
                        schema_migrations.insert().values(
                            version=version, description=description, applied_at=utcnow()
                        )
                    )
                applied.append(version)
                log.info("migration applied", extra={"event": "db.migrated", "version": version})
        finally:
            if mysql_family:
                connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": MIGRATION_LOCK})
                connection.commit()
    return applied


def utcnow() -> datetime:
    return datetime.now(UTC)


ACCESS_DENIED = 1045  # MySQL ER_ACCESS_DENIED_ERROR: wrong user or password


class DatabaseSecret:
    """Credentials from the RDS-managed Secrets Manager secret, re-read now and then.

    Rotation changes the password under us: new connections pick up the new one within
    `ttl` seconds, and pre-ping retires the old ones; a connection the server refuses with
    the old password (1045) re-reads the secret at once (`refresh`) and tries once more.
    """

    def __init__(self, arn: str, ttl: float = 300.0) -> None:
        self.arn = arn
        self.ttl = ttl
        self._value: dict[str, Any] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def refresh(self) -> dict[str, Any]:
        with self._lock:
            self._read_at = float("-inf")
        return self.current()

    def current(self) -> dict[str, Any]:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl:
                import boto3  # only on AWS; keeps local and function start-up lean

                client = boto3.client("secretsmanager")
                payload = client.get_secret_value(SecretId=self.arn)["SecretString"]
                self._value = json.loads(payload)
                self._read_at = time.monotonic()
            return self._value


def create_db_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    options: dict[str, Any] = {
        "pool_size": settings.database_pool_size,
        "max_overflow": settings.database_pool_size,
        "pool_timeout": 5,
        "pool_pre_ping": True,  # a restarted server or an RDS failover costs one retry, not a 500
        "pool_recycle": 1800,
        # Every use is a `with engine.begin()` block, which ends its own transaction; the
        # pool's extra rollback on return costs a round trip per request for nothing.
        "pool_reset_on_return": None,
        # READ COMMITTED: a relay's SKIP LOCKED claim must not gap-lock the end of the outbox
        # (under REPEATABLE READ it blocks the API's inserts until the lock wait times out).
        "isolation_level": "READ COMMITTED",
        "connect_args": {"connect_timeout": 5, "charset": "utf8mb4"},
    }
    if settings.database_tls_ca:
        options["connect_args"]["ssl"] = {"ca": settings.database_tls_ca}
    engine = create_engine(url, **options)
    if settings.database_secret_arn:
        secret = DatabaseSecret(settings.database_secret_arn)

        @event.listens_for(engine, "do_connect")
        def _credentials(dialect, connection_record, cargs, cparams):
            def connect(value: dict[str, Any]):
                cparams.update(
                    host=value["host"],
                    port=int(value.get("port", 3306)),
                    user=value["username"],
                    password=value["password"],
                    database=value.get("dbname", cparams.get("database")),
                )
                return dialect.connect(*cargs, **cparams)

            try:
                return connect(secret.current())
            except dialect.loaded_dbapi.OperationalError as error:
                if error.args[:1] != (ACCESS_DENIED,):
                    raise
                return connect(secret.refresh())  # rotated since we read it

    return engine


def _sqlite_engine(url) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 15},
        pool_reset_on_return=None,  # as for MySQL: every use ends its own transaction
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, connection_record) -> None:
        # pysqlite's own transaction handling defers BEGIN; take the write lock up front
        # so concurrent writers queue on busy_timeout instead of failing to upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=15000")
        _journal_mode_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # Straight to the driver: this runs once per transaction, on the API's hot path.
        connection.connection.driver_connection.execute("BEGIN IMMEDIATE")

    return engine


def _journal_mode_wal(cursor, timeout: float = 15.0) -> None:
    """Switch a new database file to WAL (the mode persists in the file). Processes that
    open a new file together (gunicorn's workers) race for this; SQLite answers the losers
    "database is locked" at once, without waiting on busy_timeout, so wait here."""
    for attempt in Retrying(
        retry=retry_if_exception(
            lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e)
        ),
        wait=wait_exponential(multiplier=0.005, max=0.2),
        stop=stop_after_delay(timeout),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")


class _PreparedInsert:
    """One table's INSERT for one set of columns, compiled once per dialect, with the
    columns' own bind processing (so values are stored exactly as Core stores them)."""

    def __init__(self, table: Table, columns: tuple[str, ...], dialect) -> None:
        compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        self.positional = compiled.positiontup is not None
        self.processors = [
            (key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
            for key in (compiled.positiontup or compiled.binds)
        ]

    def params(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        processed = [
            (key, process(values[key]) if process else values[key])
            for key, process in self.processors
        ]
        return tuple(v for _, v in processed) if self.positional else dict(processed)


_prepared: dict[tuple[Any, ...], _PreparedInsert] = {}


def insert_rows(engine: Engine, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    """INSERT the rows in one transaction, straight on the driver's connection.

    The API's accept path is this and little else. Through `engine.begin()` and Core, the
    bookkeeping (connection and transaction objects, events, execution contexts) cost more
    CPU than the database spent on the inserts. Same SQL, same bind processing, the same
    pool (pre-ping included), and the same SQLAlchemy exceptions: a driver error is raised
    as SQLAlchemy's (IntegrityError, OperationalError, ...) and a disconnect invalidates the
    connection. Parameters are processed before the transaction starts, so SQLite's write
    lock is held only for the statements themselves.
    """
    dialect = engine.dialect
    statements = []
    for table, values in rows:
        key = (id(dialect), table.name, *values)
        prepared = _prepared.get(key)
        if prepared is None:
            prepared = _prepared[key] = _PreparedInsert(table, tuple(values), dialect)
        statements.append((prepared.sql, prepared.params(values)))
    try:
        connection = engine.raw_connection()
    except dialect.loaded_dbapi.Error as error:  # the pool hands out the driver's error
        raise DBAPIError.instance(
            None, None, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error
    sql, params = "BEGIN", None
    try:
        cursor = connection.cursor()
        if dialect.name == "sqlite":
            # What the engine's "begin" hook does for Core transactions (see _sqlite_engine).
            cursor.execute("BEGIN IMMEDIATE")
        for sql, params in statements:
            cursor.execute(sql, params)
        sql, params = "COMMIT", None
        connection.commit()
    except dialect.loaded_dbapi.Error as error:
        disconnected = dialect.is_disconnect(error, connection.dbapi_connection, None)
        if disconnected:
            connection.invalidate(error)
        else:
            _rollback_quietly(connection, dialect)
        raise DBAPIError.instance(
            sql,
            params,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=disconnected,
            dialect=dialect,
        ) from error
    except BaseException:
        _rollback_quietly(connection, dialect)
        raise
    finally:
        connection.close()  # back to the pool (or discarded, if invalidated)


def _rollback_quietly(connection, dialect) -> None:
    try:
        connection.rollback()
    except dialect.loaded_dbapi.Error:
        connection.invalidate()  # a connection that cannot roll back is not reused


def outbox_stats(
    connection: Connection, now: datetime, cap: int | None = None
) -> tuple[int, float]:
    """(pending rows, counted up to `cap` when given; age in seconds of the oldest pending
    row). The oldest is the lowest id (ids grow with insertion): one primary-key lookup,
    never a scan; with a cap, the count reads at most `cap` index entries."""
    rows = select(outbox.c.id)
    if cap is not None:
        rows = rows.limit(cap)
    count = connection.execute(select(func.count()).select_from(rows.subquery())).scalar_one()
    oldest = connection.execute(select(outbox.c.created_at).order_by(outbox.c.id).limit(1)).scalar()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # aggregates skip the column's type on SQLite
    age = (now - oldest).total_seconds() if oldest else 0.0
    return int(count), max(age, 0.0)


def main(argv: list[str] | None = None) -> int:
    from runtime.observability import configure_logging
    from runtime.settings import SettingsError, get_settings

    parser = argparse.ArgumentParser(prog="python -m runtime.db")
    parser.add_argument("command", choices=["migrate"], help="apply pending migrations")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "migrate":
        try:
            applied = migrate(create_db_engine(settings))
        except DBAPIError as error:
            source = settings.database_secret_arn or "SKYBRIDGE_DATABASE_URL"
            print(
                f"error: cannot migrate the database with the credentials from {source}: "
                f"{error.orig}; check the database is reachable and the secret current",
                file=sys.stderr,
            )
            return 1
        print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
