"""One bad submission never holds back the others, on SQLite and on MySQL/MariaDB: the
relay splits a refused batch until the culprit is alone, packs batches by bytes as well as
count (UTF-8 as is), and fails a row it cannot serialise without posting it."""

from __future__ import annotations

import threading

import functions_framework
import pytest
from sqlalchemy import create_engine, select, text, update
from werkzeug.serving import make_server

from runtime.api import create_app
from runtime.api.services import services
from runtime.db import create_db_engine, migrate, submissions
from runtime.envelope import sha256_hex
from runtime.relay import Relay
from runtime.settings import Settings
from tests.fakes.ingest import FakeIngest
from tests.runtime.conftest import FUNCTIONS
from tests.runtime.test_relay import NoTokenSource, settings_for, statuses, submit


@pytest.fixture
def fake():
    with FakeIngest() as ingest:
        yield ingest


def empty(database_url: str) -> None:
    """Start from empty tables: tests elsewhere share the MySQL database and may leave rows."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for table in ("outbox", "submissions", "schema_migrations"):
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


@pytest.fixture
def db(database_url):
    empty(database_url)
    engine = create_db_engine(Settings(database_url=database_url))
    migrate(engine)
    yield engine
    engine.dispose()


def attempts(engine) -> dict[str, int]:
    with engine.begin() as connection:
        return dict(connection.execute(select(submissions.c.id, submissions.c.attempts)).all())


def rounds_until_settled(relay: Relay, limit: int = 50) -> int:
    rounds = 0
    while relay.run_once():
        rounds += 1
        assert rounds < limit
    return rounds


def interleaved(db, normal: int, every: int = 50) -> tuple[list[str], list[str]]:
    ids = submit(db, normal)
    return ids, ids[::every]


def test_a_refused_batch_is_split_until_the_culprit_is_alone(db, database_url, fake):
    ids, poison = interleaved(db, 300)
    fake.poison = set(poison)
    relay = Relay(db, settings_for(database_url, fake.url, relay_batch_size=100), NoTokenSource())
    rounds_until_settled(relay)
    expected = {sid: "failed" if sid in fake.poison else "forwarded" for sid in ids}
    assert statuses(db) == expected
    # Delayed by nothing: every row, the culprits too, settled at its first attempt.
    assert set(attempts(db).values()) == {1}
    assert sum(fake.received.values()) == 300 - len(poison)
    assert max(fake.received.values()) == 1
    with db.begin() as connection:
        reasons = list(
            connection.scalars(
                select(submissions.c.last_error).where(submissions.c.status == "failed")
            )
        )
    assert all("refused it on its own" in reason and "400" in reason for reason in reasons)


def test_a_batch_that_crashes_ingest_delivers_everything_but_the_culprit(db, database_url, fake):
    ids, poison = interleaved(db, 200, every=150)  # one in each batch
    fake.poison, fake.refuse_status = set(poison), 500
    relay = Relay(db, settings_for(database_url, fake.url, relay_batch_size=100), NoTokenSource())
    relay.run_once()
    relay.run_once()
    now = statuses(db)
    assert {sid for sid, status in now.items() if status == "forwarded"} == set(ids) - set(poison)
    assert {now[sid] for sid in poison} == {"accepted"}, "a 500 may pass later: retried"


def test_an_outage_costs_three_requests_a_round_not_a_split_down_to_single_rows(
    db, database_url, fake
):
    submit(db, 64)
    fake.status = 503
    relay = Relay(db, settings_for(database_url, fake.url, relay_batch_size=64), NoTokenSource())
    relay.run_once()
    assert fake.requests == 3
    assert set(statuses(db).values()) == {"accepted"}


def test_batches_are_bounded_in_bytes_and_carry_utf8_as_is(db, database_url, fake):
    ids = [
        services_accept(db, {"text": "é" * 100_000, "i": i})  # 200 kB of UTF-8 each
        for i in range(12)
    ]
    limit = 512 * 1024
    settings = settings_for(
        database_url, fake.url, relay_batch_size=100, relay_batch_max_bytes=limit
    )
    relay = Relay(db, settings, NoTokenSource())
    rounds_until_settled(relay)
    assert statuses(db) == dict.fromkeys(ids, "forwarded")
    assert max(fake.body_sizes) <= limit
    assert len(fake.body_sizes) == 6  # two 200 kB items a request
    assert fake.bodies_ascii_escaped == 0


def services_accept(db, data: dict) -> str:
    from runtime.envelope import SubmissionIn
    from runtime.submissions import accept

    return accept(db, SubmissionIn(type="t", data=data), None).row["id"]


def insert_raw(db, body: str) -> str:
    """A row written before the JSON policy existed (or by hand): accepted as a normal
    submission, then its stored body replaced."""
    sid = services_accept(db, {"placeholder": True})
    with db.begin() as connection:
        connection.execute(
            update(submissions)
            .where(submissions.c.id == sid)
            .values(body=body, sha256=sha256_hex(body.encode("utf-8", "surrogatepass")))
        )
    return sid


def test_a_stored_row_outside_the_json_policy_fails_without_being_posted(db, database_url, fake):
    good = submit(db, 3)
    bad = insert_raw(db, '{"schema_version":"1","type":"t","data":{"x":"\\udfff"}}')
    relay = Relay(db, settings_for(database_url, fake.url), NoTokenSource())
    rounds_until_settled(relay)
    assert statuses(db) == {bad: "failed", **dict.fromkeys(good, "forwarded")}
    assert bad not in fake.received


# -- the real pipeline: API → relay → the real ingest function on the Pub/Sub emulator ------


@pytest.fixture
def ingest_url(topic):
    app = functions_framework.create_app(target="ingest", source=str(FUNCTIONS / "ingest.py"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_poison_among_hundreds_of_submissions_delays_none_of_them(database_url, ingest_url):
    empty(database_url)
    app = create_app({"database_url": database_url, "migrate_on_start": True, "metrics": "none"})
    client, engine = app.test_client(), services(app).engine
    hostile = [
        '{"type":"t","data":{"x":' + "[" * 300 + "]" * 300 + "}}",
        '{"type":"t","data":{"x":1e400}}',
        '{"type":"t","data":{"x":"\\udfff"}}',
        '{"type":"t","data":{"\\udfff":1}}',
    ]
    accepted, refused = [], []
    for i in range(300):
        response = client.post("/v1/submissions", json={"type": "t", "data": {"i": i}})
        accepted.append(response.get_json()["id"])
        if i % 75 == 0:
            poison = hostile[(i // 75) % len(hostile)]
            answer = client.post(
                "/v1/submissions", data=poison, headers={"Content-Type": "application/json"}
            )
            refused.append(answer.status_code)
    assert refused == [422] * 4, "refused at the edge, naming the field"
    # And a row from before the policy, which only the relay and ingest can catch.
    nested = '{"schema_version":"1","type":"t","data":{"x":' + "[" * 250 + "]" * 250 + "}}"
    old = insert_raw(engine, nested)
    relay = Relay(
        engine,
        settings_for(database_url, ingest_url, relay_batch_size=100),
        NoTokenSource(),
    )
    rounds_until_settled(relay)
    assert statuses(engine) == {old: "failed", **dict.fromkeys(accepted, "forwarded")}
    assert set(attempts(engine).values()) == {1}, "no row waited for a retry"
    engine.dispose()
