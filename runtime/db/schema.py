"""The schema: two tables make the transactional outbox.

`submissions` is the record of everything the API accepted, `outbox` is the work still to
deliver (one row per pending submission, deleted when GCP has it, re-created by
`relay replay` and by reconciliation). A submission goes `accepted → forwarded → stored`
(or `failed`): `stored` only once a receipt from GCP with the accepted hash says so.
Times are stored as naive UTC and read back aware.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class ExactString(TypeDecorator):
    """A string compared byte for byte on every backend. On MySQL, VARBINARY: any text
    collation folds case (`_ci`) or pads spaces (`utf8mb4_bin` is PAD SPACE: `k` = `k `),
    and the NO PAD binary collations differ between MySQL and MariaDB."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(self.impl_instance.length))
        return dialect.type_descriptor(String(self.impl_instance.length))

    def process_bind_param(self, value: str | None, dialect) -> str | bytes | None:
        if value is not None and dialect.name in ("mysql", "mariadb"):
            return value.encode()
        return value

    def process_result_value(self, value: str | bytes | None, dialect) -> str | None:
        return value.decode() if isinstance(value, bytes) else value


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
    # Exact: MySQL's default collation would make `Order-x` and `ORDER-x` one key.
    Column("idempotency_key", ExactString(255), nullable=True, unique=True),
    Column("status", String(16), nullable=False),  # accepted | forwarded | stored | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(1000), nullable=True),
    Column("message_id", String(128), nullable=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("forwarded_at", UTCDateTime, nullable=True),  # the latest forwarding
    # From the receipt (migration 2): where GCP stored it, and when.
    Column("stored_at", UTCDateTime, nullable=True),
    Column("object_uri", String(1300), nullable=True),
    Column("generation", BigInteger, nullable=True),
    # Reconciliation: when a forwarded submission without a receipt is forwarded again,
    # and how often that happened already.
    Column("confirm_due_at", UTCDateTime, nullable=True),
    Column("redeliveries", Integer, nullable=False, default=0, server_default="0"),
    # Since when GCP has been sent it without confirming it (migration 4): the first
    # forwarding; redeliveries keep it, `relay replay` clears it (runtime.receipts).
    Column("first_forwarded_at", UTCDateTime, nullable=True),
    # The health check's, the reconciler's and retention's queries: index range scans.
    Index("ix_submissions_status_due", "status", "confirm_due_at"),
    Index("ix_submissions_status_received", "status", "received_at"),
    Index("ix_submissions_status_first_forwarded", "status", "first_forwarded_at"),
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
