"""The database: one schema, versioned migrations, and an engine that survives failovers.

Production is MySQL 8.4 (RDS) through pymysql; local runs use an embedded SQLite file.
`python -m runtime.db migrate` applies pending migrations; local mode does so at start.

* `schema`     — the tables (`submissions`, `outbox`, `schema_migrations`) and `utcnow`.
* `migrations` — versioned, append-only migrations and `migrate`.
* `engine`     — `create_db_engine`: pool settings, SQLite pragmas, the RDS secret.
* `inserts`    — `insert_rows`, the API's accept path straight on the driver.
* `group_commit` — concurrent accepts of a process in one transaction (`insert_batch`).
* `pool`       — `FairQueuePool`: waiters served in turn.

What the outbox rows mean and every query over them live in `runtime.outbox`.
"""

from __future__ import annotations

from runtime.db.engine import DatabaseSecret, create_db_engine
from runtime.db.inserts import insert_rows
from runtime.db.migrations import (
    MIGRATE_HINT,
    MIGRATIONS,
    MigrationLockTimeout,
    migrate,
    pending,
    schema_missing,
)
from runtime.db.schema import metadata, outbox, schema_migrations, submissions, utcnow

__all__ = [
    "MIGRATE_HINT",
    "MIGRATIONS",
    "DatabaseSecret",
    "MigrationLockTimeout",
    "create_db_engine",
    "insert_rows",
    "metadata",
    "migrate",
    "outbox",
    "pending",
    "schema_migrations",
    "schema_missing",
    "submissions",
    "utcnow",
]
