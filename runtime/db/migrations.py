"""Versioned migrations, applied once however many processes start together."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text, update

from runtime.db.schema import outbox, schema_migrations, submissions, utcnow

log = logging.getLogger("skybridge.db")


def _v1_outbox(connection: Connection) -> None:
    # checkfirst: MySQL commits each CREATE by itself, so a run that died between the two
    # (or before recording the version) must be able to finish the job.
    submissions.create(connection, checkfirst=True)
    outbox.create(connection, checkfirst=True)


RECEIPT_COLUMNS = ("stored_at", "object_uri", "generation", "confirm_due_at", "redeliveries")
RECEIPT_INDEXES = ("ix_submissions_status_due", "ix_submissions_status_received")


def _add_columns_and_indexes(
    connection: Connection, columns: tuple[str, ...], indexes: tuple[str, ...]
) -> None:
    """Add what `submissions` lacks of these columns and indexes. Column by column with a
    look first, for the same reason as v1: each ALTER commits by itself on MySQL. A
    database created by v1 after a release has them already."""
    present = {column["name"] for column in inspect(connection).get_columns("submissions")}
    preparer = connection.dialect.identifier_preparer
    for name in columns:
        if name in present:
            continue
        column = submissions.c[name]
        ddl = f"{preparer.quote(name)} {column.type.compile(dialect=connection.dialect)}"
        if column.server_default is not None:
            ddl += f" NOT NULL DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
        connection.execute(text(f"ALTER TABLE submissions ADD COLUMN {ddl}"))
    for index in submissions.indexes:
        if index.name in indexes:
            index.create(connection, checkfirst=True)


def _v2_receipts(connection: Connection) -> None:
    _add_columns_and_indexes(connection, RECEIPT_COLUMNS, RECEIPT_INDEXES)
    # What was forwarded before receipts existed is due for confirmation now: store is
    # idempotent, so forwarding it again either finds the object or stores what GCP lost.
    connection.execute(
        update(submissions)
        .where(submissions.c.status == "forwarded", submissions.c.confirm_due_at.is_(None))
        .values(confirm_due_at=submissions.c.forwarded_at)
    )


def _v3_exact_idempotency_keys(connection: Connection) -> None:
    # MySQL's default collation (utf8mb4_0900_ai_ci, MariaDB's utf8mb4_general_ci) compares
    # case- and accent-insensitively, so a unique key matched another client's key in
    # another case. VARBINARY compares bytes, as SQLite always did (see ExactString). Keys
    # are ASCII, and distinct under the old collation, so they stay distinct as bytes.
    if connection.dialect.name in ("mysql", "mariadb"):
        connection.execute(
            text("ALTER TABLE submissions MODIFY idempotency_key VARBINARY(255) NULL")
        )


UNCONFIRMED_SINCE_INDEX = "ix_submissions_status_first_forwarded"


def _v4_first_forwarded_at(connection: Connection) -> None:
    # The oldest unconfirmed submission's age counts from its first forwarding (see
    # runtime.receipts.unconfirmed), an index range scan like the other two gauges.
    _add_columns_and_indexes(connection, ("first_forwarded_at",), (UNCONFIRMED_SINCE_INDEX,))
    # What is forwarded now was forwarded at least at its latest forwarding: the best this
    # database knows (it may be later than the first, so an age is at worst understated).
    connection.execute(
        update(submissions)
        .where(submissions.c.status == "forwarded", submissions.c.first_forwarded_at.is_(None))
        .values(first_forwarded_at=submissions.c.forwarded_at)
    )


# Append only: a migration, once released, never changes.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "submissions and outbox", _v1_outbox),
    (2, "delivery receipts: stored_at, object_uri, generation, reconciliation", _v2_receipts),
    (3, "idempotency keys compared exactly", _v3_exact_idempotency_keys),
    (
        4,
        "first_forwarded_at: the unconfirmed age since the first forwarding",
        _v4_first_forwarded_at,
    ),
]

MIGRATION_LOCK = "skybridge_migrate"
MIGRATE_HINT = "run `python -m runtime.db migrate` with this SKYBRIDGE_DATABASE_URL"
# What a database whose schema is older than the code answers: MySQL's 1146 (no such table)
# and 1054 (unknown column), SQLite's messages for the same. `migrate` fixes both; waiting
# does not, so they are not an outage to retry.
_MISSING_SCHEMA_CODES = (1146, 1054)
_MISSING_SCHEMA_MESSAGES = ("no such table", "no such column")


def schema_missing(error: BaseException) -> bool:
    """Whether a database error says a table or column the code needs is not there."""
    orig = getattr(error, "orig", error)
    args = getattr(orig, "args", ())
    if args and args[0] in _MISSING_SCHEMA_CODES:
        return True
    return str(orig).startswith(_MISSING_SCHEMA_MESSAGES)


def pending(connection: Connection) -> list[int]:
    """The migrations this database lacks (every one when it has no schema_migrations)."""
    if not inspect(connection).has_table(schema_migrations.name):
        return [version for version, _, _ in MIGRATIONS]
    done: set[int] = set(connection.scalars(select(schema_migrations.c.version)))
    return [version for version, _, _ in MIGRATIONS if version not in done]


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
                    done: set[int] = set(connection.scalars(select(schema_migrations.c.version)))
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
