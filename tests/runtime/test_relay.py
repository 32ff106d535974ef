"""The relay delivers the outbox at least once, settles each row by ingest's answer, and
never loses or drops a row, on SQLite and on MySQL/MariaDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from runtime.db import create_db_engine, migrate, outbox, submissions, utcnow
from runtime.envelope import SubmissionIn
from runtime.ids import new_id
from runtime.relay import CircuitBreaker, Relay, replay
from runtime.settings import Settings
from runtime.submissions import accept
from tests.fakes.ingest import FakeIngest


class StaticToken:
    def token(self) -> str:
        return "t0k3n"


class NoTokenSource:
    def token(self) -> None:
        return None


def settings_for(database_url: str, ingest_url: str, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "ingest_url": ingest_url,
        "relay_batch_size": 10,
        "relay_backoff_base": 0.01,
        "relay_backoff_max": 0.05,
        "relay_poll_interval": 0.01,
        "relay_breaker_threshold": 1000,
        "metrics": "none",
    }
    return Settings(**(values | overrides))


@pytest.fixture
def ingest():
    with FakeIngest() as fake:
        yield fake


@pytest.fixture
def db(migrated_engine):
    return migrated_engine


def submit(engine, n: int) -> list[str]:
    return [accept(engine, SubmissionIn(type="t", data={"i": i}), None).row["id"] for i in range(n)]


def statuses(engine) -> dict[str, str]:
    with engine.begin() as connection:
        return dict(connection.execute(select(submissions.c.id, submissions.c.status)).all())


def pending(engine) -> int:
    with engine.begin() as connection:
        return connection.scalar(select(func.count()).select_from(outbox))


def test_delivers_pending_rows_and_marks_them_forwarded(db, database_url, ingest):
    ids = submit(db, 25)
    relay = Relay(db, settings_for(database_url, ingest.url), StaticToken())
    while relay.run_once():
        pass
    assert statuses(db) == dict.fromkeys(ids, "forwarded")
    assert pending(db) == 0
    assert ingest.received == dict.fromkeys(ids, 1)
    assert set(ingest.authorizations) == {"Bearer t0k3n"}
    with db.begin() as connection:
        row = connection.execute(select(submissions).where(submissions.c.id == ids[0])).one()
    assert row.message_id == f"m-{ids[0]}"
    assert row.attempts == 1
    assert row.forwarded_at is not None


def test_settle_writes_each_rows_own_attempts_message_and_confirmation_time(db):
    """One UPDATE settles a forwarded batch: values every row shares and values that
    differ per row both land on the right row, and a row without a confirmation time
    gets none."""
    from runtime import outbox as rows

    ids = submit(db, 4)
    with db.begin() as connection:  # the third was tried three times before
        connection.execute(outbox.update().where(outbox.c.submission_id == ids[2])
                           .values(attempts=3))  # fmt: skip
    claimed = {b.submission_id: b for b in rows.claim(db, 10, 30)}
    batch = [claimed[sid] for sid in ids]
    assert [b.attempts for b in batch] == [0, 0, 3, 0]
    now = utcnow().replace(microsecond=0)
    shared = {sid: now + timedelta(seconds=300) for sid in ids[:2]}
    rows.settle(db, batch[:2], forwarded={sid: f"m-{sid}" for sid in ids[:2]},
                failed={}, retry={}, confirm_by=shared)  # fmt: skip
    own = {ids[2]: now + timedelta(seconds=600)}  # ids[3]: none
    rows.settle(db, batch[2:], forwarded={sid: f"m-{sid}" for sid in ids[2:]},
                failed={}, retry={}, confirm_by=own)  # fmt: skip
    with db.begin() as connection:
        got = {r.id: r for r in connection.execute(select(submissions)).all()}
    assert {sid: got[sid].message_id for sid in ids} == {sid: f"m-{sid}" for sid in ids}
    assert [got[sid].attempts for sid in ids] == [1, 1, 4, 1]
    assert [got[sid].confirm_due_at for sid in ids] == [
        now + timedelta(seconds=300), now + timedelta(seconds=300),
        now + timedelta(seconds=600), None,
    ]  # fmt: skip
    assert pending(db) == 0


def test_batches_are_at_most_the_batch_size(db, database_url, ingest):
    submit(db, 25)
    relay = Relay(db, settings_for(database_url, ingest.url), NoTokenSource())
    assert relay.run_once() == 10
    assert ingest.authorizations == [None]


def run_relay_until(relay: Relay, done, timeout: float) -> None:
    """Run the relay's loop in a thread until done() or the timeout, then stop it."""
    worker = threading.Thread(target=relay.run)
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done():
            time.sleep(0.01)
    finally:
        relay.stop()
        worker.join(10)


