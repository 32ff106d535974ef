"""Migrations on real SQLite and MariaDB, run by many processes at once (as gunicorn's
workers and several EC2 instances do at start)."""

from __future__ import annotations

import multiprocessing
import threading
import time

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
