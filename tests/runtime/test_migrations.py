"""Migrations on real SQLite and MariaDB, run by many processes at once (as gunicorn's
workers and several EC2 instances do at start)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, event, inspect, select, text

from runtime.db import MIGRATIONS, create_db_engine, migrate, schema_migrations
from runtime.settings import Settings

PROCESSES = 8


def _migrate_after(barrier, database_url: str) -> None:
    engine = create_db_engine(Settings(database_url=database_url))
    barrier.wait(timeout=30)
    migrate(engine)
    engine.dispose()


def test_processes_migrating_at_once_apply_each_version_once(database_url):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    processes = [
        context.Process(target=_migrate_after, args=(barrier, database_url))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    engine = create_engine(database_url)
    with engine.connect() as connection:
        versions = list(connection.scalars(select(schema_migrations.c.version)))
    assert sorted(versions) == [version for version, _, _ in MIGRATIONS]
    assert {"submissions", "outbox", "schema_migrations"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_a_second_migration_applies_nothing(database_url):
    engine = create_db_engine(Settings(database_url=database_url))
    assert migrate(engine) == [version for version, _, _ in MIGRATIONS]
    assert migrate(engine) == []
    engine.dispose()


@pytest.mark.mysql
def test_the_migration_lock_is_released_only_after_the_versions_are_committed(
    mysql_database_url,
):
    """The next process to take the lock must see what the previous one applied. Commits
    are slowed down, so a lock released before the commit would let the observer in first."""
    engine = create_db_engine(Settings(database_url=mysql_database_url))
    event.listen(engine, "commit", lambda connection: time.sleep(0.3))
    observer = create_engine(mysql_database_url, isolation_level="READ COMMITTED")
    seen: list[list[int]] = []
    with observer.connect() as watching:
        watching.execute(text("SELECT GET_LOCK('skybridge_migrate', 10)"))
        migrating = threading.Thread(target=migrate, args=(engine,))
        migrating.start()
        time.sleep(0.2)  # migrate() is now waiting for the lock
        watching.execute(text("SELECT RELEASE_LOCK('skybridge_migrate')"))
        time.sleep(0.2)  # migrate() holds it now; wait to take it back
        assert watching.scalar(text("SELECT GET_LOCK('skybridge_migrate', 30)")) == 1
        seen.append(list(watching.scalars(text("SELECT version FROM schema_migrations"))))
        watching.execute(text("SELECT RELEASE_LOCK('skybridge_migrate')"))
        migrating.join(30)
    try:
        assert seen == [[version for version, _, _ in MIGRATIONS]]
    finally:
        engine.dispose()
        observer.dispose()
        with create_engine(mysql_database_url).begin() as connection:
            for table in ("outbox", "submissions", "schema_migrations"):
                connection.execute(text(f"DROP TABLE IF EXISTS {table}"))


# -- migration 3 on a database created before it -------------------------------------------

# Keys that stay distinct under MySQL's old case-insensitive, PAD SPACE collation (so they
# could all exist under version 2), next to the case and space variants that could not.
V2_KEYS = ("Order-x", "order-y", "k", "A.b_c~9")
VARIANTS = ("ORDER-x", "Order-Y", "k ", "a.B_C~9")
PHOTO = {"type": "photo", "data": {"n": 1}}


def at_version_2(database_url: str, monkeypatch):
    """The schema as the release before migration 3 left it: versions 1 and 2 applied, and
    on MySQL/MariaDB the idempotency key a text column in the database's default collation
    (what v1 created then)."""
    from runtime.db import migrations

    engine = create_db_engine(Settings(database_url=database_url))
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])
    assert migrations.migrate(engine) == [1, 2]
    monkeypatch.undo()
    if engine.dialect.name in ("mysql", "mariadb"):
        with engine.begin() as connection:
            connection.execute(
                text("ALTER TABLE submissions MODIFY idempotency_key VARCHAR(255) NULL")
            )
    return engine


def key_column_type(engine) -> str:
    with engine.connect() as connection:
        return connection.scalar(
            text(
                "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA ="
                " DATABASE() AND TABLE_NAME = 'submissions' AND COLUMN_NAME = 'idempotency_key'"
            )
        )


def test_migration_3_keeps_every_key_a_version_2_database_holds(database_url, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from runtime.api import create_app
    from runtime.api.services import services
    from runtime.db import submissions
    from runtime.envelope import SubmissionIn
    from runtime.submissions import IdempotencyConflict, accept

    engine = at_version_2(database_url, monkeypatch)
    mysql = engine.dialect.name in ("mysql", "mariadb")
    before = {key: accept(engine, SubmissionIn(**PHOTO), key).row["id"] for key in V2_KEYS}
    if mysql:  # what migration 3 is for: under v2 a case variant was the same key
        assert key_column_type(engine).startswith("varchar")
        with pytest.raises(IdempotencyConflict):
            accept(engine, SubmissionIn(type="other", data={}), "ORDER-x")

    assert migrate(engine) == [3]

    if mysql:
        assert key_column_type(engine) == "varbinary(255)"
    with engine.connect() as connection:
        rows = dict(
            connection.execute(select(submissions.c.idempotency_key, submissions.c.id)).all()
        )
    assert rows == {key: before[key] for key in V2_KEYS}, "every row and its exact key survive"

    app = create_app({"database_url": database_url, "metrics": "none"})
    client = app.test_client()
    try:
        for key in V2_KEYS:  # the same key and body: the row from before the migration
            again = client.post("/v1/submissions", json=PHOTO, headers={"Idempotency-Key": key})
            assert again.headers.get("Idempotent-Replayed") == "true", again.status_code
            assert again.get_json()["id"] == before[key]
        for variant in VARIANTS:  # another case or a trailing space: another client's key
            other = client.post(
                "/v1/submissions", json={**PHOTO, "type": "other"},
                headers={"Idempotency-Key": variant},
            )  # fmt: skip
            assert other.status_code == 202, other.get_data(as_text=True)
            assert other.get_json()["id"] not in before.values()
    finally:
        services(app).engine.dispose()
    with pytest.raises(IntegrityError), engine.begin() as connection:  # still unique
        connection.execute(
            submissions.insert().values(
                id="0" * 26, schema_version="1", type="t", body="{}", sha256="0" * 64,
                idempotency_key="Order-x", status="accepted", attempts=0,
                received_at=datetime.now(UTC), updated_at=datetime.now(UTC),
            )
        )  # fmt: skip
    engine.dispose()