def test_a_backlog_drains_in_full_batches_without_waiting_between_them(db, database_url, ingest):
    """A full batch means more is waiting: the relay goes straight on (a wait of a whole
    poll interval after each would take 30 s per batch here)."""
    backlog = submit(db, 250)
    settings = settings_for(database_url, ingest.url, relay_batch_size=100, relay_poll_interval=30)
    relay = Relay(db, settings, StaticToken())
    run_relay_until(relay, lambda: sum(ingest.received.values()) >= 250, timeout=20)
    assert statuses(db) == dict.fromkeys(backlog, "forwarded")
    assert ingest.requests == 3


def test_a_caught_up_relay_waits_for_a_batch_to_gather(db, database_url, ingest):
    """Once caught up the relay waits a poll interval for the next batch to gather instead
    of posting whatever arrived since its last round."""
    settings = settings_for(database_url, ingest.url, relay_batch_size=100, relay_poll_interval=0.3)
    relay = Relay(db, settings, StaticToken())
    trickled: list[str] = []

    def trickle() -> None:  # rows as fast as they come for 0.6 s: two poll intervals
        started = time.monotonic()
        while time.monotonic() - started < 0.6:
            trickled.extend(submit(db, 1))
            time.sleep(0.002)

    producer = threading.Thread(target=trickle)
    producer.start()
    run_relay_until(relay, lambda: not producer.is_alive() and not pending(db), timeout=20)
    producer.join()
    assert statuses(db) == dict.fromkeys(trickled, "forwarded")
    # Gathered every 0.3 s: two or three requests per interval, not one per round.
    assert ingest.requests <= 8, (ingest.requests, len(trickled))


def test_failed_delivery_is_retried_later_with_the_error_recorded(db, database_url, ingest):
    (sid,) = submit(db, 1)
    ingest.status = 503
    relay = Relay(
        db,
        settings_for(database_url, ingest.url, relay_backoff_base=30, relay_backoff_max=60),
        NoTokenSource(),
    )
    assert relay.run_once() == 1
    assert relay.run_once() == 0, "backoff must keep the row out of the next round"
    with db.begin() as connection:
        row = connection.execute(select(submissions).where(submissions.c.id == sid)).one()
        queued = connection.execute(select(outbox)).one()
    assert row.status == "accepted"
    assert row.attempts == 1
    assert "503" in row.last_error
    assert queued.attempts == 1
    assert queued.available_at > utcnow() - timedelta(seconds=1)


def test_rows_fail_after_max_attempts_are_kept_and_can_be_replayed(db, database_url, ingest):
    (sid,) = submit(db, 1)
    ingest.status = 500
    settings = settings_for(database_url, ingest.url, relay_max_attempts=3, relay_backoff_max=0.001)
    relay = Relay(db, settings, NoTokenSource())
    deadline = time.monotonic() + 10
    while statuses(db)[sid] != "failed" and time.monotonic() < deadline:
        relay.run_once()
    assert statuses(db)[sid] == "failed"
    assert pending(db) == 0
    assert ingest.requests == 3

    ingest.status = 200
    assert replay(db) == 1
    assert statuses(db)[sid] == "accepted"
    while relay.run_once():
        pass
    assert statuses(db)[sid] == "forwarded"
    assert ingest.received[sid] == 1


def test_rejected_item_fails_alone(db, database_url, ingest):
    bad, *good = submit(db, 3)
    ingest.reject = {bad}
    relay = Relay(db, settings_for(database_url, ingest.url), NoTokenSource())
    relay.run_once()
    assert statuses(db) == {bad: "failed", **dict.fromkeys(good, "forwarded")}


def test_circuit_breaker_stops_posting_to_a_failing_endpoint(db, database_url, ingest):
    submit(db, 3)
    ingest.status = 503
    settings = settings_for(
        database_url,
        ingest.url,
        relay_batch_size=1,
        relay_breaker_threshold=2,
        relay_breaker_cooldown=30,
    )
    relay = Relay(db, settings, NoTokenSource())
    runner = threading.Thread(target=relay.run)
    runner.start()
    time.sleep(1.0)
    relay.stop()
    runner.join(timeout=10)
    assert ingest.requests == 2, "after two failed batches the circuit must stay open"


def test_circuit_breaker_doubles_cooldown_and_closes_on_success():
    breaker = CircuitBreaker(threshold=2, cooldown=1.0)
    breaker.record(False, now=0)
    assert breaker.wait_time(0) == 0
    breaker.record(False, now=0)
    assert breaker.wait_time(0) == 1.0
    breaker.record(False, now=1)
    assert breaker.wait_time(1) == 2.0
    breaker.record(True, now=3)
    assert breaker.failures == 0
    assert breaker.cooldown == 1.0


