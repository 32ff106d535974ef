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

    assert migrate(engine) == [v for v, _, _ in MIGRATIONS if v > 2]

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


# -- migration 4 on a database created before it -------------------------------------------


def at_version_3(database_url: str, monkeypatch):
    """The schema as the release before migration 4 left it: versions 1 to 3 applied, no
    first_forwarded_at column and no index on it (v1 now creates both, so they go again)."""
    from runtime.db import migrations

    engine = create_db_engine(Settings(database_url=database_url))
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:3])
    assert migrations.migrate(engine) == [1, 2, 3]
    monkeypatch.undo()
    with engine.begin() as connection:
        on = " ON submissions" if engine.dialect.name in ("mysql", "mariadb") else ""
        connection.execute(text(f"DROP INDEX {migrations.UNCONFIRMED_SINCE_INDEX}{on}"))
        connection.execute(text("ALTER TABLE submissions DROP COLUMN first_forwarded_at"))
    assert "first_forwarded_at" not in {
        c["name"] for c in inspect(engine).get_columns("submissions")
    }
    return engine


def test_migration_4_adds_first_forwarded_at_to_a_version_3_database(database_url, monkeypatch):
    """A v3 table gains the column and its index; what it had forwarded counts as first
    forwarded at its latest forwarding, the rest as never forwarded."""
    from datetime import timedelta

    from runtime import receipts
    from runtime.db import submissions
    from runtime.db.migrations import UNCONFIRMED_SINCE_INDEX

    engine = at_version_3(database_url, monkeypatch)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = {"01ARZ3NDEKTSV4RRFFQ69G5FA1": ("forwarded", now - timedelta(seconds=40)),
            "01ARZ3NDEKTSV4RRFFQ69G5FA2": ("accepted", None),
            "01ARZ3NDEKTSV4RRFFQ69G5FA3": ("stored", now - timedelta(seconds=90))}  # fmt: skip
    with engine.begin() as connection:
        for sid, (status, forwarded_at) in rows.items():
            connection.execute(
                text(
                    "INSERT INTO submissions (id, schema_version, type, body, sha256, status,"
                    " attempts, received_at, updated_at, forwarded_at, redeliveries)"
                    " VALUES (:id, '1', 't', '{}', :sha, :status, 1, :at, :at, :fwd, 0)"
                ),
                {"id": sid, "sha": "0" * 64, "status": status, "at": now.replace(tzinfo=None),
                 "fwd": forwarded_at and forwarded_at.replace(tzinfo=None)},
            )  # fmt: skip

    assert migrate(engine) == [4]

    assert UNCONFIRMED_SINCE_INDEX in {
        i["name"] for i in inspect(engine).get_indexes("submissions")
    }
    with engine.connect() as connection:
        query = select(submissions.c.id, submissions.c.first_forwarded_at)
        first = {row.id: row.first_forwarded_at for row in connection.execute(query)}
        assert first == {
            "01ARZ3NDEKTSV4RRFFQ69G5FA1": now - timedelta(seconds=40),
            "01ARZ3NDEKTSV4RRFFQ69G5FA2": None,
            "01ARZ3NDEKTSV4RRFFQ69G5FA3": None,  # confirmed: nothing to wait for
        }
        count, age = receipts.unconfirmed(connection, now)
    assert (count, age) == (1, 40.0)
    engine.dispose()


def unconfirmed_age_plan(engine) -> str:
    """The database's plan for the oldest-unconfirmed query, as one line of text."""
    from runtime import receipts

    captured: list[str] = []

    def capture(connection, cursor, statement, parameters, context, executemany):
        if "first_forwarded_at" in statement and "ORDER BY" in statement:
            captured.append(statement)

    event.listen(engine, "before_cursor_execute", capture)
    with engine.connect() as connection:
        receipts.unconfirmed(connection, datetime.now(UTC))
    event.remove(engine, "before_cursor_execute", capture)
    (statement,) = captured
    literal = statement.replace("?", "'forwarded'", 1).replace("%(status_1)s", "'forwarded'")
    literal = literal.replace("?", "1").replace("%(param_1)s", "1")
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            plan = connection.execute(text(f"EXPLAIN QUERY PLAN {literal}")).all()
            return " | ".join(str(row[-1]) for row in plan)
        connection.execute(text("ANALYZE TABLE submissions"))
        (row,) = connection.execute(text(f"EXPLAIN {literal}")).mappings().all()
        return f"key={row['key']} type={row['type']} extra={row['Extra']}"


def test_the_oldest_unconfirmed_is_an_index_range_scan(database_url):
    """The gauge runs every few seconds on a table of millions: it must read the (status,
    first_forwarded_at) index from its first entry, not sort the forwarded rows."""
    from runtime.db import submissions

    engine = create_db_engine(Settings(database_url=database_url))
    migrate(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            submissions.insert(),
            [{"id": f"01ARZ3NDEKTSV4RRFFQ69G{n:04d}", "schema_version": "1", "type": "t",
              "body": "{}", "sha256": "0" * 64, "status": status, "attempts": 1,
              "received_at": now, "updated_at": now, "forwarded_at": now,
              "first_forwarded_at": now if status == "forwarded" else None}
             for n, status in enumerate(["stored"] * 60 + ["forwarded"] * 20 + ["accepted"] * 20)],
        )  # fmt: skip
    plan = unconfirmed_age_plan(engine)
    engine.dispose()
    if engine.dialect.name == "sqlite":
        assert "USING COVERING INDEX ix_submissions_status_first_forwarded" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert "key=ix_submissions_status_first_forwarded type=range" in plan, plan
        assert "filesort" not in plan, plan
