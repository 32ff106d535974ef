"""Retention: stored and failed submissions go after their retention, in bounded batches,
without blocking the API; nothing GCP has not confirmed is ever purged."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text

from runtime import retention
from runtime.api import create_app
from runtime.api.services import services
from runtime.db import create_db_engine, migrate, outbox, submissions, utcnow
from runtime.ids import new_id
from runtime.settings import Settings

DAY = timedelta(days=1)
POLICY = retention.Policy(stored_days=30, failed_days=7)


@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


def add(engine, status: str, *, age: timedelta, changed: timedelta | None = None,
        queued: bool = False) -> str:  # fmt: skip
    """A submission received `age` ago; stored / failed `changed` ago (default: then)."""
    now = utcnow()
    received = now - age
    changed_at = now - (age if changed is None else changed)
    sid = new_id()
    with engine.begin() as connection:
        connection.execute(
            insert(submissions).values(
                id=sid, schema_version="1", type="t", body="{}", sha256="0" * 64,
                status=status, attempts=1, received_at=received, updated_at=changed_at,
                forwarded_at=received if status in ("forwarded", "stored") else None,
                stored_at=changed_at if status == "stored" else None,
            )
        )  # fmt: skip
        if queued:
            connection.execute(
                insert(outbox).values(
                    submission_id=sid, created_at=received, available_at=received, attempts=0
                )
            )
    return sid


def remaining(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(submissions.c.id)))


def test_only_stored_and_failed_rows_past_their_retention_are_purged(engine):
    old_stored = add(engine, "stored", age=31 * DAY, queued=True)  # a receipt beat a replay
    young_stored = add(engine, "stored", age=29 * DAY)
    stored_late = add(engine, "stored", age=40 * DAY, changed=20 * DAY)  # object 20 days old
    old_failed = add(engine, "failed", age=8 * DAY)
    failed_again = add(engine, "failed", age=40 * DAY, changed=1 * DAY)  # replayed, failed
    keep_forever = [
        add(engine, "accepted", age=3650 * DAY, queued=True),
        add(engine, "forwarded", age=3650 * DAY),
    ]

    purged = retention.purge(engine, utcnow(), POLICY)

    assert (purged.stored, purged.failed, purged.outbox, purged.more) == (1, 1, 1, False)
    assert remaining(engine) == {young_stored, stored_late, failed_again, *keep_forever}
    with engine.connect() as connection:
        queued = set(connection.scalars(select(outbox.c.submission_id)))
    assert queued == {keep_forever[0]}, "the pending row keeps its outbox row"
    assert old_stored not in remaining(engine) and old_failed not in remaining(engine)


def test_zero_days_keeps_a_status_forever(engine):
    stored = add(engine, "stored", age=3650 * DAY)
    failed = add(engine, "failed", age=3650 * DAY)
    purged = retention.purge(engine, utcnow(), retention.Policy(stored_days=0, failed_days=7))
    assert purged.failed == 1 and purged.stored == 0
    assert remaining(engine) == {stored}
    assert failed not in remaining(engine)


def test_purge_goes_in_bounded_batches_and_says_when_more_are_due(engine):
    for _ in range(7):
        add(engine, "stored", age=60 * DAY)
    batches: list[int] = []
    original = retention.purge_batch

    def counting(connection, status, cutoff, limit):
        gone, queued = original(connection, status, cutoff, limit)
        batches.append(gone)
        return gone, queued

    retention.purge_batch, restore = counting, original
    try:
        only_stored = retention.Policy(stored_days=30)
        first = retention.purge(engine, utcnow(), only_stored, batch_size=3, max_batches=2)
        second = retention.purge(engine, utcnow(), only_stored, batch_size=3)
    finally:
        retention.purge_batch = restore
    assert (first.stored, first.more) == (6, True)
    assert (second.stored, second.more) == (1, False)
    assert batches == [3, 3, 1]
    assert remaining(engine) == set()


@pytest.mark.mysql
def test_the_purge_reads_the_status_received_index_on_mysql(mysql_url):
    engine = create_db_engine(Settings(database_url=mysql_url))
    migrate(engine)
    for status in ("accepted", "forwarded", "failed"):
        for _ in range(40):
            add(engine, status, age=60 * DAY)
    add(engine, "stored", age=60 * DAY)
    query = retention.due("stored", utcnow() - 30 * DAY, 500)
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.begin() as connection:
        connection.execute(text("ANALYZE TABLE submissions"))
        (plan,) = connection.execute(text(f"EXPLAIN {compiled}")).mappings().all()
    engine.dispose()
    assert plan["key"] == "ix_submissions_status_received", plan
    assert plan["type"] == "range", plan


@pytest.mark.mysql
def test_the_api_accepts_while_a_purge_holds_its_batch_on_mysql(mysql_url):
    """A purge's transaction, held open after selecting and deleting its batch (old stored
    rows and their outbox rows), must not make the API's insert of a submission and its
    outbox row wait: READ COMMITTED takes no gap locks."""
    app = create_app({"database_url": mysql_url, "migrate_on_start": True, "metrics": "none"})
    engine = services(app).engine
    for _ in range(5):
        add(engine, "stored", age=60 * DAY, queued=True)
    answers: list[int] = []
    with engine.connect() as purging:
        purging.execute(text("SET SESSION innodb_lock_wait_timeout = 10"))
        purging.commit()
        with purging.begin():
            gone, _ = retention.purge_batch(purging, "stored", utcnow() - 30 * DAY, 500)
            assert gone == 5

            def post() -> None:
                answer = app.test_client().post(
                    "/v1/submissions", json={"type": "t", "data": {}}, headers={}
                )
                answers.append(answer.status_code)

            poster = threading.Thread(target=post)
            poster.start()
            poster.join(timeout=5)
            blocked = poster.is_alive()
        poster.join(timeout=30)
    engine.dispose()
    assert not blocked, "the API's insert waited for the purge's transaction"
    assert answers == [202]


def test_the_relay_purges_on_its_own_and_reports_it(tmp_path, capsys):
    from runtime.observability import Metrics
    from runtime.relay import Relay

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'relay.sqlite3'}",
        ingest_url="http://127.0.0.1:9/",
        retention_stored_days=30,
        retention_failed_days=7,
        purge_batch_size=2,
        purge_max_batches=1,
    )
    engine = create_db_engine(settings)
    migrate(engine)
    for _ in range(3):
        add(engine, "stored", age=60 * DAY)
    pending = add(engine, "accepted", age=60 * DAY)
    relay = Relay(engine, settings, token_source=None)  # type: ignore[arg-type]
    relay.metrics = Metrics("emf", "Skybridge", "relay")

    relay._purge()
    soon = relay._next_purge - time.monotonic()
    relay._purge()  # rows were still due: the next round is a second away, not five minutes
    relay._next_purge = 0.0
    relay._purge()
    later = relay._next_purge - time.monotonic()

    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    counts = [d["PurgedStored"] for d in documents if "PurgedStored" in d]
    assert counts == [2, 1]
    assert 0 < soon <= 1.0 and later > settings.purge_interval_seconds - 5, (soon, later)
    assert remaining(engine) == {pending}
    engine.dispose()


def test_the_purge_command_deletes_what_is_past_retention(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    engine = create_db_engine(Settings(database_url=url))
    migrate(engine)
    add(engine, "stored", age=60 * DAY)
    kept = add(engine, "stored", age=10 * DAY)
    environ = {"SKYBRIDGE_DATABASE_URL": url, "SKYBRIDGE_RETENTION_STORED_DAYS": "30",
               "PATH": "/usr/bin:/bin"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "runtime.db", "purge"],
        capture_output=True, text=True, env=environ, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "purged 1 stored" in done.stdout
    assert remaining(engine) == {kept}
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(submissions)) == 1
    engine.dispose()