def test_killed_relays_lease_expires_and_rows_are_claimed_again(db, database_url, ingest):
    ids = submit(db, 3)
    dead = Relay(db, settings_for(database_url, ingest.url, relay_lease_seconds=0.3), None)
    assert len(dead.claim()) == 3  # claimed, then the process "dies" before posting
    alive = Relay(db, settings_for(database_url, ingest.url), NoTokenSource())
    assert alive.run_once() == 0, "a live lease must not be claimed twice"
    time.sleep(0.4)
    assert alive.run_once() == 3
    assert statuses(db) == dict.fromkeys(ids, "forwarded")


def test_sigterm_finishes_the_batch_in_hand(db, database_url, ingest):
    ids = submit(db, 5)
    ingest.delay = 1.0
    env = os.environ | {
        "SKYBRIDGE_DATABASE_URL": database_url,
        "SKYBRIDGE_INGEST_URL": ingest.url,
        "SKYBRIDGE_METRICS": "none",
    }
    process = subprocess.Popen([sys.executable, "-m", "runtime.relay"], env=env)
    try:
        assert ingest.request_seen.wait(20), "the relay never posted"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
    assert statuses(db) == dict.fromkeys(ids, "forwarded")
    assert pending(db) == 0


@pytest.mark.mysql
def test_two_relays_never_deliver_a_row_twice(mysql_database_url, ingest):
    engine = create_db_engine(Settings(database_url=mysql_database_url))
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox"))
        connection.execute(text("DELETE FROM submissions"))
    ids = submit(engine, 300)
    relays = [
        Relay(
            create_db_engine(Settings(database_url=mysql_database_url)),
            settings_for(mysql_database_url, ingest.url, relay_batch_size=7),
            NoTokenSource(),
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=relay.run) for relay in relays]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while pending(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    for relay in relays:
        relay.stop()
    for thread in threads:
        thread.join(timeout=10)
    assert set(ingest.received) == set(ids)
    assert max(ingest.received.values()) == 1, "a row was delivered twice"


@pytest.mark.mysql
@pytest.mark.parametrize("claim_isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_claim_on_a_nearly_empty_outbox_does_not_block_inserts(mysql_database_url, claim_isolation):
    """The relay claims under READ COMMITTED; under REPEATABLE READ (MariaDB's default) the
    same SKIP LOCKED claim gap-locks the end of the outbox and the insert waits."""
    engine = create_db_engine(Settings(database_url=mysql_database_url))
    migrate(engine)
    submit(engine, 1)
    claimer = engine.execution_options(isolation_level=claim_isolation)
    with claimer.connect() as claiming:
        claiming.begin()
        claiming.execute(
            select(outbox.c.id)
            .order_by(outbox.c.available_at, outbox.c.id)
            .limit(100)
            .where(outbox.c.available_at <= utcnow())
            .with_for_update(skip_locked=True)
        ).all()
        inserter = create_db_engine(Settings(database_url=mysql_database_url))
        started = time.monotonic()
        blocked = False
        try:
            with inserter.begin() as connection:
                connection.execute(text("SET SESSION innodb_lock_wait_timeout = 2"))
                submit_in(connection)
        except Exception as error:  # noqa: BLE001 — the lock wait timeout is the outcome
            blocked = "Lock wait timeout" in str(error)
        elapsed = time.monotonic() - started
        claiming.rollback()
        inserter.dispose()
    if claim_isolation == "READ COMMITTED":
        assert not blocked
        assert elapsed < 1.0
    else:
        assert blocked, "control: REPEATABLE READ should gap-lock (is this still MariaDB/InnoDB?)"


def submit_in(connection) -> None:
    now = utcnow()
    sid = new_id(now)
    connection.execute(
        submissions.insert().values(
            id=sid,
            schema_version="1",
            type="t",
            body="{}",
            sha256="0" * 64,
            status="accepted",
            attempts=0,
            received_at=now,
            updated_at=now,
        )
    )
    connection.execute(outbox.insert().values(submission_id=sid, created_at=now, available_at=now))


def run_receipts_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m runtime.relay receipts` with exactly `env`, as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.relay", "receipts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_receipts_command_without_a_subscription_says_which_setting(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "SKYBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SKYBRIDGE_METRICS": "none",
    }
    done = run_receipts_command(env)
    assert done.returncode == 2
    assert "SKYBRIDGE_RECEIPTS_SUBSCRIPTION" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_receipts_command_without_google_credentials_says_how_to_give_them(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # no gcloud application default credentials here
        "NO_GCE_CHECK": "True",  # google-auth: do not probe the metadata server (off loopback)
        "SKYBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SKYBRIDGE_METRICS": "none",
        "SKYBRIDGE_RECEIPTS_SUBSCRIPTION": "projects/p/subscriptions/receipts",
    }
    done = run_receipts_command(env)
    assert done.returncode == 2
    assert "PUBSUB_EMULATOR_HOST" in done.stderr
    assert "Traceback" not in done.stderr
